"""A member of a replicated ensemble: the client-facing server on top of the ZAB driver.

The standalone server's pieces stay as they are — connections, sessions, prepare, the
database, replies in session order — and only the way a write becomes durable changes:

- **Leader**: prepare as standalone (validation through the overlay of outstanding txns),
  then ``driver.propose`` instead of the local log; the zxid prepare stamped is the one
  the leader assigns, because nothing else proposes in between.  Writes forwarded by
  learners are prepared the same way, with the client's auth ids from the REQUEST.
- **Follower / observer**: a write (and createSession / closeSession) is forwarded to the
  leader; its reply is built when the committed txn comes back, matched by
  (session id, cxid).  Reads are served locally.  ``sync`` waits until everything
  committed before it is applied here.
- **Both**: committed txns arrive in zxid order through :meth:`apply` and go through the
  standalone commit path (``Database.apply``, watches, replies), so a txn has the same
  effect on every member.  Sessions are global: only the leader expires them (learners
  relay their clients' heartbeats), and an expired session's ephemerals go with a
  closeSession txn, at the same zxid everywhere.
- While a member is not synced with a leader it serves no client (ZooKeeper drops them;
  they move on to another member and keep their sessions).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import Any

from zkpy.proto import errors
from zkpy.proto.constants import OpCode
from zkpy.proto.jute import DecodeError
from zkpy.proto.records import Id, SyncRequest
from zkpy.proto.txns import decode_txn
from zkpy.quorum import wire
from zkpy.quorum.driver import QuorumDriver
from zkpy.quorum.effects import Role
from zkpy.quorum.leader import NotLeaderError, ZxidRolloverError
from zkpy.quorum.learner import NotServingError
from zkpy.quorum.snapwire import encode_database
from zkpy.server.commit import APPLY_CHUNK
from zkpy.server.connection import ClientConnection, Pending
from zkpy.server.database import Database
from zkpy.server.prep import Prepared
from zkpy.server.requests import ReadHandler
from zkpy.server.server import SessionCreation, ZooKeeperServer, in_flight

log = logging.getLogger(__name__)

_INT = struct.Struct(">i")
_CREATE_SESSION, _CLOSE_SESSION = int(OpCode.createSession), int(OpCode.closeSession)
_REPLY = struct.Struct(">iiqi")
_ROLE_STATE = {Role.LEADING: "leader", Role.FOLLOWING: "follower", Role.OBSERVING: "observer",
               Role.LOOKING: "looking"}


class _SyncWait:
    """A client's sync waiting for the member to catch up."""

    __slots__ = ("conn", "path", "pending")

    def __init__(self, conn: ClientConnection, pending: Pending, path: str | None) -> None:
        self.conn = conn
        self.pending = pending
        self.path = path


