"""Deterministic simulation of a zkpy ensemble: the real consensus cores, a simulated
clock, network and disks, faults, and invariants checked after every step.

One seed is one run: the seed picks the ensemble (3 or 5 voters, maybe an observer),
the timing and a schedule of faults -- crashes that lose whatever was not fsync'ed
(a random part of it survives, as with a real page cache), restarts, restarts with an
empty data directory, partitions and heals, connection resets, message delays and
slow disks -- while clients write and sync.  Then everything heals and the ensemble
must converge within a bounded simulated time.

Network model: election messages are datagrams on per-pair FIFO channels that may be
lost.  Learner <-> leader traffic runs on simulated TCP connections: FIFO, never
reordered or duplicated, held back while a partition lasts and delivered after it heals
unless an end has closed the connection meanwhile; a crash or reset ends a connection.

Invariants (a violation raises :class:`Violation` naming the seed):

- at most one leader establishes each epoch;
- every member in sync with a leader has applied a prefix of the one committed history
  (so no committed txn is lost, reordered or applied differently anywhere);
- every member's log (in memory and what its disk would keep on a crash) agrees with
  the committed history at every committed zxid it holds;
- the epoch files never lag the log: epoch(last logged zxid) <= currentEpoch <= acceptedEpoch;
- a write acknowledged to a client is in the committed history, and a sync acknowledged
  to a client made every write acknowledged before it visible on that member;
- liveness: once faults stop, a leader is established, every member syncs and a new
  write commits everywhere within ``liveness_ms`` of simulated time.

``python -m zkpy.quorum.sim --seed N`` replays one seed (``-v`` traces it);
``--seeds A:B`` runs a range; ``--soak SECONDS`` runs bigger seeds until time is up.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import os
import pickle
import random
import struct
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zkpy.quorum import wire
from zkpy.quorum.effects import (
    AppendEntries,
    Connect,
    InstallSnapshot,
    Outgoing,
    PersistItem,
    Ready,
    SetAcceptedEpoch,
    SetCurrentEpoch,
    TruncateLog,
)
from zkpy.quorum.leader import NotLeaderError, ZxidRolloverError
from zkpy.quorum.learner import L_ACTIVE, NotServingError
from zkpy.quorum.peer import DiskState, PeerConfig, PeerCore

log = logging.getLogger(__name__)

US_PER_MS = 1000
_HDR = struct.Struct(">qiqqi")  # TxnHeader: clientId, cxid, zxid, time, type
_REQ = struct.Struct(">q")
OP_CREATE = 1
OP_SYNC = 9
_MASK = (1 << 64) - 1


class Violation(AssertionError):
    """An invariant broke; the message names the seed and the simulated time."""


# ---------------------------------------------------------------------- parameters


@dataclass(slots=True)
class SimParams:
    voters: int = 3
    observers: int = 0
    tick_ms: int = 100
    init_limit: int = 10
    sync_limit: int = 5
    leader_serves: bool = True
    history_limit: int = 1000
    counter_max: int = 0xFFFFFFFE
    fault_ms: int = 2500  # faults and client load happen in [0, fault_ms)
    faults: int = 4
    write_gap_ms: tuple[int, int] = (15, 100)
    sync_every: int = 4  # about one sync per this many writes
    liveness_ms: int = 20_000  # bound on convergence after the faults end
    net_delay_us: tuple[int, int] = (100, 2000)
    fsync_us: tuple[int, int] = (500, 8000)
    drop_election: float = 0.02
    dup_election: float = 0.01
    max_notification_ms: int = 1600
    nemesis: float = 0.15  # how eagerly faults strike at interesting moments
    ping_interval_ms: int = 100

    @classmethod
    def for_seed(cls, seed: int, soak: bool = False) -> SimParams:
        """A varied but cheap configuration for ``seed`` (bigger ones with ``soak``)."""
        r = random.Random(seed ^ 0x5EED)
        p = cls()
        p.voters = 5 if r.random() < 0.25 else 3
        p.observers = 1 if r.random() < 0.2 else 0
        p.leader_serves = r.random() < 0.85
        p.history_limit = r.choice([4, 16, 1000])  # small windows force SNAP syncs
        if r.random() < 0.1:
            p.counter_max = r.randint(3, 12)  # force zxid rollover elections
        p.faults = r.randint(1, 8)
        p.fault_ms = r.randint(600, 2400)
        p.nemesis = r.choice([0.0, 0.05, 0.15, 0.3])
        if soak:
            p.faults = r.randint(6, 30)
            p.fault_ms = r.randint(5000, 20000)
            p.voters = r.choice([3, 5, 5])
        return p


# ---------------------------------------------------------------------- the simulated database and disk


class SimDB:
    """A member's applied txns, with a hash chain so prefixes compare in O(1)."""

    __slots__ = ("crcs", "hashes", "zxids")

    def __init__(self) -> None:
        self.zxids: list[int] = []
        self.crcs: list[int] = []
        self.hashes: list[int] = []

    def __len__(self) -> int:
        return len(self.zxids)

    @property
    def last(self) -> int:
        return self.zxids[-1] if self.zxids else 0

    def apply(self, zxid: int, crc: int) -> None:
        if self.zxids and zxid <= self.zxids[-1]:
            raise Violation(f"applied 0x{zxid:x} after 0x{self.zxids[-1]:x}")
        prev = self.hashes[-1] if self.hashes else 0
        self.zxids.append(zxid)
        self.crcs.append(crc)
        self.hashes.append(chain(prev, zxid, crc))

    def entries(self) -> list[tuple[int, int]]:
        return list(zip(self.zxids, self.crcs, strict=True))

    @classmethod
    def of(cls, entries: list[tuple[int, int]]) -> SimDB:
        db = cls()
        for z, c in entries:
            db.apply(z, c)
        return db


