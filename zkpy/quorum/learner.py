"""The learner's side of ZAB: a follower or an observer (``Learner``, ``Follower``,
``Observer`` in Apache ZooKeeper).

It connects to the leader, sends FOLLOWERINFO / OBSERVERINFO, takes the new epoch
from LEADERINFO (persisting acceptedEpoch before ACKEPOCH), then receives the sync:
DIFF / TRUNC / SNAP, the txns it lacks as PROPOSAL + COMMIT, proposals not yet
committed, and NEWLEADER.  On NEWLEADER it persists the synced history *before*
its new currentEpoch (ZOOKEEPER-4643 / 4646 / 3023: a member must never claim the
new epoch with a history it might lose), and only then acknowledges.  UPTODATE
makes it apply what is committed and serve.

A follower acknowledges each proposal once it is durable and applies on COMMIT;
an observer logs and applies each INFORM.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING

from zkpy.proto.records import QuorumPacket
from zkpy.quorum import wire
from zkpy.quorum.effects import (
    AppendEntries,
    InstallSnapshot,
    PersistItem,
    SetAcceptedEpoch,
    SetCurrentEpoch,
    TruncateLog,
    ZabPhase,
)
from zkpy.quorum.zxid import epoch_of, make_zxid

if TYPE_CHECKING:
    from zkpy.quorum.peer import PeerCore

log = logging.getLogger(__name__)

# Learner states, in order.
L_CONNECTING = 0
L_WAIT_LEADERINFO = 1
L_WAIT_EPOCH_DURABLE = 2  # acceptedEpoch being persisted before ACKEPOCH
L_WAIT_SYNC_MODE = 3  # expecting DIFF / TRUNC / SNAP
L_SYNC = 4  # collecting the sync until NEWLEADER
L_WAIT_NEWLEADER_DURABLE = 5  # the synced history and currentEpoch being persisted
L_WAIT_UPTODATE = 6
L_ACTIVE = 7

# Learner.connectToLeader retries this often until initLimit runs out.
CONNECT_RETRY_MS = 100


class NotServingError(RuntimeError):
    """A request reached a learner that is not in sync with a leader."""


class LearnerCore:
    """One attempt at following (or observing) one leader; discarded when it ends."""

    def __init__(self, host: PeerCore, leader_sid: int, observer: bool) -> None:
        self.host = host
        self.my_id = host.config.my_id
        self.leader_sid = leader_sid
        self.observer = observer
        self.alive = True
        self.state = L_CONNECTING
        self.phase = ZabPhase.DISCOVERY
        self.conn: int | None = None
        self.new_epoch = -1
        now = host.now
        cfg = host.config
        self.connect_deadline_ms = now + cfg.init_limit * cfg.tick_ms
        self.read_deadline_ms: int | None = None
        self.retry_at_ms: int | None = None
        # The sync as received, applied at NEWLEADER.
        self.mode = -1
        self.trunc_to = -1
        self.snapshot: tuple[int, bytes] | None = None
        self.synced: list[tuple[int, bytes]] = []
        self.commit_point = -1
        # Proposals logged but not yet acknowledged, in zxid order (ACKed once durable).
        self.unacked: deque[int] = deque()
        # COMMITs arrived since the last apply (applied once per input, see apply_committed).
        self.apply_due = False
        self.touches: dict[int, int] = {}
        self.pending_syncs: deque[object] = deque()
        self._connect()

    # ------------------------------------------------------------------ connection

    def _connect(self) -> None:
        self.conn = self.host.connect(self.leader_sid)
        self.state = L_CONNECTING
        self.retry_at_ms = None

    def connected(self, conn: int) -> None:
        if conn != self.conn or self.state != L_CONNECTING:
            return
        cfg = self.host.config
        ptype = wire.OBSERVERINFO if self.observer else wire.FOLLOWERINFO
        self.host.send(conn, wire.packet(ptype, make_zxid(self.host.accepted_epoch, 0),
                                         wire.encode_learner_info(self.my_id)))
        self.state = L_WAIT_LEADERINFO
        self.read_deadline_ms = self.host.now + cfg.init_limit * cfg.tick_ms

    def closed(self, conn: int) -> None:
        if conn != self.conn:
            return
        if self.state <= L_WAIT_LEADERINFO and self.host.now + CONNECT_RETRY_MS < self.connect_deadline_ms:
            # The leader may not be listening yet (it decides a moment after us): try again.
            self.state = L_CONNECTING
            self.conn = None
            self.read_deadline_ms = None
            self.retry_at_ms = self.host.now + CONNECT_RETRY_MS
            return
        self._fail("connection to the leader closed")

    def shutdown(self) -> None:
        self.alive = False
        if self.conn is not None:
            self.host.close(self.conn)

    def _fail(self, why: str) -> None:
        self.host.step_down(why)

    # ------------------------------------------------------------------ packets

    def packet(self, conn: int, qp: QuorumPacket, snapshot: bytes | None) -> None:
        if conn != self.conn:
            self.host.close(conn)
            return
        cfg = self.host.config
        limit = cfg.sync_limit if self.state >= L_WAIT_UPTODATE else cfg.init_limit
        self.read_deadline_ms = self.host.now + limit * cfg.tick_ms
        try:
            self._dispatch(qp, snapshot)
        except wire.WireError as e:
            self._fail(f"malformed {wire.describe(qp)}: {e}")

    def _dispatch(self, qp: QuorumPacket, snapshot: bytes | None) -> None:
        t = qp.type
        st = self.state
        if st == L_WAIT_LEADERINFO:
            if t != wire.LEADERINFO:
                self._fail(f"expected LEADERINFO, got {wire.describe(qp)}")
            else:
                self._leaderinfo(qp)
        elif st == L_WAIT_SYNC_MODE:
            self._sync_mode(qp, snapshot)
        elif st == L_SYNC:
            self._sync_packet(qp)
        elif st in (L_WAIT_NEWLEADER_DURABLE, L_WAIT_UPTODATE, L_ACTIVE):
            self._broadcast_packet(qp)
        elif t != wire.PING:
            self._fail(f"unexpected {wire.describe(qp)} in state {st}")

    def _leaderinfo(self, qp: QuorumPacket) -> None:
        new_epoch = epoch_of(qp.zxid)
        accepted = self.host.accepted_epoch
        self.new_epoch = new_epoch
        if new_epoch > accepted:
            current = self.host.current_epoch
            self.state = L_WAIT_EPOCH_DURABLE
            self.host.persist([SetAcceptedEpoch(new_epoch)], lambda: self._send_ackepoch(current))
        elif new_epoch == accepted:
            # Already accepted (an earlier attempt with this leader): -1 skips the leader's check.
            self._send_ackepoch(-1)
        else:
            self._fail(f"leader's epoch {new_epoch} is less than our accepted epoch {accepted}")

    def _send_ackepoch(self, current_epoch: int) -> None:
        if not self.alive:
            return
        # A learner that found it cannot rewind as told reports no history: it gets a snapshot.
        last = -1 if self.host.needs_snapshot else self.host.history.last
        self.host.send(self.conn, wire.packet(wire.ACKEPOCH, last, wire.encode_int(current_epoch)))
        self.state = L_WAIT_SYNC_MODE
        self.phase = ZabPhase.SYNCHRONIZATION

    def _sync_mode(self, qp: QuorumPacket, snapshot: bytes | None) -> None:
        t = qp.type
        hist = self.host.history
        if t == wire.DIFF:
            self.commit_point = qp.zxid
        elif t == wire.TRUNC:
            if qp.zxid < hist.floor:
                self.host.needs_snapshot = True
                self._fail(f"cannot truncate to 0x{qp.zxid:x}, before our snapshot at 0x{hist.floor:x}")
                return
            self.trunc_to = qp.zxid
            self.commit_point = qp.zxid
        elif t == wire.SNAP:
            if snapshot is None:
                self._fail("SNAP without a snapshot")
                return
            self.snapshot = (qp.zxid, snapshot)
            self.commit_point = qp.zxid
        elif t == wire.PING:
            return
        else:
            self._fail(f"expected DIFF, TRUNC or SNAP, got {wire.describe(qp)}")
            return
        self.mode = t
        self.state = L_SYNC

    def _synced_last(self) -> int:
        if self.synced:
            return self.synced[-1][0]
        if self.snapshot is not None:
            return self.snapshot[0]
        if self.trunc_to >= 0:
            return self.trunc_to
        return self.host.history.last

    def _sync_packet(self, qp: QuorumPacket) -> None:
        t = qp.type
        if t == wire.PROPOSAL:
            if qp.zxid <= self._synced_last() or qp.data is None:
                self._fail(f"out-of-order {wire.describe(qp)} after 0x{self._synced_last():x}")
                return
            self.synced.append((qp.zxid, qp.data))
        elif t == wire.COMMIT:
            if qp.zxid > self._synced_last():
                self._fail(f"COMMIT 0x{qp.zxid:x} for a txn not received")
                return
            self.commit_point = max(self.commit_point, qp.zxid)
        elif t == wire.NEWLEADER:
            self._newleader(qp)
        elif t != wire.PING:
            self._fail(f"unexpected {wire.describe(qp)} during sync")

    def _newleader(self, qp: QuorumPacket) -> None:
        e = epoch_of(qp.zxid)
        if e != self.new_epoch:
            self._fail(f"NEWLEADER for epoch {e}, expected {self.new_epoch}")
            return
        host = self.host
        hist = host.history
        items: list[PersistItem] = []
        before = [(z, d) for z, d in self.synced if epoch_of(z) < e]
        after = [(z, d) for z, d in self.synced if epoch_of(z) >= e]
        snap_after_epoch = self.snapshot is not None and epoch_of(self.snapshot[0]) >= e
        if self.mode == wire.TRUNC:
            items.append(TruncateLog(self.trunc_to))
            hist.truncate(self.trunc_to)
            host.rewound(self.trunc_to)
        if self.snapshot is not None and not snap_after_epoch:
            items.append(InstallSnapshot(*self.snapshot))
            hist.reset(self.snapshot[0])
            host.rewound(self.snapshot[0], snapshot=True)
        gen = hist.generation
        if before:
            items.append(AppendEntries([z for z, _ in before], [d for _, d in before]))
            for z, d in before:
                hist.append(z, d)
        # The history is logged first, then the epoch: with the epoch durable this member may
        # win an election as a member of epoch e, so it must hold epoch e's starting history.
        items.append(SetCurrentEpoch(e))
        if snap_after_epoch and self.snapshot is not None:
            # A snapshot already inside epoch e: a member of epoch e that lost it is still behind
            # every member that has e's committed txns, so the order is safe either way.
            items.append(InstallSnapshot(*self.snapshot))
            hist.reset(self.snapshot[0])
            host.rewound(self.snapshot[0], snapshot=True)
            gen = hist.generation
        if after:
            items.append(AppendEntries([z for z, _ in after], [d for _, d in after]))
            for z, d in after:
                hist.append(z, d)
        to_ack = [] if self.observer else [z for z, _ in self.synced if z > self.commit_point]
        last = hist.last
        host.needs_snapshot = False
        self.snapshot = None
        self.synced = []
        self.state = L_WAIT_NEWLEADER_DURABLE
        host.persist(items, lambda: self._newleader_persisted(qp.zxid, to_ack, last, gen))

    def _newleader_persisted(self, newleader_zxid: int, to_ack: list[int], last: int, gen: int) -> None:
        self.host.history.mark_durable(last, gen)
        if not self.alive:
            return
        self.host.send(self.conn, wire.packet(wire.ACK, newleader_zxid))
        for z in to_ack:
            self.host.send(self.conn, wire.packet(wire.ACK, z))
        if self.state == L_WAIT_NEWLEADER_DURABLE:
            self.state = L_WAIT_UPTODATE
        cfg = self.host.config
        self.read_deadline_ms = self.host.now + cfg.sync_limit * cfg.tick_ms

    def _broadcast_packet(self, qp: QuorumPacket) -> None:
        t = qp.type
        hist = self.host.history
        if t == wire.PROPOSAL and not self.observer:
            if qp.zxid <= hist.last or qp.data is None:
                self._fail(f"{wire.describe(qp)} does not follow 0x{hist.last:x}")
                return
            self.host.log_entry(self, qp.zxid, qp.data)
            self.unacked.append(qp.zxid)
        elif t == wire.COMMIT and not self.observer:
            if qp.zxid > hist.last:
                self._fail(f"COMMIT 0x{qp.zxid:x} for a txn not received")
                return
            if qp.zxid > self.commit_point:
                self.commit_point = qp.zxid
                self.apply_due = True
        elif t == wire.INFORM and self.observer:
            if qp.zxid <= hist.last or qp.data is None:
                self._fail(f"{wire.describe(qp)} does not follow 0x{hist.last:x}")
                return
            self.host.log_entry(self, qp.zxid, qp.data)
            self.commit_point = qp.zxid
            self.apply_due = True
        elif t == wire.UPTODATE:
            if self.state != L_WAIT_UPTODATE:
                self._fail("UPTODATE before our NEWLEADER ACK")
                return
            self._uptodate()
        elif t == wire.PING:
            if self.state >= L_WAIT_UPTODATE:
                self.host.send(self.conn, wire.packet(wire.PING, qp.zxid, wire.encode_touches(self.touches)))
                self.touches = {}
        elif t == wire.SYNC:
            if self.pending_syncs:
                self.host.rd().syncs_done.append(self.pending_syncs.popleft())
        elif t == wire.REVALIDATE:
            session, valid = wire.decode_revalidate_response(qp.data)
            self.host.rd().revalidated.append((session, valid))
        else:
            log.warning("learner %d: unexpected %s", self.my_id, wire.describe(qp))

    def entries_durable(self, zxid: int) -> None:
        """Everything up to ``zxid`` is in our log: acknowledge the proposals among it."""
        q = self.unacked
        ack = self.state >= L_WAIT_UPTODATE
        host = self.host
        while q and q[0] <= zxid:
            z = q.popleft()
            if ack:
                host.send_encoded(self.conn, wire.encode_packet(wire.ACK, z))

    def apply_committed(self) -> None:
        """Apply what the COMMITs (INFORMs) of this input committed."""
        self.apply_due = False
        if self.state == L_ACTIVE:
            self.host.apply_to(self.commit_point)

    def _uptodate(self) -> None:
        self.state = L_ACTIVE
        self.phase = ZabPhase.BROADCAST
        self.host.apply_to(min(self.commit_point, self.host.history.last))
        self.host.send(self.conn, wire.packet(wire.ACK, make_zxid(self.new_epoch, 0)))
        self.host.election.update_peer_epoch(self.new_epoch)
        self.host.learner_serving(self)

    # ------------------------------------------------------------------ requests

    def forward(self, request: bytes, authinfo: list | None = None) -> None:
        if self.state != L_ACTIVE:
            raise NotServingError("not in sync with a leader")
        self.host.send_encoded(self.conn, wire.encode_packet(wire.REQUEST, -1, request, authinfo))

    def sync(self, token: object, request: bytes) -> None:
        if self.state != L_ACTIVE:
            raise NotServingError("not in sync with a leader")
        self.pending_syncs.append(token)
        self.host.send(self.conn, wire.packet(wire.REQUEST, -1, request))

    def touch(self, session_id: int, timeout_ms: int) -> None:
        self.touches[session_id] = timeout_ms

    def revalidate(self, session_id: int, timeout_ms: int) -> None:
        if self.state != L_ACTIVE:
            raise NotServingError("not in sync with a leader")
        self.host.send(self.conn, wire.packet(wire.REVALIDATE, -1,
                                              wire.encode_revalidate_request(session_id, timeout_ms)))

    # ------------------------------------------------------------------ time

    def tick(self, now: int) -> None:
        if self.state == L_CONNECTING:
            if self.retry_at_ms is not None and now >= self.retry_at_ms:
                if now >= self.connect_deadline_ms:
                    self._fail("could not connect to the leader within initLimit")
                    return
                self._connect()
            elif self.retry_at_ms is None and now >= self.connect_deadline_ms:
                self._fail("could not connect to the leader within initLimit")
            return
        if self.read_deadline_ms is not None and now >= self.read_deadline_ms:
            self._fail(f"nothing from the leader for {now - self.read_deadline_ms} ms past the limit")

    def next_deadline(self) -> int | None:
        if self.state == L_CONNECTING:
            return self.retry_at_ms if self.retry_at_ms is not None else self.connect_deadline_ms
        return self.read_deadline_ms