class QuorumPeerServer(ZooKeeperServer):
    """One ensemble member; implements the driver's ServerHooks."""

    deferred_sync = True

    def __init__(self, config: Any, my_id: int) -> None:
        super().__init__(config, server_id=my_id)
        self.my_id = my_id
        self.driver: QuorumDriver | None = None
        self.role = Role.LOOKING
        self.leader_id: int | None = None
        self.epoch = 0
        self._serving = False
        # Leader: what it proposed, by zxid.  Learner: forwarded requests, by (session, cxid).
        self._proposed: dict[int, Pending] = {}
        self._forwarded: dict[tuple[int, int], Pending] = {}
        self._applied_unflushed = 0
        # Learner: re-attaches waiting for the leader's word, by session id.
        self._revalidating: dict[int, tuple[ClientConnection, int, bool | None]] = {}
        self.on_fatal: Any = None
        self.after_apply: Any = None  # snapshot scheduling (one txn applied)
        self.preparer.next_zxid = self._leader_next_zxid
        # QuorumVerifier.getVotingMembers: observers do not count.
        self.metrics.register_gauge("quorum_size", lambda: sum(
            1 for s in self.config.servers.values() if s.peer_type == "participant"))
        self._leader_since = 0.0

    # ------------------------------------------------------------------ roles

    @property
    def serving(self) -> bool:
        return self._serving

    @property
    def server_state(self) -> str:
        """For srvr / stat / mntr: leader, follower, observer (looking while electing)."""
        return _ROLE_STATE.get(self.role, "looking")

    @property
    def is_leader(self) -> bool:
        return self.role == Role.LEADING

    def owns_sessions(self) -> bool:
        return self._serving and self.is_leader

    def _leader_next_zxid(self) -> int:
        assert self.driver is not None
        leader = self.driver.peer.leader
        if leader is None:
            raise errors.ConnectionLossError()
        return leader.next_zxid()

    # ------------------------------------------------------------------ ServerHooks

    def apply(self, zxid: int, entry: bytes) -> None:
        item = self._proposed.pop(zxid, None)
        if item is None:
            e = decode_txn(entry)
            hdr, txn = e.hdr, e.txn
            item = self._forwarded.pop((hdr.clientId, hdr.cxid), None)
            if item is None:  # another member's client, or the leader's own: nobody to answer here
                self.apply_committed(hdr, txn)
            else:
                item.prepared = Prepared(hdr, txn)
        if item is not None:
            self.pipeline.clock = time.time()
            self._on_commit(item)
        if self.after_apply is not None:
            self.after_apply(1)
        # The answers leave with the flush mark_dirty scheduled for the end of this loop turn
        # (one write per client for the batch), or every APPLY_CHUNK commits of a large one.
        self._applied_unflushed += 1
        if self._applied_unflushed >= APPLY_CHUNK:
            self._flush_dirty()

    def _flush_dirty(self) -> None:
        self._applied_unflushed = 0
        super()._flush_dirty()

    def applied_zxid(self) -> int:
        return self.db.last_zxid

    def snapshot_bytes(self) -> bytes:
        return encode_database(self.db)

    def replace_database(self, db: Database) -> None:
        log.info("database replaced by the leader's (now at 0x%x)", db.last_zxid)
        self.db = db
        db.tree.listener = self.watches
        self.preparer.tree = db.tree
        self.preparer.reset()
        self.reads = ReadHandler(self)
        now = int(time.time() * 1000)
        self.sessions.sessions.clear()
        for sid, timeout in db.sessions.items():
            self.sessions.add(sid, timeout, now)

    def role_changed(self, role: Role, leader_id: int | None, epoch: int) -> None:
        log.info("member %d: %s (leader %s, epoch %d)", self.my_id, role.value, leader_id, epoch)
        self.role, self.leader_id, self.epoch = role, leader_id, epoch
        self._drop_in_flight()
        self._register_role_gauges(role)
        if role == Role.LEADING:
            # The leader owns expiry from now: every known session gets a full timeout.
            now = int(time.time() * 1000)
            for sid, timeout in self.db.sessions.items():
                self.sessions.add(sid, timeout, now)

    def serving_changed(self, serving: bool) -> None:
        log.info("member %d: %s clients", self.my_id, "serving" if serving else "not serving")
        self._serving = serving
        if not serving:
            self._drop_clients()

    def learner_request(self, sid: int, request: bytes, authinfo: list) -> None:
        """Leader: a write forwarded by a learner; prepared and proposed like a local one."""
        try:
            session, cxid, op = wire.decode_request_head(request)
        except wire.WireError:
            return
        body = request[wire_request_head_size():]
        try:
            if op == _CREATE_SESSION:
                (timeout,) = _INT.unpack_from(body, 0)
                self.sessions.add(session, timeout, int(time.time() * 1000))
                prepared = self.preparer.prepare_session(OpCode.createSession, session, timeout)
            elif op == _CLOSE_SESSION:
                self.sessions.set_closing(session)
                prepared = self.preparer.prepare_session(OpCode.closeSession, session)
                prepared.hdr.cxid = cxid
            else:
                auth = [i for i in authinfo if isinstance(i, Id)]
                prepared = self.preparer.prepare(op, body, session, cxid, auth)
        except (struct.error, errors.ZooKeeperError, DecodeError) as e:
            log.warning("member %d: forwarded request from %d could not be prepared: %s", self.my_id, sid, e)
            return
        self._submit(in_flight(prepared))

    def session_touches(self, touches: list[tuple[int, int]]) -> None:
        now = int(time.time() * 1000)
        for session, timeout in touches:
            self.sessions.touch(session, now, timeout or None)

    def revalidate_request(self, sid: int, session_id: int, timeout_ms: int) -> None:
        valid = self.sessions.touch(session_id, int(time.time() * 1000), timeout_ms)
        assert self.driver is not None
        self.driver.revalidate_reply(sid, session_id, valid)

    def revalidated(self, session_id: int, valid: bool) -> None:
        waiting = self._revalidating.pop(session_id, None)
        if waiting is None:
            return
        conn, timeout, read_only = waiting
        if valid:
            self._session_valid(conn, session_id, timeout, read_only)
        else:
            self._refuse_session(conn, session_id)
        self._flush_dirty()

    def sync_done(self, token: object) -> None:
        if not isinstance(token, _SyncWait):
            return
        zxid = self.db.tree.last_processed_zxid
        path = (token.path or "").encode("utf-8")
        body = _INT.pack(len(path)) + path if token.path is not None else b"\xff\xff\xff\xff"
        reply = _REPLY.pack(16 + len(body), token.pending.xid, zxid, 0) + body
        token.conn.complete(token.pending, reply)
        self._flush_dirty()

    def fatal(self, error: BaseException) -> None:
        log.critical("member %d: stopping after a persistence failure: %s", self.my_id, error)
        if self.on_fatal is not None:
            self.on_fatal()

    # ------------------------------------------------------------------ the write path

    def _submit(self, item: Pending) -> None:
        driver = self.driver
        assert driver is not None
        hdr = item.prepared.hdr
        self._in_flight += 1
        try:
            if self.is_leader:
                zxid = driver.propose(item.prepared.entry())
                if zxid != hdr.zxid:  # cannot happen: prepare asked the leader for this very zxid
                    raise RuntimeError(f"prepared zxid 0x{hdr.zxid:x} but proposed as 0x{zxid:x}")
                self._proposed[zxid] = item
            else:
                raise NotLeaderError("writes reach a learner only through forward")
        except (NotLeaderError, ZxidRolloverError, NotServingError) as e:
            self._in_flight -= 1
            log.info("member %d: write not proposed (%s); dropping the client", self.my_id, e)
            self.preparer.reset()
            if item.conn is not None:
                item.conn.close()
            if item.session is not None:
                item.session.conn.close()

    def _forward(self, item: Pending, session: int, cxid: int, op: int, body: bytes, auth: list[Id]) -> None:
        driver = self.driver
        assert driver is not None
        self._forwarded[(session, cxid)] = item
        self._in_flight += 1
        try:
            driver.forward(wire.encode_request(session, cxid, op, body), auth)
        except NotServingError:
            self._forwarded.pop((session, cxid), None)
            self._in_flight -= 1
            if item.conn is not None:
                item.conn.close()
            if item.session is not None:
                item.session.conn.close()

    def process_write(self, conn: ClientConnection, xid: int, op: int, body: bytes) -> None:
        if self.is_leader:
            super().process_write(conn, xid, op, body)
            return
        self.touch(conn)
        self.stats.packets_received += 1
        pending = Pending(xid, op, body, True)
        conn.enqueue_write(pending)
        self._forward(in_flight(None, conn, pending), conn.session_id, xid, op, body,  # type: ignore[arg-type]
                      list(conn.auth_ids))

    def process_close_session(self, conn: ClientConnection, xid: int) -> None:
        if self.is_leader:
            super().process_close_session(conn, xid)
            return
        self.stats.packets_received += 1
        pending = Pending(xid, OpCode.closeSession, b"", prepared=True)
        conn.enqueue_write(pending)
        self._forward(in_flight(None, conn, pending), conn.session_id, xid,  # type: ignore[arg-type]
                      OpCode.closeSession, b"", [])

    def process_sync(self, conn: ClientConnection, xid: int, body: bytes) -> None:
        """sync: answered once everything committed before it is applied on this member."""
        self.touch(conn)
        self.stats.packets_received += 1
        try:
            path = SyncRequest.from_bytes(body).path
        except DecodeError:
            conn.send_reply(xid, self.last_zxid, errors.MarshallingError.code)
            return
        pending = Pending(xid, OpCode.sync, body, prepared=True)
        conn.enqueue_write(pending)
        token = _SyncWait(conn, pending, path)
        assert self.driver is not None
        try:
            self.driver.sync(token, wire.encode_request(conn.session_id, xid, OpCode.sync, body))
        except (NotServingError, NotLeaderError):
            conn.close()

    def touch(self, conn: ClientConnection) -> None:
        super().touch(conn)
        if conn.session_id and not self.is_leader and self.driver is not None:
            self.driver.touch(conn.session_id, conn.session_timeout_ms)

    # ------------------------------------------------------------------ sessions

    def _new_session(self, conn: ClientConnection, timeout: int, read_only: bool | None) -> None:
        if self.is_leader:
            super()._new_session(conn, timeout, read_only)
            return
        sid = self.sessions.new_session_id()
        creation = SessionCreation(conn, sid, timeout, read_only)
        self._forward(in_flight(None, session=creation), sid, 0, OpCode.createSession,  # type: ignore[arg-type]
                      _INT.pack(timeout), [])

    def _reattach(self, conn: ClientConnection, sid: int, timeout: int, read_only: bool | None) -> None:
        if self.is_leader:
            super()._reattach(conn, sid, timeout, read_only)
            return
        assert self.driver is not None
        self._revalidating[sid] = (conn, timeout, read_only)
        try:
            self.driver.revalidate(sid, timeout)
        except NotServingError:
            self._revalidating.pop(sid, None)
            conn.close()

    # ------------------------------------------------------------------ between leaders

    def _drop_in_flight(self) -> None:
        """A new role: proposals and forwards of the old one may never be answered here."""
        self._proposed.clear()
        self._forwarded.clear()
        self._revalidating.clear()
        self.preparer.reset()
        self._in_flight = 0

    def _drop_clients(self) -> None:
        for conn in list(self.connections):
            conn.flush()
            conn.close()

    # ------------------------------------------------------------------ quorum info for 4lw / admin

    _LEADER_GAUGES = ("learners", "synced_followers", "synced_non_voting_followers", "synced_observers",
                      "pending_syncs", "leader_uptime", "last_proposal_size", "max_proposal_size",
                      "min_proposal_size")

    def _register_role_gauges(self, role: Role) -> None:
        """LeaderZooKeeperServer / FollowerZooKeeperServer register these while in the role."""
        metrics = self.metrics
        for name in self._LEADER_GAUGES:
            metrics.unregister_gauge(name)
        if role == Role.LEADING:
            self._leader_since = time.monotonic()

            def stat(key: str) -> int:
                return int(self.quorum_stats().get(key, 0) or 0)

            metrics.register_gauge("learners", lambda: stat("learners"))
            metrics.register_gauge("synced_followers", lambda: stat("synced_followers"))
            metrics.register_gauge("synced_non_voting_followers", lambda: 0)
            metrics.register_gauge("synced_observers", lambda: stat("synced_observers"))
            metrics.register_gauge("pending_syncs", lambda: stat("pending_syncs"))
            metrics.register_gauge("leader_uptime", lambda: int((time.monotonic() - self._leader_since) * 1000))
            for name in ("last_proposal_size", "max_proposal_size", "min_proposal_size"):
                metrics.register_gauge(name, lambda: -1)
        elif role == Role.FOLLOWING:
            # A follower without observers attached (no observer master) has no value: skipped.
            metrics.register_gauge("synced_observers", lambda: None)

    def quorum_stats(self) -> dict[str, Any]:
        return self.driver.peer.stats() if self.driver is not None and self.driver.core is not None else {}


def wire_request_head_size() -> int:
    return len(wire.encode_request(0, 0, 0, b""))


async def stop_driver(driver: QuorumDriver) -> None:
    try:
        await asyncio.wait_for(driver.stop(), 10)
    except TimeoutError:
        log.warning("quorum driver did not stop within 10 s")


__all__ = ["QuorumPeerServer", "stop_driver"]
