"""Driving consensus cores by hand: build a member, settle its election, collect its effects."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from zkpy.proto.records import QuorumPacket
from zkpy.quorum import wire
from zkpy.quorum.effects import PersistItem, Ready, Role
from zkpy.quorum.peer import DiskState, PeerConfig, PeerCore
from zkpy.quorum.zxid import make_zxid

_HDR = struct.Struct(">qiqqi")


def entry(tag: int, zxid: int = 0) -> bytes:
    """A log entry: TxnHeader (clientId = tag) and 8 bytes of payload."""
    return _HDR.pack(tag, 0, zxid, 0, 1) + struct.pack(">q", tag)


def config(sid: int, voters: Iterable[int] = (1, 2, 3), observers: Iterable[int] = (), **kw: object) -> PeerConfig:
    base: dict[str, object] = {"tick_ms": 100, "init_limit": 10, "sync_limit": 5, "ping_interval_ms": 50}
    base.update(kw)
    return PeerConfig(my_id=sid, voters=frozenset(voters), observers=frozenset(observers), **base)  # type: ignore[arg-type]


def history(epoch: int, count: int) -> list[tuple[int, bytes]]:
    return [(make_zxid(epoch, i), entry(i, make_zxid(epoch, i))) for i in range(1, count + 1)]


def peer(sid: int, disk: DiskState | None = None, now: int = 0, **kw: object) -> PeerCore:
    return PeerCore(config(sid, **kw), disk or DiskState(), now)  # type: ignore[arg-type]


class Effects:
    """Everything a core emitted since the last take, merged across Readies."""

    def __init__(self, readies: list[Ready]) -> None:
        self.readies = readies

    def __getattr__(self, name: str) -> list:  # type: ignore[type-arg]
        out: list[object] = []
        for rd in self.readies:
            out.extend(getattr(rd, name))
        return out

    @property
    def roles(self) -> list[Role]:
        return [rd.role for rd in self.readies if rd.role is not None]

    @property
    def serving(self) -> list[bool]:
        return [rd.serving for rd in self.readies if rd.serving is not None]

    @property
    def tokens(self) -> list[int]:
        return [rd.persist_token for rd in self.readies if rd.persist]

    def sent(self, conn: int | None = None, ptype: int | None = None) -> list[QuorumPacket]:
        return [qp for o in self.packets if conn is None or o.conn == conn
                for qp in o.packets() if ptype is None or qp.type == ptype]

    def sent_types(self, conn: int | None = None) -> list[str]:
        return [wire.PACKET_NAMES[p.type] for p in self.sent(conn)]

    def persisted_items(self) -> list[PersistItem]:
        return list(self.persist)


def take(core: PeerCore) -> Effects:
    out = []
    while True:
        rd = core.take_ready()
        if rd is None:
            return Effects(out)
        out.append(rd)


def persist_all(core: PeerCore, fx: Effects) -> Effects:
    """Report every persist batch in ``fx`` durable; returns what that released."""
    for t in fx.tokens:
        core.persisted(t)
    return take(core)


def notification(state: int, leader: int, zxid: int, election_epoch: int, peer_epoch: int) -> bytes:
    return wire.Notification(state, leader, zxid, election_epoch, peer_epoch).to_bytes()


def make_leader(sid: int = 3, disk: DiskState | None = None, **kw: object) -> PeerCore:
    """A member that has just won an election (LEADING, in discovery)."""
    core = peer(sid, disk, **kw)
    take(core)
    vote = (sid, core.last_logged_zxid, core.election.logical_clock, core.current_epoch)
    for other in sorted(core.config.voters - {sid}):
        core.election_message(other, notification(wire.LOOKING, vote[0], vote[1], vote[2], vote[3]))
    core.tick(core.now + core.config.finalize_wait_ms)
    assert core.role == Role.LEADING, core.role
    return core


def make_learner(sid: int = 1, leader: int = 3, disk: DiskState | None = None, **kw: object) -> tuple[PeerCore, int]:
    """A member that has just decided to follow ``leader``; returns it and its connection id."""
    core = peer(sid, disk, **kw)
    take(core)
    others = sorted(core.config.voters - {sid, leader})
    core.election_message(leader, notification(wire.LEADING, leader, 0, 1, 0))
    for other in others:
        core.election_message(other, notification(wire.FOLLOWING, leader, 0, 1, 0))
    assert core.role in (Role.FOLLOWING, Role.OBSERVING), core.role
    fx = take(core)
    (connect,) = fx.connect
    core.quorum_connected(connect.conn)
    return core, connect.conn


def packet(ptype: int, zxid: int = 0, data: bytes | None = None) -> QuorumPacket:
    return wire.packet(ptype, zxid, data)
