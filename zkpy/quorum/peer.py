"""``PeerCore``: one ensemble member's consensus state machine (``QuorumPeer`` without
threads, sockets or clocks).

It owns the election, the current role (a :class:`LeaderCore` or a :class:`LearnerCore`,
replaced whenever the role ends), the epochs and the in-memory history.  Inputs are
method calls; every effect is queued in a :class:`Ready` that the driver takes with
:meth:`PeerCore.take_ready` (see :mod:`zkpy.quorum.effects` for the contract).
Time only moves through :meth:`PeerCore.tick`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zkpy.proto.records import QuorumPacket
from zkpy.quorum import wire
from zkpy.quorum.effects import (
    AppendEntries,
    Connect,
    Outgoing,
    PersistItem,
    Ready,
    Role,
    SetAcceptedEpoch,
    SetCurrentEpoch,
    ZabPhase,
)
from zkpy.quorum.election import Election, Vote
from zkpy.quorum.history import History
from zkpy.quorum.leader import LeaderCore, NotLeaderError
from zkpy.quorum.learner import L_ACTIVE, LearnerCore, NotServingError
from zkpy.quorum.zxid import COUNTER_MAX, epoch_of

log = logging.getLogger(__name__)

__all__ = ["DiskState", "NotLeaderError", "NotServingError", "PeerConfig", "PeerCore"]


@dataclass(slots=True)
class PeerConfig:
    """What the core needs from zoo.cfg (times in ms, limits in ticks, as Apache's)."""

    my_id: int
    voters: frozenset[int]
    observers: frozenset[int] = frozenset()
    tick_ms: int = 2000
    init_limit: int = 10
    sync_limit: int = 5
    leader_serves: bool = True
    # FastLeaderElection's finalizeWait, minNotificationInterval, maxNotificationInterval.
    finalize_wait_ms: int = 200
    min_notification_interval_ms: int = 200
    max_notification_interval_ms: int = 60_000
    # The leader pings every half tick (Leader.lead's loop).
    ping_interval_ms: int = 0
    # Txns kept in memory to sync learners by DIFF; a learner further behind gets SNAP.
    history_limit: int = 100_000
    counter_max: int = COUNTER_MAX
    # The configuration text election notifications carry (QuorumVerifier.toString()).
    config_bytes: bytes = b""

    def __post_init__(self) -> None:
        if self.ping_interval_ms <= 0:
            self.ping_interval_ms = max(1, self.tick_ms // 2)
        if self.my_id not in self.voters and self.my_id not in self.observers:
            raise ValueError(f"server {self.my_id} is neither a voter nor an observer")
        if self.voters & self.observers:
            raise ValueError("a server cannot be both a voter and an observer")

    @property
    def observer(self) -> bool:
        return self.my_id in self.observers


@dataclass(slots=True)
class DiskState:
    """What the driver recovered: epochs and the log tail (txns ``(base_zxid, ...]``).

    ``floor_zxid`` is the oldest point the log can be rewound to (the snapshot it starts
    from).  Everything in ``entries`` is taken as logged, durable and applied (the driver
    replays the whole log into its database at start-up, as ZooKeeper does).
    """

    accepted_epoch: int = 0
    current_epoch: int = 0
    floor_zxid: int = 0
    base_zxid: int | None = None
    entries: Sequence[tuple[int, bytes]] = ()


class PeerCore:
    """A member: LOOKING until the election settles, then leading, following or observing."""

    def __init__(self, config: PeerConfig, disk: DiskState, now_ms: int = 0) -> None:
        self.config = config
        self.now = now_ms
        self.accepted_epoch = disk.accepted_epoch
        self.current_epoch = disk.current_epoch
        self.durable_accepted_epoch = disk.accepted_epoch
        self.durable_current_epoch = disk.current_epoch
        self.history = History(disk.floor_zxid, disk.base_zxid, list(disk.entries), config.history_limit)
        self.applied = self.history.last
        # Set when a TRUNC could not be honoured: the next ACKEPOCH asks for a snapshot.
        self.needs_snapshot = False
        self.election = Election(config.my_id, config.voters, finalize_wait_ms=config.finalize_wait_ms,
                                 min_interval_ms=config.min_notification_interval_ms,
                                 max_interval_ms=config.max_notification_interval_ms,
                                 config=config.config_bytes)
        self.role = Role.LOOKING
        self.leader: LeaderCore | None = None
        self.learner: LearnerCore | None = None
        self.leader_id: int | None = None
        self.serving = False
        self._readies: deque[Ready] = deque()
        self._snapshot_barrier = False
        self._token = 0
        self._callbacks: deque[tuple[int, Callable[[], None]]] = deque()
        # The broadcast path's entries of the newest Ready share one AppendEntries (and one
        # durability callback, see log_entry); encoded packets to a connection share one
        # Outgoing until something else is sent to it (see send_encoded).
        self._open_append: AppendEntries | None = None
        self._tails: dict[int, list[bytes]] = {}
        self._next_conn = -2  # connections this core opens are negative; the driver numbers accepted ones
        self._own_conns: set[int] = set()
        self.elections = 0
        self.last_step_down = ""
        self._adopt_log_epoch()
        self._start_election()
        self._after_input()

    # ------------------------------------------------------------------ introspection

    @property
    def last_logged_zxid(self) -> int:
        return self.history.last

    @property
    def epoch(self) -> int:
        """The epoch being led or followed (-1 while looking or before it is known)."""
        if self.leader is not None:
            return self.leader.epoch
        if self.learner is not None:
            return self.learner.new_epoch
        return -1

    @property
    def phase(self) -> ZabPhase:
        if self.leader is not None:
            return self.leader.phase
        if self.learner is not None:
            return self.learner.phase
        return ZabPhase.ELECTION

    @property
    def established_leader(self) -> bool:
        return self.leader is not None and self.leader.established

    def stats(self) -> dict[str, object]:
        """Figures for the four-letter words and metrics (mntr's zk_server_state, zk_followers, ...)."""
        out: dict[str, object] = {
            "role": self.role.value, "phase": self.phase.value, "leader": self.leader_id, "epoch": self.epoch,
            "serving": self.serving, "accepted_epoch": self.accepted_epoch, "current_epoch": self.current_epoch,
            "last_logged_zxid": self.history.last, "applied_zxid": self.applied, "elections": self.elections,
            "election_round": self.election.logical_clock,
        }
        if self.leader is not None:
            handlers = list(self.leader.handlers.values())
            out.update(
                learners=len(handlers),
                followers=sum(1 for h in handlers if not h.observer),
                synced_followers=sum(1 for h in handlers if not h.observer and h.forwarding),
                synced_observers=sum(1 for h in handlers if h.observer and h.forwarding),
                pending_proposals=len(self.leader.outstanding),
                pending_syncs=len(self.leader.pending_syncs),
                last_proposed_zxid=self.leader.last_proposed,
                last_committed_zxid=self.leader.last_committed,
            )
        return out

    def has_ready(self) -> bool:
        return any(not r.empty() for r in self._readies)

    def take_ready(self) -> Ready | None:
        while self._readies:
            rd = self._readies.popleft()
            if not self._readies:
                self._snapshot_barrier = False
            if not rd.empty():
                return rd
        return None

    def next_deadline(self) -> int | None:
        """When :meth:`tick` next has something to do (ms, the driver's clock)."""
        cands = [d for d in (self.election.next_deadline(),
                             self.leader.next_deadline() if self.leader else None,
                             self.learner.next_deadline() if self.learner else None) if d is not None]
        return min(cands) if cands else None

    # ------------------------------------------------------------------ inputs

    def advance_time(self, now_ms: int) -> None:
        """Move the clock without running timers (the driver ticks separately)."""
        if now_ms > self.now:
            self.now = now_ms

    def tick(self, now_ms: int) -> None:
        if now_ms > self.now:
            self.now = now_ms
        if self.role == Role.LOOKING:
            self._decided(self.election.tick(self.now))
        elif self.leader is not None:
            self.leader.tick(self.now)
        elif self.learner is not None:
            self.learner.tick(self.now)
        self._after_input()

    def election_message(self, sid: int, message: bytes | wire.Notification) -> None:
        """A notification from ``sid`` on the election channel."""
        if isinstance(message, bytes):
            try:
                n = wire.Notification.from_bytes(message)
            except wire.WireError as e:
                log.warning("peer %d: malformed notification from %d: %s", self.config.my_id, sid, e)
                return
        else:
            n = message
        if self.role == Role.LOOKING:
            self._decided(self.election.receive(sid, n, self.now))
        else:
            self.election.receive(sid, n, self.now)
        self._after_input()

    def election_connected(self, sid: int) -> None:
        self.election.peer_connected(sid)
        self._after_input()

    def quorum_accepted(self, conn: int) -> None:
        """A learner connected to our quorum port (``conn`` numbered by the driver, >= 0)."""
        if self.leader is None:
            # Only a leader listens for learners (Leader.LearnerCnxAcceptor).
            self.close(conn)
        else:
            self.leader.accepted(conn)
        self._after_input()

    def quorum_connected(self, conn: int) -> None:
        """A connection this core asked for (Ready.connect) is up."""
        if self.learner is not None:
            self.learner.connected(conn)
        self._after_input()

    def quorum_closed(self, conn: int) -> None:
        self._own_conns.discard(conn)
        if self.leader is not None:
            self.leader.closed(conn)
        elif self.learner is not None:
            self.learner.closed(conn)
        self._after_input()

    def quorum_packet(self, conn: int, qp: QuorumPacket, snapshot: bytes | None = None) -> None:
        """A packet on a quorum connection; ``snapshot`` is the database that followed a SNAP."""
        self.quorum_packets(conn, [(qp, snapshot)])

    def quorum_packets(self, conn: int, packets: list[tuple[QuorumPacket, bytes | None]]) -> None:
        """Packets that arrived together on a connection, in order: the ACKs of a batch commit
        together, the COMMITs of a batch are applied together."""
        for qp, snapshot in packets:
            if self.leader is not None:
                self.leader.packet(conn, qp)
            elif self.learner is not None:
                self.learner.packet(conn, qp, snapshot)
            else:
                self.close(conn)
                break
        self._after_input()

    def persisted(self, token: int) -> None:
        """Every persist item of the Readies up to ``token`` is durable."""
        cbs = self._callbacks
        while cbs and cbs[0][0] <= token:
            _, cb = cbs.popleft()
            cb()
        self._after_input()

    # -- requests from the server

    def propose(self, entry: bytes) -> int:
        """Leader: log and broadcast ``entry`` (TxnHeader + txn) under the next zxid, returned."""
        if self.leader is None:
            raise NotLeaderError("not the leader")
        try:
            return self.leader.propose(entry)
        finally:
            self._after_input()

    def forward(self, request: bytes, authinfo: list | None = None) -> None:
        """Learner: send a client write to the leader (REQUEST data: session, cxid, type, body),
        with the client's auth ids (the leader checks ACLs with them)."""
        if self.learner is None:
            raise NotServingError("not following a leader")
        self.learner.forward(request, authinfo)
        self._after_input()

    def sync(self, token: object, request: bytes = b"") -> None:
        """``token`` comes back in Ready.syncs_done once everything committed before now is
        applied here; a learner forwards ``request`` (a sync REQUEST) to do so."""
        if self.leader is not None:
            self.leader.local_sync(token)
        elif self.learner is not None:
            self.learner.sync(token, request)
        else:
            raise NotServingError("not serving")
        self._after_input()

    def touch(self, session_id: int, timeout_ms: int) -> None:
        """Learner: a local session is alive; reported to the leader with the next PING reply."""
        if self.learner is not None:
            self.learner.touch(session_id, timeout_ms)

    def revalidate(self, session_id: int, timeout_ms: int) -> None:
        if self.learner is None:
            raise NotServingError("not following a leader")
        self.learner.revalidate(session_id, timeout_ms)
        self._after_input()

    def revalidate_reply(self, sid: int, session_id: int, valid: bool) -> None:
        if self.leader is not None:
            self.leader.revalidate_reply(sid, session_id, valid)
            self._after_input()

    # ------------------------------------------------------------------ services for the role cores

    def rd(self) -> Ready:
        if not self._readies:
            self._new_ready()
        return self._readies[-1]

    def _new_ready(self) -> None:
        self._readies.append(Ready())
        self._tails.clear()

    def send(self, conn: int | None, qp: QuorumPacket, with_snapshot: bool = False) -> None:
        if conn is None:
            return
        rd = self.rd()
        self._tails.pop(conn, None)
        rd.packets.append(Outgoing(conn, qp, with_snapshot))
        if with_snapshot:
            # The driver serializes the database when it sends this: nothing may be applied
            # after it in the same Ready.
            self._snapshot_barrier = True

    def send_encoded(self, conn: int | None, data: bytes) -> None:
        """Send a packet already encoded (:func:`wire.encode_packet`); consecutive ones to a
        connection travel in one Outgoing."""
        if conn is None:
            return
        rd = self.rd()
        tail = self._tails.get(conn)
        if tail is None:
            tail = self._tails[conn] = []
            rd.packets.append(Outgoing(conn, None, False, tail))
        tail.append(data)

    def connect(self, sid: int) -> int:
        conn = self._next_conn
        self._next_conn -= 1
        self._own_conns.add(conn)
        self.rd().connect.append(Connect(conn, sid))
        return conn

    def close(self, conn: int) -> None:
        self._own_conns.discard(conn)
        self.rd().close.append(conn)

    def persist(self, items: list[PersistItem], callback: Callable[[], None] | None = None) -> None:
        rd = self.rd()
        if not rd.persist_token:
            self._token += 1
            rd.persist_token = self._token
        rd.persist.extend(items)
        for item in items:
            if isinstance(item, SetAcceptedEpoch):
                self.accepted_epoch = item.epoch
                self._callbacks.append((rd.persist_token, self._epoch_durable(item)))
            elif isinstance(item, SetCurrentEpoch):
                self.current_epoch = item.epoch
                self._callbacks.append((rd.persist_token, self._epoch_durable(item)))
        if callback is not None:
            self._callbacks.append((rd.persist_token, callback))

    def log_entry(self, role: LeaderCore | LearnerCore, zxid: int, data: bytes) -> None:
        """Append a broadcast entry to the history and the log; ``role.entries_durable(z)``
        follows once it is durable.  The entries of one Ready share an AppendEntries and one
        such call (for the last of them), so a batch costs one callback, not one per txn."""
        hist = self.history
        hist.append(zxid, data)
        rd = self.rd()
        if not rd.persist_token:
            self._token += 1
            rd.persist_token = self._token
        token = rd.persist_token
        items = rd.persist
        ae = self._open_append
        if ae is None or not items or items[-1] is not ae:
            ae = self._open_append = AppendEntries([], [])
            items.append(ae)
        ae.zxids.append(zxid)
        ae.entries.append(data)
        cbs = self._callbacks
        mark = cbs[-1][1] if cbs and cbs[-1][0] == token else None
        if not isinstance(mark, _EntriesDurable) or mark.role is not role or mark.generation != hist.generation:
            mark = _EntriesDurable(hist, role)
            cbs.append((token, mark))
        mark.zxid = zxid

    def _epoch_durable(self, item: SetAcceptedEpoch | SetCurrentEpoch) -> Callable[[], None]:
        def done() -> None:
            if isinstance(item, SetAcceptedEpoch):
                self.durable_accepted_epoch = max(self.durable_accepted_epoch, item.epoch)
            else:
                self.durable_current_epoch = max(self.durable_current_epoch, item.epoch)
        return done

    def apply_to(self, zxid: int) -> None:
        """Queue the history's entries after ``applied`` up to ``zxid`` for the database."""
        if zxid <= self.applied:
            return
        if self._snapshot_barrier:
            self._new_ready()
            self._snapshot_barrier = False
        entries = self.history.between(self.applied, zxid)
        self.rd().apply.extend(entries)
        if entries:
            self.applied = entries[-1][0]
        self.history.trim(self.applied)

    def rewound(self, zxid: int, snapshot: bool = False) -> None:
        """The database goes back to (TRUNC) or is replaced at (SNAP) ``zxid`` by a persist item."""
        self.applied = zxid if snapshot else min(self.applied, zxid)

    def step_down(self, why: str) -> None:
        """The role ends (lost quorum, timeout, protocol error): back to LOOKING."""
        log.info("peer %d: %s ends: %s", self.config.my_id, self.role.value, why)
        self.last_step_down = why
        self._end_of_input()  # what this input committed before the role ended still counts
        if self.leader is not None:
            self.leader.shutdown()
            self.leader = None
        if self.learner is not None:
            self.learner.shutdown()
            self.learner = None
        for conn in list(self._own_conns):
            self.close(conn)
        self._start_election()

    def leader_established(self, leader: LeaderCore) -> None:
        log.info("peer %d: leading epoch %d", self.config.my_id, leader.epoch)

    def learner_serving(self, learner: LearnerCore) -> None:
        log.info("peer %d: %s leader %d in epoch %d", self.config.my_id, self.role.value, learner.leader_sid,
                 learner.new_epoch)

    # ------------------------------------------------------------------ internals

    def _adopt_log_epoch(self) -> None:
        """A learner persists the synced history before the new currentEpoch, so a crash in
        between leaves txns of an epoch newer than currentEpoch in the log.  Apache refuses to
        start then ("The current epoch ... is older than the last zxid"); holding a txn of
        epoch e means holding the history epoch e started from, so claiming e is sound."""
        e = epoch_of(self.history.last)
        items: list[PersistItem] = []
        if e > self.current_epoch:
            log.warning("peer %d: currentEpoch %d is older than the last zxid 0x%x; taking epoch %d",
                        self.config.my_id, self.current_epoch, self.history.last, e)
            if e > self.accepted_epoch:
                items.append(SetAcceptedEpoch(e))
            items.append(SetCurrentEpoch(e))
            self.persist(items)

    def _start_election(self) -> None:
        self.role = Role.LOOKING
        self.leader_id = None
        self.elections += 1
        self.rd().role = Role.LOOKING
        self._decided(self.election.start(self.now, self.history.last, self.current_epoch))

    def _decided(self, vote: Vote | None) -> None:
        if vote is None:
            return
        cfg = self.config
        self.leader_id = vote.leader
        if vote.state == wire.LEADING:
            self.role = Role.LEADING
            self.leader = LeaderCore(self)
        else:
            self.role = Role.OBSERVING if vote.state == wire.OBSERVING else Role.FOLLOWING
            self.learner = LearnerCore(self, vote.leader, observer=cfg.observer)
        self.rd().role = self.role
        log.info("peer %d: election round %d decided: %s (leader %d)", cfg.my_id, self.election.logical_clock,
                 self.role.value, vote.leader)

    def _end_of_input(self) -> None:
        leader, learner = self.leader, self.learner
        if leader is not None and leader.commit_due:
            leader.try_commit()
        elif learner is not None and learner.apply_due:
            learner.apply_committed()

    def _after_input(self) -> None:
        self._end_of_input()
        out = self.election.outbox
        if out:
            self.rd().election.extend(out)
            out.clear()
        if self.leader is not None:
            serving = self.leader.established and self.config.leader_serves
        elif self.learner is not None:
            serving = self.learner.state == L_ACTIVE
        else:
            serving = False
        if serving != self.serving:
            self.serving = serving
            self.rd().serving = serving



class _EntriesDurable:
    """The durability callback of a run of broadcast entries (:meth:`PeerCore.log_entry`)."""

    __slots__ = ("generation", "history", "role", "zxid")

    def __init__(self, history: History, role: LeaderCore | LearnerCore) -> None:
        self.history = history
        self.role = role
        self.generation = history.generation
        self.zxid = -1

    def __call__(self) -> None:
        self.history.mark_durable(self.zxid, self.generation)
        if self.role.alive:
            self.role.entries_durable(self.zxid)
