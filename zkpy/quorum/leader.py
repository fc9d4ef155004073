"""The leader's side of ZAB: discovery, synchronization and broadcast (``Leader`` and
``LearnerHandler`` in Apache ZooKeeper).

Discovery: learners connect and send FOLLOWERINFO / OBSERVERINFO with their accepted
epoch; once a quorum of voters (this leader included) is in, the new epoch is one more
than every accepted epoch seen, persisted as this leader's acceptedEpoch, and offered
in LEADERINFO.  Each learner answers ACKEPOCH with its current epoch and last zxid.
A quorum of ACKEPOCHs lets the leader persist currentEpoch and sync each learner
(DIFF / TRUNC / SNAP, then NEWLEADER).  A quorum of NEWLEADER ACKs establishes the
epoch: its history is committed, UPTODATE goes out and broadcast begins.

Broadcast: PROPOSAL to voters, ACK back after each voter's fsync, COMMIT (INFORM to
observers) once a quorum, this leader's own fsync included, has acknowledged, strictly
in zxid order.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from typing import TYPE_CHECKING

from zkpy.proto.records import QuorumPacket
from zkpy.quorum import wire
from zkpy.quorum.effects import SetAcceptedEpoch, SetCurrentEpoch, ZabPhase
from zkpy.quorum.zxid import counter_of, epoch_of, make_zxid

if TYPE_CHECKING:
    from zkpy.quorum.history import History
    from zkpy.quorum.peer import PeerCore

log = logging.getLogger(__name__)

OP_SYNC = 9  # OpCode.sync: a forwarded sync is answered by the leader itself
_ZXID_AT = struct.Struct(">q")
TXN_HEADER_ZXID_OFFSET = 12  # TxnHeader {long clientId, int cxid, long zxid, ...}

# Handler states, in the order a learner goes through them.
H_NEW = 0  # connected, nothing received yet
H_WAIT_EPOCH = 1  # FOLLOWERINFO in, the new epoch not decided (or not durable) yet
H_WAIT_ACKEPOCH = 2  # LEADERINFO sent
H_WAIT_SYNC = 3  # ACKEPOCH in, waiting for a quorum of them
H_SYNCING = 4  # sync packets and NEWLEADER sent, waiting for its ACK
H_WAIT_UPTODATE = 5  # NEWLEADER acknowledged, epoch not established yet
H_ACTIVE = 6  # UPTODATE sent


class NotLeaderError(RuntimeError):
    """A write reached a member that is not an established leader."""


class ZxidRolloverError(RuntimeError):
    """The epoch's zxid counter is exhausted; a new election starts a new epoch."""


class LearnerHandle:
    """The leader's state for one learner connection."""

    __slots__ = ("conn", "forwarding", "last_recv_ms", "observer", "peer_zxid", "pings_recv", "pings_sent", "sid",
                 "state")

    def __init__(self, conn: int, now_ms: int) -> None:
        self.conn = conn
        self.sid = -1
        self.observer = False
        self.state = H_NEW
        self.last_recv_ms = now_ms
        self.peer_zxid = -1
        # Whether proposals and commits are being queued to it (from its sync on).
        self.forwarding = False
        # PINGs go only to learners past NEWLEADER, which answer every one in order, so the
        # n-th reply proves the learner still followed us after our n-th PING.
        self.pings_sent = 0
        self.pings_recv = 0


class SyncWait:
    """A sync waiting for the commit of ``needed`` and a quorum still following us."""

    __slots__ = ("conn", "needed", "targets", "token")

    def __init__(self, needed: int, conn: int | None, token: object) -> None:
        self.needed = needed
        self.conn = conn
        self.token = token
        # learner connection -> the PING number whose answer confirms us
        self.targets: dict[int, int] = {}