def chain(prev: int, zxid: int, crc: int) -> int:
    return ((prev * 1_000_003) ^ (zxid * 0x9E3779B1) ^ crc) & _MASK


@dataclass(slots=True)
class DiskImage:
    """What a data directory holds: epochs, one snapshot, the log."""

    accepted_epoch: int = 0
    current_epoch: int = 0
    snap_zxid: int = 0
    snap: list[tuple[int, int]] = field(default_factory=list)  # (zxid, crc) of the txns it holds
    log: list[tuple[int, bytes]] = field(default_factory=list)

    def copy(self) -> DiskImage:
        return DiskImage(self.accepted_epoch, self.current_epoch, self.snap_zxid, self.snap, list(self.log))

    def tail(self) -> list[tuple[int, bytes]]:
        """Log entries after the snapshot: what recovery replays."""
        return [(z, e) for z, e in self.log if z > self.snap_zxid]

    def history(self) -> list[tuple[int, int]]:
        return self.snap + [(z, crc_of(e)) for z, e in self.tail()]

    def apply(self, item: PersistItem, part: float = 1.0) -> None:
        """Perform ``item``; ``part`` < 1 leaves it half done, as a crash in the middle would."""
        if isinstance(item, AppendEntries):
            n = len(item.zxids) if part >= 1.0 else int(len(item.zxids) * part)
            self.log.extend(zip(item.zxids[:n], item.entries[:n], strict=True))
        elif isinstance(item, TruncateLog):
            if item.zxid < self.snap_zxid:
                raise Violation(f"asked to truncate to 0x{item.zxid:x}, below the snapshot 0x{self.snap_zxid:x}")
            self.log = [(z, e) for z, e in self.log if z <= item.zxid]
        elif isinstance(item, InstallSnapshot):
            self.log = [(z, e) for z, e in self.log if z <= item.zxid]
            if part >= 1.0:
                self.snap_zxid = item.zxid
                self.snap = pickle.loads(item.snapshot)
        elif isinstance(item, SetAcceptedEpoch):
            self.accepted_epoch = item.epoch
        elif isinstance(item, SetCurrentEpoch):
            self.current_epoch = item.epoch


def crc_of(entry: bytes) -> int:
    return zlib.crc32(entry)


def req_of(entry: bytes) -> int:
    return _REQ.unpack_from(entry, _HDR.size)[0]


def make_entry(req: int) -> bytes:
    return _HDR.pack(req, 0, 0, 0, OP_CREATE) + _REQ.pack(req)


# ---------------------------------------------------------------------- connections


class SimConn:
    """A simulated TCP connection from a learner to a leader's quorum port."""

    __slots__ = ("ends", "ids", "open", "pump_at", "queues")

    def __init__(self, learner: int, learner_id: int, leader: int, leader_id: int) -> None:
        self.ends = (learner, leader)
        self.ids = (learner_id, leader_id)
        self.open = [True, True]  # per end: still open on that side
        # per direction (0: learner -> leader, 1: leader -> learner): (due us, packet, snapshot) | None = FIN
        self.queues: tuple[list[Any], list[Any]] = ([], [])
        self.pump_at = [0, 0]


# ---------------------------------------------------------------------- members


class SimNode:
    __slots__ = ("conns", "core", "db", "disk_durable", "disk_pending", "disk_volatile", "established_epoch",
                 "fsync_busy", "incarnation", "paused_until", "sid", "tick_at", "up")

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.up = False
        self.core: PeerCore | None = None
        self.db = SimDB()
        self.disk_durable = DiskImage()
        self.disk_volatile = DiskImage()
        self.disk_pending: list[tuple[int, PersistItem]] = []
        self.fsync_busy = False
        self.conns: dict[int, SimConn] = {}
        self.tick_at = -1
        self.incarnation = 0
        self.established_epoch = -1
        self.paused_until = 0  # a stalled process (GC pause, swapping): handles nothing before this

    def in_sync(self) -> bool:
        c = self.core
        if c is None:
            return False
        if c.leader is not None:
            return c.leader.established
        return c.learner is not None and c.learner.state == L_ACTIVE


@dataclass(slots=True)
class SimResult:
    seed: int
    sim_ms: int
    events: int
    committed: int
    acked_writes: int
    syncs: int
    elections: int
    snaps: int
    truncs: int
    converge_ms: int
    faults: list[str]


# ---------------------------------------------------------------------- the simulation


