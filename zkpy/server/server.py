"""The standalone server: wires connections, sessions, prepare, commit and the database.

Everything runs on one asyncio event loop (uvloop when installed); only the
transaction log's write+fsync leaves it, in a worker thread.  The listening
socket opens only once the database is loaded and the server can answer.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zkpy.proto import errors
from zkpy.proto.constants import OpCode
from zkpy.proto.jute import DecodeError
from zkpy.proto.messages import decode_connect_request, encode_connect_response
from zkpy.proto.records import AuthPacket, ConnectResponse
from zkpy.server.commit import CommitPipeline, Durability, MemoryOnly
from zkpy.server.connection import _OP_NAMES, ESTABLISHED, ClientConnection, Pending
from zkpy.server.database import Database
from zkpy.server.metrics import ServerMetrics
from zkpy.server.prep import Prepared, Preparer
from zkpy.server.requests import ReadHandler, write_reply
from zkpy.server.sessions import SessionTracker, session_password
from zkpy.server.stats import ServerStats
from zkpy.tree.acl import AuthRegistry
from zkpy.tree.node import EPHEMERAL_TTL, PERSISTED, ephemeral_type, ttl_of
from zkpy.tree.watches import Watches

if TYPE_CHECKING:
    from zkpy.proto.jute import Record
    from zkpy.proto.records import TxnHeader
    from zkpy.tree.datatree import TxnResult

log = logging.getLogger(__name__)

_PASSWORD_INVALID = bytes(16)
_CLOSE_SESSION, _CREATE_SESSION = int(OpCode.closeSession), int(OpCode.createSession)
_SET_DATA = int(OpCode.setData)
_REPLY_STAT = struct.Struct(">iiqi")  # frame length, xid, zxid, err; a 68-byte Stat follows


def _now_ms() -> int:
    return int(time.time() * 1000)


class SessionCreation:
    """The pending createSession of a connection waiting for its handshake answer."""

    __slots__ = ("conn", "read_only", "session_id", "timeout_ms")

    def __init__(self, conn: ClientConnection, session_id: int, timeout_ms: int, read_only: bool | None) -> None:
        self.conn = conn
        self.session_id = session_id
        self.timeout_ms = timeout_ms
        self.read_only = read_only


def in_flight(prepared: Prepared | None, conn: ClientConnection | None = None, pending: Pending | None = None,
              session: SessionCreation | None = None) -> Pending:
    """The pipeline item for a txn: the client's own Pending when it has one (it also holds the
    connection to answer), else a fresh one for a handshake or a txn of the server's own."""
    if pending is None:
        return Pending(0, 0, b"", prepared, conn, session)
    pending.conn = conn
    return pending