class LeaderCore:
    """One term of leadership; discarded when this member stops leading."""

    def __init__(self, host: PeerCore) -> None:
        self.host = host
        cfg = host.config
        self.my_id = cfg.my_id
        self.voters = cfg.voters
        self.alive = True
        self.phase = ZabPhase.DISCOVERY
        self.epoch = -1
        self.epoch_durable = False
        self.established = False
        # StateSummary: no follower may be ahead of this when the epoch is agreed.
        self.summary = (host.current_epoch, host.history.last)
        self.connecting: dict[int, int] = {self.my_id: host.accepted_epoch}
        self.epoch_acks: set[int] = set()
        self.epoch_ack_quorum = False
        self.newleader_acks: set[int] = set()
        self.handlers: dict[int, LearnerHandle] = {}
        self.by_sid: dict[int, int] = {}
        # zxid -> followers (voters) that logged it; insertion order is zxid order.  This
        # leader's own vote is ``self_durable``: everything up to it is in its log.
        self.outstanding: dict[int, set[int]] = {}
        self.self_durable = host.history.durable
        self._needed = len(self.voters) // 2 + 1
        # ACKs arrived since the last commit attempt (made once per input, see try_commit).
        self.commit_due = False
        self.counter = 0
        self.last_proposed = host.history.last
        self.last_committed = -1
        self.pending_syncs: deque[SyncWait] = deque()
        now = host.now
        self.phase_deadline_ms: int | None = now + cfg.init_limit * cfg.tick_ms
        self.next_ping_ms = now + cfg.ping_interval_ms
        # Leader.lead loads the database first: everything logged is applied before any sync,
        # so a SNAP sent during discovery carries this member's whole history.
        host.apply_to(host.history.last)
        self._maybe_decide_epoch()

    # ------------------------------------------------------------------ helpers

    def _quorum(self, sids: set[int] | dict[int, int]) -> bool:
        return len(self.voters.intersection(sids)) * 2 > len(self.voters)

    def _send(self, h: LearnerHandle, qp: QuorumPacket, with_snapshot: bool = False) -> None:
        self.host.send(h.conn, qp, with_snapshot)

    def _drop(self, h: LearnerHandle, why: str) -> None:
        log.info("leader %d: dropping learner %d: %s", self.my_id, h.sid, why)
        self.handlers.pop(h.conn, None)
        if self.by_sid.get(h.sid) == h.conn:
            del self.by_sid[h.sid]
        self.host.close(h.conn)

    def _fail(self, why: str) -> None:
        self.host.step_down(why)

    # ------------------------------------------------------------------ connections

    def accepted(self, conn: int) -> None:
        self.handlers[conn] = LearnerHandle(conn, self.host.now)

    def closed(self, conn: int) -> None:
        h = self.handlers.pop(conn, None)
        if h is not None and self.by_sid.get(h.sid) == conn:
            del self.by_sid[h.sid]

    def shutdown(self) -> None:
        self.alive = False
        for conn in list(self.handlers):
            self.host.close(conn)
        self.handlers.clear()
        self.by_sid.clear()

    # ------------------------------------------------------------------ packets

    def packet(self, conn: int, qp: QuorumPacket) -> None:
        h = self.handlers.get(conn)
        if h is None:
            self.host.close(conn)
            return
        h.last_recv_ms = self.host.now
        t = qp.type
        try:
            if h.state == H_NEW:
                self._learner_info(h, qp)
            elif h.state == H_WAIT_ACKEPOCH:
                self._ack_epoch(h, qp)
            elif h.state == H_SYNCING:
                self._newleader_ack(h, qp)
            elif h.state in (H_WAIT_UPTODATE, H_ACTIVE):
                self._broadcast_packet(h, qp)
            elif t != wire.PING:
                self._drop(h, f"unexpected {wire.describe(qp)} in state {h.state}")
        except wire.WireError as e:
            self._drop(h, f"malformed {wire.describe(qp)}: {e}")

    def _learner_info(self, h: LearnerHandle, qp: QuorumPacket) -> None:
        if qp.type not in (wire.FOLLOWERINFO, wire.OBSERVERINFO):
            self._drop(h, f"first packet {wire.describe(qp)} is not FOLLOWERINFO or OBSERVERINFO")
            return
        sid, _version = wire.decode_learner_info(qp.data)
        cfg = self.host.config
        if sid not in cfg.voters and sid not in cfg.observers:
            self._drop(h, f"server {sid} is not in the configuration")
            return
        h.sid = sid
        h.observer = qp.type == wire.OBSERVERINFO or sid not in self.voters
        old = self.by_sid.get(sid)
        if old is not None and old != h.conn and old in self.handlers:
            # The same member again: its previous connection is dead, whether or not we noticed.
            self._drop(self.handlers[old], "replaced by a new connection")
        self.by_sid[sid] = h.conn
        h.state = H_WAIT_EPOCH
        accepted = epoch_of(qp.zxid)
        if 0 <= self.epoch < accepted:
            # It promised a later epoch (to a leader that never established it) and refuses ours.
            # Apache leaves it out for as long as this leader lasts; a new election, whose epoch
            # counts its acceptance, lets it back in.
            self._fail(f"server {sid} accepted epoch {accepted}, after ours ({self.epoch})")
            return
        if self.epoch < 0:
            prev = self.connecting.get(sid, -1)
            # Observers' epochs count towards the new epoch (it must exceed every accepted one)
            # but not towards the quorum.
            self.connecting[sid] = max(prev, accepted)
            self._maybe_decide_epoch()
        elif self.epoch_durable:
            self._send_leaderinfo(h)

    def _maybe_decide_epoch(self) -> None:
        if self.epoch >= 0 or not self._quorum(self.connecting):
            return
        self.epoch = max(self.connecting.values()) + 1
        log.info("leader %d: new epoch %d", self.my_id, self.epoch)
        self.host.persist([SetAcceptedEpoch(self.epoch)], self._epoch_persisted)

    def _epoch_persisted(self) -> None:
        if not self.alive:
            return
        self.epoch_durable = True
        self.phase_deadline_ms = self.host.now + self.host.config.init_limit * self.host.config.tick_ms
        for h in list(self.handlers.values()):
            if h.state == H_WAIT_EPOCH:
                self._send_leaderinfo(h)
        self.epoch_acks.add(self.my_id)
        self._maybe_epoch_ack_quorum()

    def _send_leaderinfo(self, h: LearnerHandle) -> None:
        self._send(h, wire.packet(wire.LEADERINFO, make_zxid(self.epoch, 0),
                                  wire.encode_int(wire.ZAB_PROTOCOL_VERSION)))
        h.state = H_WAIT_ACKEPOCH

    def _ack_epoch(self, h: LearnerHandle, qp: QuorumPacket) -> None:
        if qp.type != wire.ACKEPOCH:
            self._drop(h, f"{wire.describe(qp)} is not ACKEPOCH")
            return
        peer_epoch = wire.decode_int(qp.data, "ACKEPOCH")
        if (not self.established and not h.observer and peer_epoch != -1
                and (peer_epoch, qp.zxid) > self.summary):
            self._fail(f"follower {h.sid} is ahead of the leader: epoch {peer_epoch} zxid 0x{qp.zxid:x} "
                       f"vs {self.summary[0]} 0x{self.summary[1]:x}")
            return
        h.peer_zxid = qp.zxid
        h.state = H_WAIT_SYNC
        if not h.observer and peer_epoch != -1:
            # -1: it had already accepted this epoch (an earlier connection to us), and an
            # acceptance is counted once (Leader.waitForEpochAck).
            self.epoch_acks.add(h.sid)
        if self.epoch_ack_quorum:
            self._sync(h)
        else:
            self._maybe_epoch_ack_quorum()

    def _maybe_epoch_ack_quorum(self) -> None:
        if self.epoch_ack_quorum or not self.epoch_durable or not self._quorum(self.epoch_acks):
            return
        self.epoch_ack_quorum = True
        self.phase = ZabPhase.SYNCHRONIZATION
        cfg = self.host.config
        self.phase_deadline_ms = self.host.now + cfg.init_limit * cfg.tick_ms
        # Our own history is already logged (and earlier persist items become durable first),
        # so once currentEpoch is durable this leader counts as having acknowledged NEWLEADER.
        self.host.persist([SetCurrentEpoch(self.epoch)], self._current_epoch_persisted)
        for h in list(self.handlers.values()):
            if h.state == H_WAIT_SYNC:
                self._sync(h)

    def _current_epoch_persisted(self) -> None:
        if not self.alive:
            return
        self.newleader_acks.add(self.my_id)
        self._maybe_establish()

    # ------------------------------------------------------------------ synchronization

    def _sync(self, h: LearnerHandle) -> None:
        """Queue DIFF / TRUNC / SNAP, the txns the learner lacks, NEWLEADER (syncFollower)."""
        hist = self.host.history
        point = self.last_committed if self.established else hist.last
        kind, zxid, start = plan_sync(hist, h.peer_zxid, point)
        log.info("leader %d: sync %d (last zxid 0x%x) with %s 0x%x", self.my_id, h.sid, h.peer_zxid & (2**64 - 1),
                 wire.PACKET_NAMES[kind], zxid)
        if kind == wire.SNAP:
            self._send(h, wire.packet(wire.SNAP, zxid), with_snapshot=True)
        else:
            self._send(h, wire.packet(kind, zxid))
            for z, entry in hist.between(start, point):
                self._send(h, wire.packet(wire.PROPOSAL, z, entry))
                self._send(h, wire.packet(wire.COMMIT, z))
        if not h.observer:
            # startForwarding: what is proposed but not committed follows, COMMITs come later.
            for z in self.outstanding:
                self._send(h, wire.packet(wire.PROPOSAL, z, hist.entry(z)))
        h.forwarding = True
        self._send(h, wire.packet(wire.NEWLEADER, make_zxid(self.epoch, 0), self.host.config.config_bytes or None))
        h.state = H_SYNCING

    def _newleader_ack(self, h: LearnerHandle, qp: QuorumPacket) -> None:
        if qp.type != wire.ACK:
            if qp.type != wire.PING:
                self._drop(h, f"expected the NEWLEADER ACK, got {wire.describe(qp)}")
            return
        if qp.zxid != make_zxid(self.epoch, 0):
            self._drop(h, f"NEWLEADER ACK for 0x{qp.zxid:x} is from another epoch")
            return
        h.state = H_WAIT_UPTODATE
        if self.established:
            self._uptodate(h)
            return
        if not h.observer:
            self.newleader_acks.add(h.sid)
        self._maybe_establish()

    def _maybe_establish(self) -> None:
        if self.established or self.my_id not in self.newleader_acks or not self._quorum(self.newleader_acks):
            return
        hist = self.host.history
        self.established = True
        self.phase = ZabPhase.BROADCAST
        self.phase_deadline_ms = None
        self.last_committed = hist.last
        self.last_proposed = hist.last
        self.next_ping_ms = self.host.now
        log.info("leader %d: established epoch %d at 0x%x", self.my_id, self.epoch, hist.last)
        self.host.apply_to(hist.last)
        self.host.election.update_peer_epoch(self.epoch)
        self.host.leader_established(self)
        for h in list(self.handlers.values()):
            if h.state == H_WAIT_UPTODATE:
                self._uptodate(h)

    def _uptodate(self, h: LearnerHandle) -> None:
        self._send(h, wire.packet(wire.UPTODATE, -1))
        h.state = H_ACTIVE

    # ------------------------------------------------------------------ broadcast

    def _broadcast_packet(self, h: LearnerHandle, qp: QuorumPacket) -> None:
        t = qp.type
        if t == wire.ACK:
            if counter_of(qp.zxid) == 0 or h.observer:
                return  # UPTODATE's ACK, or an observer's: nothing to count
            acks = self.outstanding.get(qp.zxid)
            if acks is not None and h.sid in self.voters:
                acks.add(h.sid)
                self.commit_due = True  # tried once the whole input is in (PeerCore._end_of_input)
        elif t == wire.PING:
            h.pings_recv += 1
            touches = wire.decode_touches(qp.data)
            if touches:
                self.host.rd().session_touches.extend(touches)
            if self.pending_syncs:
                self._answer_syncs()
        elif t == wire.REQUEST:
            _session, _cxid, op = wire.decode_request_head(qp.data)
            if op == OP_SYNC:
                self._queue_sync(h.conn, None)
            else:
                self.host.rd().learner_requests.append((h.sid, qp.data or b"", list(qp.authinfo or ())))
        elif t == wire.REVALIDATE:
            session, timeout = wire.decode_revalidate_request(qp.data)
            self.host.rd().revalidate_requests.append((h.sid, session, timeout))
        else:
            log.warning("leader %d: unexpected %s from %d", self.my_id, wire.describe(qp), h.sid)

    def next_zxid(self) -> int:
        """The zxid the next :meth:`propose` will assign (the server's prepare stamps it first)."""
        return make_zxid(self.epoch, self.counter + 1)

    def propose(self, entry: bytes) -> int:
        """Assign the next zxid to ``entry`` (TxnHeader + txn), log it and send it to the voters."""
        if not self.established:
            raise NotLeaderError("the leader has not established its epoch yet")
        if self.counter + 1 > self.host.config.counter_max:
            self._fail("zxid lower 32 bits have rolled over, forcing re-election, and therefore new epoch start")
            raise ZxidRolloverError("zxid counter exhausted")
        self.counter += 1
        zxid = make_zxid(self.epoch, self.counter)
        if _ZXID_AT.unpack_from(entry, TXN_HEADER_ZXID_OFFSET)[0] == zxid:
            data = entry  # the server's prepare stamped it with next_zxid() already
        else:
            buf = bytearray(entry)
            _ZXID_AT.pack_into(buf, TXN_HEADER_ZXID_OFFSET, zxid)
            data = bytes(buf)
        self.outstanding[zxid] = set()
        self.last_proposed = zxid
        host = self.host
        host.log_entry(self, zxid, data)
        encoded = wire.encode_packet(wire.PROPOSAL, zxid, data)
        for h in self.handlers.values():
            if h.forwarding and not h.observer:
                host.send_encoded(h.conn, encoded)
        return zxid

    def entries_durable(self, zxid: int) -> None:
        """This leader's log holds everything up to ``zxid``: its own ACK of those proposals."""
        if zxid > self.self_durable:
            self.self_durable = zxid
            self.try_commit()

    def try_commit(self) -> None:
        """Commit, in zxid order, every outstanding proposal a quorum has logged."""
        self.commit_due = False
        out = self.outstanding
        needed = self._needed
        mine = self.self_durable
        last = 0
        while out:
            zxid, acks = next(iter(out.items()))
            if len(acks) + (zxid <= mine) < needed:
                break
            del out[zxid]
            self._commit(zxid)
            last = zxid
        if last:
            self.host.apply_to(last)
            self._answer_syncs()

    def _commit(self, zxid: int) -> None:
        self.last_committed = zxid
        commit: bytes | None = None
        inform: bytes | None = None
        send = self.host.send_encoded
        for h in self.handlers.values():
            if not h.forwarding:
                continue
            if h.observer:
                if inform is None:
                    inform = wire.encode_packet(wire.INFORM, zxid, self.host.history.entry(zxid))
                send(h.conn, inform)
            else:
                if commit is None:
                    commit = wire.encode_packet(wire.COMMIT, zxid)
                send(h.conn, commit)

    # ------------------------------------------------------------------ sync requests

    def _queue_sync(self, conn: int | None, token: object) -> None:
        """Answer once everything proposed so far is committed (Leader.processSync) and a
        quorum has answered a PING sent after the request came in.

        The second condition is not Apache's: without it a leader cut off from the
        majority (and not yet aware of it) answers syncs while a new leader commits
        elsewhere, and a read after sync misses writes acknowledged before the sync began.
        """
        wait = SyncWait(self.last_proposed, conn, token)
        self.pending_syncs.append(wait)
        self._ping_all()
        self._answer_syncs()

    def _confirmed(self, wait: SyncWait) -> bool:
        sids = {self.my_id}
        for conn, n in wait.targets.items():
            h = self.handlers.get(conn)
            if h is not None and h.pings_recv >= n:
                sids.add(h.sid)
        return self._quorum(sids)

    def _answer_syncs(self) -> None:
        q = self.pending_syncs
        while q and q[0].needed <= self.last_committed and self._confirmed(q[0]):
            wait = q.popleft()
            self._sync_done(wait.conn, wait.token)

    def _ping_all(self) -> None:
        ping = wire.packet(wire.PING, self.last_proposed)
        for h in self.handlers.values():
            if h.state < H_WAIT_UPTODATE:
                continue
            self._send(h, ping)
            h.pings_sent += 1
            if not h.observer:
                for wait in self.pending_syncs:
                    wait.targets.setdefault(h.conn, h.pings_sent)

    def _sync_done(self, conn: int | None, token: object) -> None:
        if conn is None:
            self.host.rd().syncs_done.append(token)
        elif conn in self.handlers:
            self.host.send(conn, wire.packet(wire.SYNC, 0))

    def local_sync(self, token: object) -> None:
        if not self.established:
            raise NotLeaderError("the leader has not established its epoch yet")
        self._queue_sync(None, token)

    def revalidate_reply(self, sid: int, session_id: int, valid: bool) -> None:
        conn = self.by_sid.get(sid)
        if conn is not None:
            self.host.send(conn, wire.packet(wire.REVALIDATE, -1, wire.encode_revalidate_response(session_id, valid)))

    # ------------------------------------------------------------------ time

    def tick(self, now: int) -> None:
        cfg = self.host.config
        if self.phase_deadline_ms is not None and now >= self.phase_deadline_ms:
            self._fail(f"timeout in {self.phase.value}: no quorum within initLimit "
                       f"({cfg.init_limit} ticks of {cfg.tick_ms} ms)")
            return
        sync_ms = cfg.sync_limit * cfg.tick_ms
        init_ms = cfg.init_limit * cfg.tick_ms
        for h in list(self.handlers.values()):
            limit = sync_ms if h.state >= H_WAIT_UPTODATE else init_ms + sync_ms
            if now - h.last_recv_ms > limit:
                self._drop(h, f"nothing heard for {now - h.last_recv_ms} ms")
        if not self.established or now < self.next_ping_ms:
            return
        self.next_ping_ms = now + cfg.ping_interval_ms
        synced = {self.my_id}
        for h in self.handlers.values():
            if not h.observer and h.forwarding:
                synced.add(h.sid)
        if not self._quorum(synced):
            self._fail(f"not sufficient followers synced, only synced with sids: {sorted(synced)}")
            return
        self._ping_all()

    def next_deadline(self) -> int | None:
        cfg = self.host.config
        cands = []
        if self.phase_deadline_ms is not None:
            cands.append(self.phase_deadline_ms)
        if self.established:
            cands.append(self.next_ping_ms)
        sync_ms = cfg.sync_limit * cfg.tick_ms
        init_ms = cfg.init_limit * cfg.tick_ms
        for h in self.handlers.values():
            limit = sync_ms if h.state >= H_WAIT_UPTODATE else init_ms + sync_ms
            cands.append(h.last_recv_ms + limit + 1)
        return min(cands) if cands else None


def plan_sync(hist: History, peer_zxid: int, point: int) -> tuple[int, int, int]:
    """How to bring a learner whose log ends at ``peer_zxid`` to ``point``.

    Returns (DIFF | TRUNC | SNAP, packet zxid, zxid after which to send txns).  A zxid
    names a unique history prefix, so a learner whose last zxid is in our history
    holds our history up to it.  Otherwise its tail diverged: it is rewound to the
    last point we share, which we can only be sure of within one epoch (a learner logs
    an epoch's txns without gaps); anything else gets a snapshot.
    """
    if peer_zxid == point:
        return wire.DIFF, point, point
    if peer_zxid >= 0 and hist.contains(peer_zxid):
        if peer_zxid < point:
            return wire.DIFF, point, peer_zxid
        return wire.TRUNC, point, point  # it holds proposals not committed yet: they come again
    if peer_zxid < hist.base:
        return wire.SNAP, point, point
    shared = hist.last_before(peer_zxid)
    if epoch_of(shared) != epoch_of(peer_zxid):
        return wire.SNAP, point, point
    t = min(shared, point)
    return wire.TRUNC, t, t
