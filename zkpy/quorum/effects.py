"""What the consensus core asks its driver to do: the ``Ready`` batch and its parts.

The contract, in the manner of etcd's raft ``Ready``/``Advance``:

1. Take every Ready the core has (``PeerCore.take_ready()`` until it returns None)
   and handle each one completely, in order, before the next:
   a. ``reset`` / ``apply``: apply the entries in order to the database.
   b. ``connect`` / ``close`` / ``election`` / ``packets``: send, in list order per
      connection.  A ``packets`` item with ``with_snapshot`` is followed on its
      connection by the database serialized *as it is now* (after step a).
   c. ``persist``: make the items durable **in list order** (an item must never be
      durable before an earlier one, across Readies too), then call
      ``PeerCore.persisted(ready.persist_token)``.  This may complete later, but
      tokens must be acknowledged in increasing order.
   d. Report ``learner_requests``, ``session_touches``, ``revalidate_requests``,
      ``revalidated`` and ``syncs_done`` to the server.
2. Nothing that depends on a persist item is ever in ``packets``/``election``: the core
   emits such messages only after ``persisted()`` says so.  The driver may therefore
   send at once and fsync in the background.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from zkpy.proto.records import QuorumPacket
from zkpy.quorum.wire import Notification, parse_quorum_packet


class Role(enum.Enum):
    LOOKING = "looking"
    FOLLOWING = "following"
    LEADING = "leading"
    OBSERVING = "observing"


class ZabPhase(enum.Enum):
    """QuorumPeer.ZabState."""

    ELECTION = "election"
    DISCOVERY = "discovery"
    SYNCHRONIZATION = "synchronization"
    BROADCAST = "broadcast"


# ------------------------------------------------------------------ persist items


@dataclass(slots=True)
class AppendEntries:
    """Append log entries (TxnHeader + txn bytes) in order; ``zxids`` parallel to ``entries``.

    The broadcast path logs every entry of one Ready through one of these (the core extends
    it until the Ready is taken); nothing changes it after that."""

    zxids: list[int]
    entries: list[bytes]


@dataclass(slots=True, frozen=True)
class TruncateLog:
    """Drop every logged txn after ``zxid`` (and snapshots after it); if the database has
    applied past ``zxid``, reload it from disk so it stands exactly at ``zxid``."""

    zxid: int


@dataclass(slots=True, frozen=True)
class InstallSnapshot:
    """Replace the database by the leader's ``snapshot`` (taken at ``zxid``), and the disk
    with it: first drop logged txns after ``zxid``, then write the snapshot durably."""

    zxid: int
    snapshot: bytes


@dataclass(slots=True, frozen=True)
class SetAcceptedEpoch:
    epoch: int


@dataclass(slots=True, frozen=True)
class SetCurrentEpoch:
    epoch: int


PersistItem = AppendEntries | TruncateLog | InstallSnapshot | SetAcceptedEpoch | SetCurrentEpoch


# ------------------------------------------------------------------ messages


@dataclass(slots=True)
class Outgoing:
    """Quorum packets for connection ``conn``: one ``packet``, or ``encoded`` ones (the
    broadcast path's PROPOSAL / COMMIT / ACK, already bytes, consecutive on this connection);
    ``with_snapshot`` (SNAP only) asks the driver to stream the serialized database and the
    signature right after ``packet``."""

    conn: int
    packet: QuorumPacket | None
    with_snapshot: bool = False
    encoded: list[bytes] | None = None

    def packets(self) -> list[QuorumPacket]:
        """What this sends, as packets (for simulators and tests)."""
        if self.packet is not None:
            return [self.packet]
        out = []
        for data in self.encoded or ():
            parsed = parse_quorum_packet(data, 0)
            assert parsed is not None and parsed[1] == len(data), "an encoded packet is whole"
            out.append(parsed[0])
        return out


@dataclass(slots=True, frozen=True)
class Connect:
    """Open a learner connection to ``sid``'s quorum port; report it as ``conn``."""

    conn: int
    sid: int


@dataclass(slots=True)
class Ready:
    """One batch of effects (see the module docstring for the order of handling)."""

    election: list[tuple[int, Notification]] = field(default_factory=list)
    connect: list[Connect] = field(default_factory=list)
    close: list[int] = field(default_factory=list)
    packets: list[Outgoing] = field(default_factory=list)
    persist: list[PersistItem] = field(default_factory=list)
    persist_token: int = 0
    apply: list[tuple[int, bytes]] = field(default_factory=list)
    # Learner requests forwarded to this leader: (learner sid, REQUEST data).
    # Leader: (learner sid, REQUEST data, the client's auth ids) to prepare and propose.
    learner_requests: list[tuple[int, bytes, list]] = field(default_factory=list)
    # Leader: sessions a learner reported alive (session id, timeout ms).
    session_touches: list[tuple[int, int]] = field(default_factory=list)
    # Leader: (learner sid, session id, timeout ms) to answer with PeerCore.revalidate_reply.
    revalidate_requests: list[tuple[int, int, int]] = field(default_factory=list)
    # Learner: the leader's answers (session id, valid).
    revalidated: list[tuple[int, bool]] = field(default_factory=list)
    syncs_done: list[object] = field(default_factory=list)
    # Set when the role, the leader or serving changed in this batch.
    role: Role | None = None
    serving: bool | None = None

    def empty(self) -> bool:
        return not (self.election or self.connect or self.close or self.packets or self.persist or self.apply
                    or self.learner_requests or self.session_touches or self.revalidate_requests
                    or self.revalidated or self.syncs_done or self.role is not None or self.serving is not None)