class Sim:
    def __init__(self, seed: int, params: SimParams | None = None, trace: bool = False) -> None:
        self.seed = seed
        self.p = params or SimParams.for_seed(seed)
        self.rng = random.Random(seed)
        self.trace = trace
        self.now = 0  # us
        self._queue: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.events = 0
        p = self.p
        self.voters = frozenset(range(1, p.voters + 1))
        self.observers = frozenset(range(p.voters + 1, p.voters + p.observers + 1))
        self.nodes = {sid: SimNode(sid) for sid in sorted(self.voters | self.observers)}
        self.partition: dict[int, int] = dict.fromkeys(self.nodes, 0)
        self._next_accept = 1
        # The committed history as members in sync have applied it.
        self.oracle = SimDB()
        self.oracle_index: dict[int, int] = {}
        self.leaders: dict[int, int] = {}  # epoch -> sid that established it
        self.next_req = 1
        self.origin: dict[int, tuple[int, int]] = {}  # req -> (sid, incarnation) it was submitted at
        self.acked: dict[int, int] = {}  # req -> zxid
        self.sync_count = 0
        self.snaps = 0
        self.truncs = 0
        self.faults_done: list[str] = []
        self.healed_at: int | None = None
        self.extra_faults = 0
        self.probe_acked = False
        self.probes: set[int] = set()
        self.done = False
        self.check_every = 256

    # -------------------------------------------------------------- scheduling

    def at(self, t_us: int, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (t_us, self._seq, fn, args))

    def after(self, us: int, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now + us, fn, *args)

    def fail(self, what: str) -> None:
        raise Violation(f"seed {self.seed} at {self.now / US_PER_MS:.3f} ms: {what}")

    def say(self, msg: str) -> None:
        if self.trace:
            print(f"{self.now / US_PER_MS:10.3f} {msg}")

    def delay(self) -> int:
        lo, hi = self.p.net_delay_us
        rnd = self.rng.random
        d = lo + int(rnd() * (hi - lo))
        if rnd() < 0.02:
            d += 5_000 + int(rnd() * 35_000)  # a latency spike
        return d

    def linked(self, a: int, b: int) -> bool:
        return self.partition[a] == self.partition[b]

    # -------------------------------------------------------------- members

    def config_for(self, sid: int) -> PeerConfig:
        p = self.p
        return PeerConfig(my_id=sid, voters=self.voters, observers=self.observers, tick_ms=p.tick_ms,
                          init_limit=p.init_limit, sync_limit=p.sync_limit, leader_serves=p.leader_serves,
                          max_notification_interval_ms=p.max_notification_ms, history_limit=p.history_limit,
                          counter_max=p.counter_max, ping_interval_ms=p.ping_interval_ms)

    def start(self, sid: int) -> None:
        node = self.nodes[sid]
        if node.up:
            return
        img = node.disk_durable
        tail = img.tail()
        last = tail[-1][0] if tail else img.snap_zxid
        if not img.current_epoch <= img.accepted_epoch:
            self.fail(f"server {sid} restarts with currentEpoch {img.current_epoch} > acceptedEpoch "
                      f"{img.accepted_epoch} (last zxid 0x{last:x})")
        node.disk_volatile = img.copy()
        node.disk_pending = []
        node.fsync_busy = False
        node.db = SimDB.of(img.history())
        node.incarnation += 1
        node.up = True
        node.conns = {}
        node.tick_at = -1
        node.established_epoch = -1
        disk = DiskState(img.accepted_epoch, img.current_epoch, img.snap_zxid, img.snap_zxid, tail)
        node.core = PeerCore(self.config_for(sid), disk, self.now // US_PER_MS)
        self.say(f"start {sid} (last 0x{last:x}, epochs {img.accepted_epoch}/{img.current_epoch})")
        self.drain(node)
        for other in self.nodes.values():
            if other.sid != sid and other.up and self.linked(sid, other.sid):
                self.after(self.delay(), self.ev_election_connected, other.sid, other.incarnation, sid)
                self.after(self.delay(), self.ev_election_connected, sid, node.incarnation, other.sid)

    def crash(self, sid: int, keep: int | None = None) -> None:
        """Power off ``sid``: of the writes not yet fsync'ed, the first ``keep`` (random if None,
        the last of them possibly half done) reach the disk."""
        node = self.nodes[sid]
        if not node.up:
            return
        node.up = False
        node.core = None
        img = node.disk_durable
        pending = node.disk_pending
        exact = keep is not None
        if keep is None:
            keep = self.rng.randint(0, len(pending))
        for i, (_, item) in enumerate(pending[:keep]):
            img.apply(item, 1.0 if exact or i < keep - 1 else self.rng.choice([0.5, 1.0]))
        node.disk_pending = []
        for conn in list(node.conns.values()):
            self.break_conn(conn, graceful_from=sid)
        node.conns = {}
        self.say(f"crash {sid} (kept {keep}/{len(pending)} unsynced writes)")

    def wipe_is_safe(self, sid: int) -> bool:
        """An empty data directory is a lost replica.  ZAB tolerates it only while a quorum of
        the others holds everything the victim may have vouched for: its epochs and every txn
        it logged (it may have acknowledged any of them, and an ACK in flight can still
        complete a commit), and no leader is halfway through establishing an epoch."""
        victim = self.nodes[sid].disk_durable
        mine = victim.history()
        want = chain_of(mine)
        holders = 0
        for other in self.nodes.values():
            if other.sid == sid or other.sid not in self.voters:
                continue
            img = other.disk_durable
            if img.accepted_epoch < victim.accepted_epoch or img.current_epoch < victim.current_epoch:
                continue
            hist = img.history()
            if len(hist) < len(mine) or chain_of(hist[:len(mine)]) != want:
                continue
            holders += 1
        if holders * 2 <= len(self.voters):
            return False
        return all(not (o.up and o.core is not None and o.core.leader is not None
                        and o.core.leader.epoch >= 0 and not o.core.leader.established)
                   for o in self.nodes.values())

    # -------------------------------------------------------------- readies

    def drain(self, node: SimNode) -> None:
        core = node.core
        if core is None:
            return
        changed = False
        while True:
            rd = core.take_ready()
            if rd is None:
                break
            self.handle(node, core, rd)
            if node.core is not core:
                return
            changed = changed or rd.serving is not None or rd.role is not None
        if changed and node.in_sync():
            self.check_db(node)
        if core.leader is not None and core.leader.established:
            if node.established_epoch != core.leader.epoch:
                node.established_epoch = core.leader.epoch
                prev = self.leaders.setdefault(core.leader.epoch, node.sid)
                if prev != node.sid:
                    self.fail(f"epoch {core.leader.epoch} established by both {prev} and {node.sid}")
                self.say(f"leader {node.sid} established epoch {core.leader.epoch}")
                self.check_logs()
        self.schedule_tick(node)

    def handle(self, node: SimNode, core: PeerCore, rd: Ready) -> None:
        db = node.db
        if rd.apply:
            for z, e in rd.apply:
                db.apply(z, crc_of(e))
            if node.in_sync():
                # Only a member in sync applies committed txns only, and only then answers clients.
                self.check_db(node)
                me = (node.sid, node.incarnation)
                for z, e in rd.apply:
                    req = req_of(e)
                    if self.origin.get(req) == me and req not in self.acked:
                        self.acked[req] = z
                        if req in self.probes:
                            self.probe_acked = True
        for conn in rd.close:
            self.close_local(node, conn)
        for c in rd.connect:
            self.open_conn(node, c)
        for sid, n in rd.election:
            self.send_election(node.sid, sid, n)
        for out in rd.packets:
            self.send_packet(node, out)
        if rd.persist:
            self.persist(node, rd.persist_token, rd.persist)
        for _sid, data, _auth in rd.learner_requests:
            session, _cxid, op = wire.decode_request_head(data)
            if op == OP_CREATE and core.established_leader:
                try:
                    core.propose(make_entry(session))
                except (NotLeaderError, ZxidRolloverError):
                    pass
        for token in rd.syncs_done:
            sid, inc, required = token
            if sid == node.sid and inc == node.incarnation:
                if len(db) < required:
                    self.fail(f"sync at {sid} returned with {len(db)} txns applied, {required} were "
                              f"committed and acknowledged before it")
                self.sync_count += 1
        if rd.role is not None:
            self.say(f"{node.sid} -> {rd.role.value}")
            self.nemesis(node, f"{node.sid} became {rd.role.value}", 1.0)
        elif rd.persist and any(isinstance(i, SetCurrentEpoch) for i in rd.persist):
            self.nemesis(node, f"{node.sid} adopting epoch", 2.0)
        elif rd.persist and core.learner is not None:
            self.nemesis(node, f"{node.sid} logging a proposal", 0.1)
        elif rd.apply and core.leader is not None:
            self.nemesis(node, f"{node.sid} committing", 0.1)

    def check_db(self, node: SimNode) -> None:
        db, o = node.db, self.oracle
        n, m = len(db), len(o)
        k = min(n, m)
        if k and db.hashes[k - 1] != o.hashes[k - 1]:
            i = next(i for i in range(k) if db.zxids[i] != o.zxids[i] or db.crcs[i] != o.crcs[i])
            self.fail(f"server {node.sid} applied 0x{db.zxids[i]:x} as txn #{i}, the committed history "
                      f"has 0x{o.zxids[i]:x} there")
        for i in range(m, n):
            z = db.zxids[i]
            if z in self.oracle_index:
                self.fail(f"0x{z:x} committed twice")
            self.oracle_index[z] = i
            o.apply(z, db.crcs[i])

    def check_logs(self) -> None:
        """Every log agrees with the committed history wherever it holds a committed zxid."""
        idx = self.oracle_index
        o = self.oracle
        for node in self.nodes.values():
            for img, what in ((node.disk_volatile, "log"), (node.disk_durable, "durable log")):
                for i, (z, c) in enumerate(img.history()):
                    j = idx.get(z)
                    if j is not None and (j != i or o.crcs[j] != c):
                        self.fail(f"server {node.sid}'s {what} has committed 0x{z:x} as txn #{i} "
                                  f"(committed as #{j})")
            img = node.disk_durable
            if not img.current_epoch <= img.accepted_epoch:
                self.fail(f"server {node.sid}: currentEpoch {img.current_epoch} > acceptedEpoch "
                          f"{img.accepted_epoch}")
        for req, z in self.acked.items():
            if z not in idx:
                self.fail(f"acknowledged write {req} (0x{z:x}) is not in the committed history")

    def schedule_tick(self, node: SimNode) -> None:
        core = node.core
        if core is None:
            return
        d = core.next_deadline()
        if d is None:
            return
        t = max(d * US_PER_MS, self.now + US_PER_MS)
        if node.tick_at <= self.now or t < node.tick_at:
            node.tick_at = t
            self.at(t, self.ev_tick, node.sid, node.incarnation)

    def node_ready(self, sid: int, inc: int) -> SimNode | None:
        node = self.nodes[sid]
        if not node.up or node.incarnation != inc or node.core is None:
            return None
        node.core.advance_time(self.now // US_PER_MS)
        return node

    def held(self, sid: int, fn: Callable[..., None], *args: Any) -> bool:
        """Postpone an event for a paused member to when it runs again (in the same order)."""
        until = self.nodes[sid].paused_until
        if until > self.now:
            self.at(until, fn, *args)
            return True
        return False

    def usable(self) -> list[SimNode]:
        return [n for n in self.nodes.values()
                if n.up and n.core is not None and n.core.serving and n.paused_until <= self.now]

    # -------------------------------------------------------------- disk

    def persist(self, node: SimNode, token: int, items: list[PersistItem]) -> None:
        img = node.disk_volatile
        for item in items:
            img.apply(item)
            node.disk_pending.append((token, item))
            if isinstance(item, TruncateLog):
                self.truncs += 1
                if node.db.last > item.zxid:
                    node.db = SimDB.of(img.history())
                    if node.db.last != item.zxid:
                        self.fail(f"server {node.sid} truncated to 0x{item.zxid:x}, which its log does not hold")
            elif isinstance(item, InstallSnapshot):
                self.snaps += 1
                node.db = SimDB.of(img.snap)
        if not node.fsync_busy:
            self.start_fsync(node)

    def start_fsync(self, node: SimNode) -> None:
        if not node.disk_pending:
            node.fsync_busy = False
            return
        node.fsync_busy = True
        n = len(node.disk_pending)
        lo, hi = self.p.fsync_us
        lat = self.rng.randint(lo, hi)
        if self.rng.random() < 0.02:
            lat += self.rng.randint(10_000, 80_000)  # a slow disk moment
        self.after(lat, self.ev_fsync_done, node.sid, node.incarnation, n)

    def ev_fsync_done(self, sid: int, inc: int, n: int) -> None:
        if self.held(sid, self.ev_fsync_done, sid, inc, n):
            return
        node = self.node_ready(sid, inc)
        if node is None:
            return
        done, node.disk_pending = node.disk_pending[:n], node.disk_pending[n:]
        for _, item in done:
            node.disk_durable.apply(item)
        assert node.core is not None
        node.core.persisted(done[-1][0])
        self.start_fsync(node)
        self.drain(node)

    # -------------------------------------------------------------- election channel

    def send_election(self, src: int, dst: int, n: wire.Notification) -> None:
        if not self.linked(src, dst) or self.rng.random() < self.p.drop_election:
            return
        data = n.to_bytes()
        self.after(self.delay(), self.ev_election, src, dst, data)
        if self.rng.random() < self.p.dup_election:
            self.after(self.delay() * 3, self.ev_election, src, dst, data)

    def ev_election(self, src: int, dst: int, data: bytes) -> None:
        if self.held(dst, self.ev_election, src, dst, data):
            return
        node = self.nodes[dst]
        if not node.up or not self.linked(src, dst):
            return
        node = self.node_ready(dst, node.incarnation)
        assert node is not None and node.core is not None
        node.core.election_message(src, data)
        self.drain(node)

    def ev_election_connected(self, sid: int, inc: int, peer: int) -> None:
        if self.held(sid, self.ev_election_connected, sid, inc, peer):
            return
        node = self.node_ready(sid, inc)
        if node is None or not self.linked(sid, peer):
            return
        assert node.core is not None
        node.core.election_connected(peer)
        self.drain(node)

    # -------------------------------------------------------------- quorum connections

    def open_conn(self, node: SimNode, c: Connect) -> None:
        leader = self.nodes.get(c.sid)
        if leader is None or not leader.up or not self.linked(node.sid, c.sid):
            self.after(self.delay() + self.rng.randint(0, 3000), self.ev_refused, node.sid, node.incarnation, c.conn)
            return
        lid = self._next_accept
        self._next_accept += 1
        conn = SimConn(node.sid, c.conn, c.sid, lid)
        node.conns[c.conn] = conn
        leader.conns[lid] = conn
        d = self.delay()
        self.after(d, self.ev_accepted, c.sid, leader.incarnation, lid)
        self.after(d + self.delay(), self.ev_connected, node.sid, node.incarnation, c.conn)

    def ev_refused(self, sid: int, inc: int, conn: int) -> None:
        if self.held(sid, self.ev_refused, sid, inc, conn):
            return
        node = self.node_ready(sid, inc)
        if node is None or node.core is None:
            return
        node.core.quorum_closed(conn)
        self.drain(node)

    def ev_accepted(self, sid: int, inc: int, lid: int) -> None:
        if self.held(sid, self.ev_accepted, sid, inc, lid):
            return
        node = self.node_ready(sid, inc)
        if node is None or node.core is None:
            return
        conn = node.conns.get(lid)
        if conn is None or not conn.open[1]:
            return
        node.core.quorum_accepted(lid)
        self.drain(node)

    def ev_connected(self, sid: int, inc: int, cid: int) -> None:
        if self.held(sid, self.ev_connected, sid, inc, cid):
            return
        node = self.node_ready(sid, inc)
        if node is None or node.core is None:
            return
        conn = node.conns.get(cid)
        if conn is None or not conn.open[0]:
            return
        node.core.quorum_connected(cid)
        self.drain(node)

    def send_packet(self, node: SimNode, out: Outgoing) -> None:
        conn = node.conns.get(out.conn)
        if conn is None:
            return
        end = 0 if conn.ends[0] == node.sid and conn.ids[0] == out.conn else 1
        if not conn.open[end]:
            return
        snap = pickle.dumps(node.db.entries()) if out.with_snapshot else None
        for qp in out.packets():
            self.enqueue(conn, end, (qp, snap))

    def enqueue(self, conn: SimConn, direction: int, payload: Any) -> None:
        q = conn.queues[direction]
        due = self.now + self.delay()
        if q and q[-1][0] > due:
            due = q[-1][0]  # FIFO: never before what was sent earlier
        q.append((due, payload))
        if len(q) == 1:
            self.at(due, self.ev_pump, conn, direction)

    def ev_pump(self, conn: SimConn, direction: int) -> None:
        q = conn.queues[direction]
        if not q:
            return
        src, dst = conn.ends[direction], conn.ends[1 - direction]
        if not self.linked(src, dst):
            self.after(20 * US_PER_MS, self.ev_pump, conn, direction)  # held back by the partition
            return
        if self.held(dst, self.ev_pump, conn, direction):
            return
        _, payload = q.pop(0)
        if q:
            self.at(max(q[0][0], self.now), self.ev_pump, conn, direction)
        dst_end = 1 - direction
        node = self.nodes[dst]
        if not conn.open[dst_end] or not node.up or node.conns.get(conn.ids[dst_end]) is not conn:
            return
        assert node.core is not None
        node.core.advance_time(self.now // US_PER_MS)
        cid = conn.ids[dst_end]
        if payload is None:  # FIN
            conn.open[dst_end] = False
            del node.conns[cid]
            node.core.quorum_closed(cid)
        else:
            qp, snap = payload
            node.core.quorum_packet(cid, qp, snap)
        self.drain(node)

    def close_local(self, node: SimNode, cid: int) -> None:
        conn = node.conns.pop(cid, None)
        if conn is None:
            return
        end = 0 if conn.ends[0] == node.sid and conn.ids[0] == cid else 1
        if not conn.open[end]:
            return
        conn.open[end] = False
        if conn.open[1 - end]:
            self.enqueue(conn, end, None)

    def break_conn(self, conn: SimConn, graceful_from: int | None = None) -> None:
        """A crash (its queued data still leaves, then FIN, as the kernel does for a killed
        process) or a reset (everything in flight is lost)."""
        for end in (0, 1):
            sid = conn.ends[end]
            if graceful_from == sid:
                conn.open[end] = False
                self.enqueue(conn, end, None)
            elif conn.open[end]:
                if graceful_from is None:
                    conn.queues[1 - end].clear()
                    conn.open[end] = False
                    self.after(self.delay(), self.ev_reset, sid, self.nodes[sid].incarnation, conn.ids[end])

    def ev_reset(self, sid: int, inc: int, cid: int) -> None:
        if self.held(sid, self.ev_reset, sid, inc, cid):
            return
        node = self.node_ready(sid, inc)
        if node is None or node.core is None:
            return
        node.conns.pop(cid, None)
        node.core.quorum_closed(cid)
        self.drain(node)

    # -------------------------------------------------------------- time

    def ev_tick(self, sid: int, inc: int) -> None:
        node = self.nodes[sid]
        if not node.up or node.incarnation != inc or node.tick_at != self.now or node.core is None:
            return
        if node.paused_until > self.now:
            node.tick_at = node.paused_until
            self.at(node.paused_until, self.ev_tick, sid, inc)
            return
        node.core.tick(self.now // US_PER_MS)
        self.drain(node)

    # -------------------------------------------------------------- clients

    def ev_write(self) -> None:
        ups = self.usable()
        if ups:
            node = self.rng.choice(ups)
            self.submit(node)
        if self.now < self.p.fault_ms * US_PER_MS:
            lo, hi = self.p.write_gap_ms
            self.after(self.rng.randint(lo, hi) * US_PER_MS, self.ev_write)
            if self.rng.randint(1, self.p.sync_every) == 1:
                self.after(self.rng.randint(0, hi) * US_PER_MS, self.ev_sync)

    def submit(self, node: SimNode) -> None:
        core = node.core
        assert core is not None
        core.advance_time(self.now // US_PER_MS)
        req = self.next_req
        self.next_req += 1
        self.origin[req] = (node.sid, node.incarnation)
        try:
            if core.leader is not None:
                core.propose(make_entry(req))
            else:
                core.forward(wire.encode_request(req, 0, OP_CREATE, b""))
        except (NotLeaderError, NotServingError, ZxidRolloverError):
            pass
        self.drain(node)

    def ev_sync(self) -> None:
        ups = self.usable()
        if not ups:
            return
        node = self.rng.choice(ups)
        core = node.core
        assert core is not None
        core.advance_time(self.now // US_PER_MS)
        # Everything acknowledged to any client so far must be visible after this sync.
        required = 1 + max((self.oracle_index.get(z, -1) for z in self.acked.values()), default=-1)
        try:
            core.sync((node.sid, node.incarnation, required), wire.encode_request(0, 0, OP_SYNC, b""))
        except (NotLeaderError, NotServingError):
            pass
        self.drain(node)

    # -------------------------------------------------------------- faults

    def ev_fault(self, kind: str = "") -> None:
        """A burst of writes, then a fault a few milliseconds later, while they are in flight."""
        if self.healed_at is not None:
            return
        for _ in range(self.rng.randint(0, 4)):
            ups = self.usable()
            if ups:
                self.submit(self.rng.choice(ups))
        self.after(self.rng.randint(0, 6000), self.ev_fault_now, kind)

    def nemesis(self, node: SimNode, why: str, chance: float) -> None:
        """Strike at an interesting moment: while ``node`` persists an epoch or a commit, or
        changes role.  Crashing it before its fsync completes, together with the leader whose
        restart comes late, is what exposes a wrong order of persisting and acknowledging."""
        r = self.rng
        if self.healed_at is not None or self.extra_faults >= self.p.faults or r.random() >= chance * self.p.nemesis:
            return
        self.extra_faults += 1
        self.say(f"nemesis after {why}")
        action = r.choice(["self", "self_and_leader", "self_and_leader", "self_and_other", "outage", "pause", ""])
        if action == "self_and_other":
            other = r.choice([s for s in sorted(self.nodes) if s != node.sid])
            self.after(r.randint(0, 3000), self.ev_crash_group, [node.sid, other], False)
        elif action in ("self", "self_and_leader"):
            self.after(r.randint(0, 3000), self.ev_crash_group, [node.sid], action == "self_and_leader")
        else:
            self.after(r.randint(0, 8000), self.ev_fault_now, action)

    def ev_crash_group(self, sids: list[int], with_leader: bool) -> None:
        if self.healed_at is not None:
            return
        r = self.rng
        late = []
        if with_leader:
            late = [n.sid for n in self.nodes.values()
                    if n.up and n.core is not None and n.core.leader is not None and n.sid not in sids]
        for sid in [*sids, *late]:
            # Either may come back first: whoever returns alone decides what the others find.
            self.crash(sid)
            self.after(r.randint(20, 1500) * US_PER_MS, self.ev_restart, sid)
        self.faults_done.append(f"crash {sorted(sids)}" + (f" and leader {late}" if late else ""))

    def ev_fault_now(self, kind: str = "") -> None:
        if self.healed_at is not None:
            return
        r = self.rng
        sids = sorted(self.nodes)
        kind = kind or r.choice(["crash", "crash", "crash", "outage", "outage", "partition", "partition",
                                 "isolate_leader", "reset", "restart", "wipe", "pause", "pause"])
        if kind == "pause":
            sid = r.choice(sids)
            node = self.nodes[sid]
            node.paused_until = max(node.paused_until, self.now + r.randint(100, 1500) * US_PER_MS)
            self.faults_done.append(f"pause {sid}")
            self.say(f"pause {sid} until {node.paused_until / US_PER_MS:.0f}")
        elif kind == "outage":
            # Several members lose power at once: each keeps its own part of what it had not synced.
            group = r.sample(sids, r.randint(2, len(sids)))
            for sid in group:
                self.crash(sid)
                self.after(r.randint(20, 800) * US_PER_MS, self.ev_restart, sid)
            self.faults_done.append(f"outage {sorted(group)}")
        elif kind in ("crash", "wipe"):
            sid = r.choice(sids)
            self.crash(sid)
            if kind == "wipe" and self.wipe_is_safe(sid):
                self.nodes[sid].disk_durable = DiskImage()
                kind = "wipe"
            else:
                kind = "crash"
            self.faults_done.append(f"{kind} {sid}")
            self.after(r.randint(50, 1500) * US_PER_MS, self.ev_restart, sid)
        elif kind == "restart":
            down = [s for s in sids if not self.nodes[s].up]
            if down:
                sid = r.choice(down)
                self.faults_done.append(f"restart {sid}")
                self.start(sid)
        elif kind in ("partition", "isolate_leader"):
            if kind == "isolate_leader":
                leaders = [n.sid for n in self.nodes.values() if n.core is not None and n.core.leader is not None]
                group = {leaders[0]} if leaders else {r.choice(sids)}
            else:
                group = set(r.sample(sids, r.randint(1, len(sids) - 1)))
            tag = self.rng.randint(1, 1 << 30)
            for s in group:
                self.partition[s] = tag
            self.faults_done.append(f"partition {sorted(group)}")
            self.say(f"partition {sorted(group)} from the rest")
            self.after(r.randint(100, 2000) * US_PER_MS, self.ev_heal)
        elif kind == "reset":
            conns = {(c.ends, c.ids): c for n in self.nodes.values() for c in n.conns.values()}
            if conns:
                conn = conns[r.choice(sorted(conns))]
                self.faults_done.append(f"reset {conn.ends}")
                self.break_conn(conn)

    def ev_restart(self, sid: int) -> None:
        if not self.nodes[sid].up:
            self.start(sid)

    def ev_heal(self) -> None:
        changed = [s for s, g in self.partition.items() if g != 0]
        for s in self.partition:
            self.partition[s] = 0
        if changed:
            self.say("heal")
        for a in changed:
            for b in self.nodes:
                if a != b and self.nodes[a].up and self.nodes[b].up:
                    self.after(self.delay(), self.ev_election_connected, a, self.nodes[a].incarnation, b)
                    self.after(self.delay(), self.ev_election_connected, b, self.nodes[b].incarnation, a)

    def ev_end_faults(self) -> None:
        self.healed_at = self.now
        self.ev_heal()
        for sid, node in self.nodes.items():
            if not node.up:
                self.after(self.rng.randint(0, 300) * US_PER_MS, self.start, sid)
        self.after(200 * US_PER_MS, self.ev_probe)
        self.check_logs()

    def ev_probe(self) -> None:
        if self.done:
            return
        if self.converged():
            self.done = True
            return
        if not self.probe_acked:
            ups = self.usable()
            if ups:
                self.probes.add(self.next_req)
                self.submit(self.rng.choice(ups))
        self.after(100 * US_PER_MS, self.ev_probe)

    def converged(self) -> bool:
        if not self.probe_acked:
            return False
        leader = None
        for n in self.nodes.values():
            if not n.up or not n.in_sync():
                return False
            assert n.core is not None
            if n.core.leader is not None:
                if leader is not None:
                    return False
                leader = n.sid
        if leader is None:
            return False
        m = len(self.oracle)
        return all(len(n.db) == m for n in self.nodes.values())

    # -------------------------------------------------------------- run

    def run(self) -> SimResult:
        p, r = self.p, self.rng
        for sid in self.nodes:
            self.at(r.randint(0, 50) * US_PER_MS, self.start, sid)
        self.at(r.randint(0, 100) * US_PER_MS, self.ev_write)
        for _ in range(p.faults):
            self.at(r.randint(100, p.fault_ms) * US_PER_MS, self.ev_fault)
        self.at(p.fault_ms * US_PER_MS, self.ev_end_faults)
        deadline = (p.fault_ms + p.liveness_ms) * US_PER_MS
        q = self._queue
        steps = 0
        while q and not self.done:
            t, _, fn, args = heapq.heappop(q)
            if t > deadline:
                break
            self.now = t
            fn(*args)
            steps += 1
            if steps % self.check_every == 0:
                self.check_logs()
        self.events = steps
        if not self.done:
            states = {s: (n.up, n.core.role.value if n.core else "down", n.core.phase.value if n.core else "",
                          len(n.db), n.core.last_step_down if n.core else "") for s, n in self.nodes.items()}
            self.fail(f"no convergence within {p.liveness_ms} ms after the faults ended "
                      f"(probe acked: {self.probe_acked}, committed {len(self.oracle)}): {states}")
        self.check_logs()
        assert self.healed_at is not None
        return SimResult(self.seed, self.now // US_PER_MS, steps, len(self.oracle), len(self.acked),
                         self.sync_count, sum(n.core.elections for n in self.nodes.values() if n.core),
                         self.snaps, self.truncs, (self.now - self.healed_at) // US_PER_MS, self.faults_done)


def chain_of(entries: list[tuple[int, int]]) -> int:
    h = 0
    for z, c in entries:
        h = chain(h, z, c)
    return h


def run_seed(seed: int, soak: bool = False, trace: bool = False) -> SimResult:
    return Sim(seed, SimParams.for_seed(seed, soak), trace).run()


def run_range(start: int, stop: int, soak: bool = False) -> tuple[int, list[tuple[int, str]]]:
    """Run seeds [start, stop); returns (count run, failures as (seed, message))."""
    failures = []
    for seed in range(start, stop):
        try:
            run_seed(seed, soak)
        except Violation as e:
            failures.append((seed, str(e)))
        except Exception as e:  # a crash in a core is a finding too
            failures.append((seed, f"seed {seed}: {type(e).__name__}: {e}"))
    return stop - start, failures


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m zkpy.quorum.sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, help="replay one seed")
    ap.add_argument("--seeds", default="0:200", help="a range A:B of seeds")
    ap.add_argument("--soak", type=float, default=0.0, help="run bigger seeds for this many seconds")
    ap.add_argument("-v", "--verbose", action="store_true", help="trace the run (with --seed)")
    args = ap.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    else:
        # The cores warn about what they survive (e.g. an epoch file behind its log); here that is noise.
        logging.getLogger("zkpy.quorum").setLevel(logging.ERROR)
    if args.seed is not None:
        res = run_seed(args.seed, soak=args.soak > 0, trace=args.verbose)
        print(res)
        return 0
    if args.soak > 0:
        end = time.monotonic() + args.soak
        seed = int.from_bytes(os.urandom(4), "big")
        n = 0
        while time.monotonic() < end:
            try:
                run_seed(seed, soak=True)
            except Exception as e:
                print(f"FAIL soak seed {seed}: {e}\nreplay: python -m zkpy.quorum.sim --seed {seed} --soak 1 -v")
                return 1
            seed += 1
            n += 1
        print(f"soak: {n} seeds passed")
        return 0
    a, b = (int(x) for x in args.seeds.split(":"))
    t0 = time.monotonic()
    n, failures = run_range(a, b)
    for seed, msg in failures:
        print(f"FAIL {msg}\n  replay: python -m zkpy.quorum.sim --seed {seed} -v")
    print(f"{n} seeds, {len(failures)} failures, {time.monotonic() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(_main())