class ZooKeeperServer:
    """A standalone ZooKeeper server over a :class:`Database`."""

    # A quorum member answers sync only once it has caught up with the leader.
    deferred_sync = False

    def __init__(self, config: Any, durability: Durability | None = None, server_id: int = 1) -> None:
        self.config = config
        self.db = Database(extended_types=bool(config.extended_types_enabled))
        self.durability: Durability = durability or MemoryOnly()
        self.sessions = SessionTracker(config.tick_time_ms, server_id)
        self.watches = Watches()
        self.db.tree.listener = self.watches
        self.auth = AuthRegistry(super_digest=config.super_digest, skip_acl=bool(getattr(config, "skip_acl", False)))
        self.preparer = Preparer(self.db.tree, self.auth, self._next_zxid, self._check_session,
                                 bool(config.extended_types_enabled), clock_ms=lambda: self.clock_ms,
                                 session_live=self.sessions.is_live)
        self.pipeline = CommitPipeline(self.durability, self._on_commit, self._on_batch_done)
        self.pipeline.on_chunk_done = self._flush_dirty
        self._batch_txns = 0
        # Called with the number of txns after every committed batch (snapshot scheduling).
        self.after_batch: Callable[[int], None] | None = None
        self.reads = ReadHandler(self)
        self.stats = ServerStats()
        self.metrics = ServerMetrics(self)  # read by mntr, the AdminServer and /metrics
        self.max_frame_bytes = int(config.jute_max_buffer)
        self.max_outstanding_per_connection = 1000
        self.global_outstanding_limit = int(getattr(config, "global_outstanding_limit", 1000))
        self.connections: set[ClientConnection] = set()
        self.by_session: dict[int, ClientConnection] = {}
        self.paused: set[ClientConnection] = set()
        self._dirty: list[ClientConnection] = []
        self._flush_scheduled = False
        self._zxid = 0
        self._in_flight = 0
        # Wall-clock ms as of the current batch of frames (ClientConnection.data_received sets it).
        self.clock = time.time()
        self.clock_ms = int(self.clock * 1000)
        self._server: asyncio.base_events.Server | None = None
        # Set by start(): asyncio.get_running_loop() costs a getpid() system call each time.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.running = False
        self.started_at = time.time()
        # Set by the owner (cli / tests) to run 4lw commands; kept outside to keep this module small.
        self.four_letter_words: Any = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def last_zxid(self) -> int:
        return self.db.tree.last_processed_zxid

    def attach_database(self, db: Database) -> None:
        """Serve ``db`` (recovered from disk) instead of the empty one; before :meth:`start`."""
        assert not self.running
        self.db = db
        db.tree.listener = self.watches
        self.preparer.tree = db.tree
        self.reads = ReadHandler(self)
        self._zxid = max(self._zxid, db.last_zxid)

    def _next_zxid(self) -> int:
        self._zxid += 1
        return self._zxid

    def set_last_zxid(self, zxid: int) -> None:
        """After loading the database: new txns continue from ``zxid``."""
        self._zxid = zxid

    async def start(self, host: str, port: int) -> None:
        """Start sessions of the loaded database, then open the client port."""
        now = _now_ms()
        for sid, timeout in self.db.sessions.items():
            self.sessions.add(sid, timeout, now)
        self._zxid = max(self._zxid, self.db.last_zxid)
        loop = self._loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: ClientConnection(self), host, port, reuse_address=True,
                                                backlog=1024)
        self.running = True
        self._tasks.append(loop.create_task(self._expire_sessions()))
        self._tasks.append(loop.create_task(self._check_containers()))

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.running = False
        if self._server is not None:
            self._server.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        try:
            await asyncio.wait_for(self.pipeline.drain(), 5.0)
        except (TimeoutError, RuntimeError):
            log.warning("shutdown: pending writes were not all committed")
        for conn in list(self.connections):
            conn.flush()
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()

    # ------------------------------------------------------------------ connections

    def admit(self, conn: ClientConnection) -> bool:
        """maxClientCnxns per client address; False (and closed) when over it."""
        limit = int(getattr(self.config, "max_client_cnxns", 60) or 0)
        if limit > 0:
            same = sum(1 for c in self.connections if c.remote[0] == conn.remote[0])
            if same >= limit:
                log.warning("Too many connections from %s - max is %d", conn.remote[0], limit)
                self.stats.connections_rejected += 1
                conn.close()
                return False
        self.connections.add(conn)
        return True

    def connection_closed(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        self.paused.discard(conn)
        if conn.session_id and self.by_session.get(conn.session_id) is conn:
            del self.by_session[conn.session_id]
        self.watches.remove_watcher(conn)
        self._in_flight -= sum(1 for p in conn.queue if p.prepared is not None and not p.done)
        conn.queue.clear()

    def mark_dirty(self, conn: ClientConnection) -> None:
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush_scheduled = False
        self.metrics.tick()  # folds the request latencies buffered so far, in large batches
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()
        if self.paused and not self.over_global_limit():
            for conn in list(self.paused):
                conn._update_reading()

    def over_global_limit(self) -> bool:
        return self._in_flight > self.global_outstanding_limit

    def four_letter_word(self, length: int) -> str | None:
        if self.four_letter_words is None:
            return None
        return self.four_letter_words.command_for(length)

    def run_four_letter_word(self, conn: ClientConnection, cmd: str, payload: bytes = b"") -> None:
        text = self.four_letter_words.run(self, cmd, conn=conn, payload=payload)
        conn.send(text.encode("utf-8"))
        conn.close_after_flush()

    # ------------------------------------------------------------------ handshake

    def handshake(self, conn: ClientConnection, frame: bytes) -> None:
        self.metrics.count("connection_request_count")
        try:
            hs = decode_connect_request(frame)
        except (DecodeError, UnicodeError, Exception):
            log.info("closing %s:%s: undecodable connect request", *conn.remote)
            conn.close()
            return
        req = hs.request
        conn.old_client = hs.read_only is None
        conn.read_only_client = bool(hs.read_only)
        if req.lastZxidSeen > self.last_zxid:
            log.info("Refusing session request for client %s:%s as it has seen zxid 0x%x our last zxid is 0x%x"
                     " client must try another server", *conn.remote, req.lastZxidSeen, self.last_zxid)
            conn.close()
            return
        if not self.serving:
            # A quorum member between leaders: ZooKeeper drops such a client, which moves on.
            conn.close()
            return
        cfg = self.config
        timeout = min(max(req.timeOut, cfg.min_session_timeout_ms), cfg.max_session_timeout_ms)
        conn.session_timeout_ms = timeout
        if req.sessionId == 0:
            self._new_session(conn, timeout, hs.read_only)
        elif req.passwd != session_password(req.sessionId):
            self._refuse_session(conn, req.sessionId)
        else:
            self._reattach(conn, req.sessionId, timeout, hs.read_only)

    def _new_session(self, conn: ClientConnection, timeout: int, read_only: bool | None) -> None:
        sid = self.sessions.new_session_id()
        # Track it from now, as PrepRequestProcessor does, so it can expire even before commit.
        self.sessions.add(sid, timeout, _now_ms())
        prepared = self.preparer.prepare_session(OpCode.createSession, sid, timeout)
        creation = SessionCreation(conn, sid, timeout, read_only)
        self._submit(in_flight(prepared, session=creation))

    def _reattach(self, conn: ClientConnection, sid: int, timeout: int, read_only: bool | None) -> None:
        """A client came back with a session id and its right password."""
        if self.sessions.touch(sid, _now_ms(), timeout):
            self._session_valid(conn, sid, timeout, read_only)
        else:
            self._refuse_session(conn, sid)

    def _session_valid(self, conn: ClientConnection, sid: int, timeout: int, read_only: bool | None) -> None:
        old = self.by_session.get(sid)
        if old is not None and old is not conn:
            old.close()
        self._finish_session(conn, sid, timeout, read_only)

    def _refuse_session(self, conn: ClientConnection, sid: int) -> None:
        log.info("Invalid session 0x%x for client %s:%s, probably expired", sid & 0xFFFFFFFFFFFFFFFF, *conn.remote)
        resp = encode_connect_response(ConnectResponse(0, 0, 0, _PASSWORD_INVALID),
                                       None if conn.old_client else False)
        conn.send(len(resp).to_bytes(4, "big") + resp)
        conn.close_after_flush()

    def _finish_session(self, conn: ClientConnection, sid: int, timeout: int, read_only: bool | None) -> None:
        if conn.closed:
            return
        conn.session_established(sid, timeout)
        self.by_session[sid] = conn
        sess = self.sessions.get(sid)
        conn.session = sess
        if sess is not None:
            sess.owner = conn
        resp = encode_connect_response(ConnectResponse(0, timeout, sid, session_password(sid)),
                                       None if conn.old_client else False)
        conn.send(len(resp).to_bytes(4, "big") + resp)
        log.debug("Established session 0x%x with negotiated timeout %d for client %s:%s",
                  sid & 0xFFFFFFFFFFFFFFFF, timeout, *conn.remote)

    def _check_session(self, session_id: int) -> None:
        if session_id and not self.sessions.is_live(session_id):
            raise errors.SessionExpiredError()

    # ------------------------------------------------------------------ requests

    def touch(self, conn: ClientConnection) -> None:
        """The client spoke: push its session's deadline out."""
        sess = conn.session
        if sess is not None and not sess.closing:
            self.sessions.touch_session(sess, self.clock_ms)

    def process_read(self, conn: ClientConnection, xid: int, op: int, body: bytes,
                     started: float | None = None) -> None:
        self.touch(conn)
        self.reads.execute(conn, xid, op, body)
        stats = self.stats
        stats.packets_received += 1
        stats.packets_sent += 1
        if started is None:
            # Answered on arrival: 0 ms, the common case, counted without the general bookkeeping.
            stats.latency_count += 1
            stats.min_latency_ms = 0
            self.metrics.record_read_latency(0)
            conn.last_cxid, conn.last_op, conn.last_latency_ms = xid, _OP_NAMES.get(op, "NA"), 0
            conn.last_zxid = self.db.tree.last_processed_zxid
            conn.min_latency_ms = 0
            conn.latency_count += 1
            return
        # It waited behind its session's writes.
        ms = int((time.time() - started) * 1000)
        stats.record_latency(ms)
        self.metrics.record_read_latency(ms)
        conn.record_op(xid, self.db.tree.last_processed_zxid, op, ms)

    def process_write(self, conn: ClientConnection, xid: int, op: int, body: bytes) -> None:
        sess = conn.session
        live = sess is not None and not sess.closing
        if live:
            self.sessions.touch_session(sess, self.clock_ms)  # type: ignore[arg-type]
        self.stats.packets_received += 1
        prepared = self.preparer.prepare(op, body, conn.session_id, xid, conn.auth_ids, live)
        pending = Pending(xid, op, body, prepared, conn, None, self.clock)  # positional: no kwargs dict per write
        conn.queue.append(pending)
        self._submit(pending)

    def process_close_session(self, conn: ClientConnection, xid: int) -> None:
        self.stats.packets_received += 1
        sid = conn.session_id
        self.sessions.set_closing(sid)
        prepared = self.preparer.prepare_session(OpCode.closeSession, sid)
        prepared.hdr.cxid = xid
        pending = Pending(xid, OpCode.closeSession, b"", prepared)
        conn.enqueue_write(pending)
        self._submit(in_flight(prepared, conn, pending))

    def process_auth(self, conn: ClientConnection, xid: int, body: bytes) -> None:
        self.stats.packets_received += 1
        try:
            packet = AuthPacket.from_bytes(body)
            # ZooKeeper's providers fail on null auth data (zkCli's `addauth digest` with nothing).
            ids = None if packet.auth is None else self.auth.authenticate(packet.scheme or "", packet.auth)
        except (DecodeError, UnicodeError):
            ids = None
        if ids is None:
            self.stats.auth_failed += 1
            conn.send_reply(xid, 0, errors.AuthFailedError.code)
            conn.close_after_flush()
            return
        for ident in ids:
            if ident not in conn.auth_ids:
                conn.auth_ids.append(ident)
        conn.send_reply(xid, 0, 0)

    def process_sasl(self, conn: ClientConnection, xid: int, body: bytes) -> None:
        # No SASL mechanism is configured: a default ZooKeeper answers OK with a null token
        # (its SASL server is null) and the client goes on unauthenticated.
        self.stats.packets_received += 1
        conn.send_reply(xid, 0, 0, b"\xff\xff\xff\xff")

    def _submit(self, item: Pending) -> None:
        self._in_flight += 1
        prepared = item.prepared
        self.pipeline.submit(item, prepared.hdr, prepared.txn, prepared.raw)

    # ------------------------------------------------------------------ commit

    def _on_batch_done(self) -> None:
        n, self._batch_txns = self._batch_txns, 0
        self._flush_dirty()
        if self.after_batch is not None and n:
            self.after_batch(n)

    def _on_commit(self, item: Pending) -> None:
        self._in_flight -= 1
        prepared = item.prepared
        hdr = prepared.hdr
        rc = self.apply_committed(hdr, prepared.txn)
        if item.session is not None:
            s = item.session
            self._finish_session(s.conn, s.session_id, s.timeout_ms, s.read_only)
            # createSession is a write: ZooKeeper counts it in the request latency and updatelatency.
            ms = int((self.pipeline.clock - item.started) * 1000)
            self.stats.record_latency(ms)
            self.metrics.record_update_latency(ms)
            return
        conn = item.conn
        if conn is None:
            return
        zxid = rc.zxid
        xid = item.xid
        req_op = item.op
        ms = int((self.pipeline.clock - item.started) * 1000)
        stats = self.stats
        stats.record_latency(ms)
        stats.packets_sent += 1
        self.metrics.record_update_latency(ms)
        conn.record_op(xid, zxid, req_op, ms)
        if req_op == _SET_DATA and hdr.type == _SET_DATA and not rc.err:
            reply = _REPLY_STAT.pack(84, xid, zxid, 0) + rc.stat  # type: ignore[operator]
        else:
            reply = write_reply(req_op, xid, zxid, rc, prepared.error)
        conn.complete(item, reply)
        if req_op == _CLOSE_SESSION:
            conn.close_after_flush()

    def apply_committed(self, hdr: TxnHeader, txn: Record | None) -> TxnResult:
        """Apply a committed txn and keep sessions and the prepare overlay in step (what every
        commit does, whether or not a client here waits for it)."""
        self._batch_txns += 1
        rc = self.db.apply(hdr, txn)
        self.preparer.retire(hdr.zxid)
        op = hdr.type
        if op == _CLOSE_SESSION:
            self._session_closed(hdr.clientId)
        elif op == _CREATE_SESSION and hdr.clientId not in self.sessions.sessions:
            # A session created through another member (quorum): track it here too.
            self.sessions.add(hdr.clientId, self.db.sessions.get(hdr.clientId, 0), _now_ms())
        return rc

    def _session_closed(self, session_id: int) -> None:
        self.sessions.remove(session_id)
        conn = self.by_session.pop(session_id, None)
        if conn is not None and conn.state == ESTABLISHED and not conn.queue:
            conn.close_after_flush()
        elif conn is not None:
            # The client's own closeSession: its reply is sent, then the connection closes.
            pass

    # ------------------------------------------------------------------ background duties

    async def _expire_sessions(self) -> None:
        """Expire sessions whose deadline bucket passed: a closeSession txn each."""
        tick_s = self.sessions.tick_ms / 1000
        while True:
            await asyncio.sleep(tick_s / 2)
            if not self.owns_sessions():
                continue
            self.clock_ms = _now_ms()
            for sess in self.sessions.expired(self.clock_ms):
                self.metrics.count("stale_sessions_expired")
                log.info("Expiring session 0x%x, timeout of %dms exceeded",
                         sess.session_id & 0xFFFFFFFFFFFFFFFF, sess.timeout_ms)
                conn = self.by_session.get(sess.session_id)
                if conn is not None:
                    conn.close()
                prepared = self.preparer.prepare_session(OpCode.closeSession, sess.session_id)
                self._submit(in_flight(prepared))
            self._flush_dirty()

    async def _check_containers(self) -> None:
        """ContainerManager: delete empty used containers and expired TTL nodes."""
        cfg = self.config
        interval_s = max(0.01, int(getattr(cfg, "container_check_interval_ms", 60000)) / 1000)
        max_per_minute = max(1, int(getattr(cfg, "container_max_per_minute", 10000)))
        never_used_ms = int(getattr(cfg, "container_max_never_used_interval_ms", 0) or 0)
        min_gap_s = 60.0 / max_per_minute
        while True:
            await asyncio.sleep(interval_s)
            if not self.owns_sessions():
                continue
            for path in self._container_candidates(never_used_ms):
                if not self.owns_sessions():
                    break
                self.clock_ms = _now_ms()
                prepared = self.preparer.prepare_delete_container(path)
                self._submit(in_flight(prepared))
                await asyncio.sleep(min_gap_s)

    def _container_candidates(self, never_used_ms: int) -> list[str]:
        tree = self.db.tree
        now = _now_ms()
        out: list[str] = []
        for path in list(tree.containers):
            node = tree.get_node(path)
            if node is None or node.children:
                continue
            _cz, _mz, _ct, mtime, _v, cversion, _av, _o, _pz = PERSISTED.unpack(node.stat)
            if cversion > 0 or (never_used_ms and now - mtime > never_used_ms):
                out.append(path)
        for path in list(tree.ttls):
            node = tree.get_node(path)
            if node is None or node.children:
                continue
            _cz, _mz, _ct, mtime, _v, _cv, _av, owner, _pz = PERSISTED.unpack(node.stat)
            if ephemeral_type(owner, tree.extended_types) == EPHEMERAL_TTL:
                ttl = ttl_of(owner)
                if ttl and now - mtime > ttl:
                    out.append(path)
        return out

    # ------------------------------------------------------------------ roles

    @property
    def serving(self) -> bool:
        """Whether client sessions are accepted (a quorum member only while synced with a leader)."""
        return True

    def owns_sessions(self) -> bool:
        """Whether this server expires sessions and removes containers (standalone, or the leader)."""
        return True

    # ------------------------------------------------------------------ introspection

    def outstanding_requests(self) -> int:
        return self._in_flight

    def call_in_loop(self, fn: Callable[[], None]) -> None:
        (self._loop or asyncio.get_running_loop()).call_soon(fn)
