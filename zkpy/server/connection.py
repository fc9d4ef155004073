"""One client connection: framing, the handshake, per-session FIFO, output batching.

A connection answers in the order requests arrived (DESIGN invariant 4).  Reads
that arrive while earlier writes of the same session are in flight wait in
``queue`` behind them and run just after the write before them is applied, so a
read never sees less than the session's own writes, nor a later one of its own.
Output is appended to a buffer and written once per event-loop turn.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from typing import TYPE_CHECKING

from zkpy.proto import errors
from zkpy.proto.constants import OpCode, Xid
from zkpy.proto.framing import FrameError, FrameReader
from zkpy.proto.jute import DecodeError
from zkpy.proto.records import Id

if TYPE_CHECKING:
    from zkpy.server.server import ZooKeeperServer
    from zkpy.server.sessions import Session

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">ii")
_REPLY = struct.Struct(">iiqi")  # frame length, xid, zxid, err
_NOTIFICATION = struct.Struct(">iiqiiii")  # len, xid -1, zxid -1, err 0, type, state, path length

# Ops answered from the tree (or without a txn) in session order.  Sets and constants of plain
# ints: comparing with an IntEnum member costs a metaclass attribute lookup, per request.
READ_OPS = frozenset(int(op) for op in {
    OpCode.exists, OpCode.getData, OpCode.getACL, OpCode.getChildren, OpCode.getChildren2,
    OpCode.sync, OpCode.ping, OpCode.checkWatches, OpCode.removeWatches, OpCode.multiRead,
    OpCode.setWatches, OpCode.setWatches2, OpCode.getEphemerals, OpCode.getAllChildrenNumber,
    OpCode.addWatch, OpCode.whoAmI,
})
_SYNC, _CLOSE_SESSION, _AUTH, _SASL = int(OpCode.sync), int(OpCode.closeSession), int(OpCode.auth), int(OpCode.sasl)
WRITE_OPS = frozenset(int(op) for op in {
    OpCode.create, OpCode.create2, OpCode.createContainer, OpCode.createTTL, OpCode.delete,
    OpCode.setData, OpCode.setACL, OpCode.check, OpCode.multi, OpCode.reconfig, OpCode.deleteContainer,
})

NEW, HANDSHAKE_WAIT, ESTABLISHED, CLOSING, CLOSED = range(5)
# FinalRequestProcessor's lastOp names, shown by `cons`.
_OP_NAMES = {
    OpCode.ping: "PING", OpCode.createSession: "SESS", OpCode.multi: "MULT", OpCode.multiRead: "MLTR",
    OpCode.create: "CREA", OpCode.create2: "CREA", OpCode.createTTL: "CREA", OpCode.createContainer: "CREA",
    OpCode.delete: "DELE", OpCode.deleteContainer: "DELE", OpCode.setData: "SETD", OpCode.reconfig: "RECO",
    OpCode.setACL: "SETA", OpCode.closeSession: "CLOS", OpCode.sync: "SYNC", OpCode.check: "CHEC",
    OpCode.exists: "EXIS", OpCode.getData: "GETD", OpCode.setWatches: "SETW", OpCode.setWatches2: "STW2",
    OpCode.addWatch: "ADDW", OpCode.getACL: "GETA", OpCode.getChildren: "GETC", OpCode.getChildren2: "GETC",
    OpCode.getAllChildrenNumber: "GETACN", OpCode.checkWatches: "CHKW", OpCode.removeWatches: "REMW",
    OpCode.whoAmI: "HOMI", OpCode.getEphemerals: "GETE",
}
# Answers buffered for one connection beyond which its further requests wait (per-client backpressure).
OUTPUT_LIMIT_BYTES = 1 << 20
# How long a connection may dawdle before completing its handshake (zookeeper.nio.sessionlessCnxnTimeout).
SESSIONLESS_TIMEOUT_S = 10.0


class Pending:
    """A request on its way: a read waiting its turn in its session's queue (``prepared`` None),
    or a txn in the commit pipeline (``prepared`` set; ``conn`` is whom to answer, None for the
    server's own txns; ``session`` a handshake waiting for its createSession)."""

    __slots__ = ("body", "conn", "done", "op", "prepared", "response", "session", "started", "xid")

    def __init__(self, xid: int, op: int, body: bytes, prepared: object | None = None,
                 conn: ClientConnection | None = None, session: object | None = None,
                 started: float | None = None) -> None:
        # Wall-clock seconds; callers on the hot path pass the time of the socket read.
        self.started = time.time() if started is None else started
        self.xid = xid
        self.op = op
        self.body = body
        self.prepared = prepared
        self.conn = conn
        self.session = session
        self.done = False
        self.response: bytes | None = None


class ClientConnection(asyncio.Protocol):
    def __init__(self, server: ZooKeeperServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()  # once: each lookup costs a getpid() system call
        self.state = NEW
        self.reader = FrameReader(server.max_frame_bytes)
        self.out = bytearray()
        self.queue: deque[Pending] = deque()
        self.session_id = 0
        self.session: Session | None = None  # the tracker's object for session_id, once established
        self.session_timeout_ms = 0
        self.auth_ids: list[Id] = []
        self.remote = ("", 0)
        self.old_client = False
        self.read_only_client = False
        self.paused_reading = False
        self.write_paused = False
        self.closed = False
        self.handshake_timer: asyncio.TimerHandle | None = None
        self.last_activity = time.monotonic()
        # Statistics for cons / stat.
        self.established_at = 0.0
        self.packets_received = 0
        self.packets_sent = 0
        self.last_cxid = -1
        self.last_zxid = -1
        self.last_op = "NA"
        self.last_latency_ms = 0
        self.min_latency_ms = 0
        self.max_latency_ms = 0
        self.total_latency_ms = 0
        self.latency_count = 0
        self.last_response_time = 0.0

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's transports are not asyncio subclasses
        peer = transport.get_extra_info("peername") or ("", 0)
        self.remote = (peer[0], peer[1])
        self.auth_ids = [Id("ip", peer[0])]
        transport.set_write_buffer_limits(high=1 << 20, low=1 << 18)
        if not self.server.admit(self):
            return
        self.handshake_timer = self.loop.call_later(SESSIONLESS_TIMEOUT_S, self._handshake_timeout)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        server = self.server
        # One clock read per socket read: session touches and txn times in this batch use it.
        now = time.time()
        self.last_activity = now
        server.clock = now
        server.clock_ms = int(now * 1000)
        server.metrics.counts["bytes_received_count"] += len(data)
        reader = self.reader
        reader.feed(data)
        if self.state == NEW:
            length = reader.peek_length()
            if length is None:
                self._rearm_handshake_timer()
                return
            cmd = self.server.four_letter_word(length)
            if cmd is not None:
                rest = reader.take_rest()[4:]
                self.server.run_four_letter_word(self, cmd, rest)
                return
            self.state = HANDSHAKE_WAIT
        self.process_frames()
        if self.state == HANDSHAKE_WAIT and not self.closed:
            self._rearm_handshake_timer()

    def process_frames(self) -> None:
        """Handle buffered frames until none is left or this connection must be held back.

        The check runs between frames: a burst of small requests arriving in one read must
        not produce unbounded output before backpressure applies."""
        reader = self.reader
        while not self.closed:
            if self.state == ESTABLISHED and self._must_hold_back():
                self._update_reading()
                return
            try:
                frame = reader.next_frame()
            except FrameError as e:
                log.info("closing %s:%s: %s", self.remote[0], self.remote[1], e)
                self.close()
                return
            if frame is None:
                if self.out:
                    # Answers leave as soon as this connection's frames are handled, not when
                    # every connection of the loop turn is: the client works on them meanwhile.
                    self.flush()
                return
            self.packets_received += 1
            if self.state == ESTABLISHED:
                self._request(frame)
            elif self.state == HANDSHAKE_WAIT:
                self._handshake(frame)
            else:
                # A request before the session exists: ZooKeeper closes such a connection.
                self.close()
                return

    def _must_hold_back(self) -> bool:
        return (len(self.out) > OUTPUT_LIMIT_BYTES or self.write_paused
                or len(self.queue) >= self.server.max_outstanding_per_connection
                or self.server.over_global_limit())

    def eof_received(self) -> bool | None:
        return None  # close on EOF, like ZooKeeper

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state = CLOSED
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
        self.server.connection_closed(self)

    def pause_writing(self) -> None:
        # The peer does not read: stop reading its requests until it catches up.
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._update_reading()
        if not self.paused_reading and self.reader.buffered:
            self.process_frames()

    # ------------------------------------------------------------------ handshake

    def _rearm_handshake_timer(self) -> None:
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
        self.handshake_timer = asyncio.get_running_loop().call_later(SESSIONLESS_TIMEOUT_S, self._handshake_timeout)

    def _handshake_timeout(self) -> None:
        if self.state in (NEW, HANDSHAKE_WAIT):
            self.server.metrics.count("sessionless_connections_expired")
            log.info("closing %s:%s: no handshake within %ss", *self.remote, SESSIONLESS_TIMEOUT_S)
            self.close()

    def _handshake(self, frame: bytes) -> None:
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
            self.handshake_timer = None
        self.state = CLOSING  # until the server answers; further frames before that close us
        self.server.handshake(self, frame)

    def session_established(self, session_id: int, timeout_ms: int) -> None:
        self.session_id = session_id
        self.session_timeout_ms = timeout_ms
        self.state = ESTABLISHED
        self.established_at = time.time()

    # ------------------------------------------------------------------ requests

    def _request(self, frame: bytes) -> None:
        server = self.server
        try:
            xid, op = _HEADER.unpack_from(frame, 0)
        except struct.error:
            self.close()
            return
        body = frame[8:]
        if op in READ_OPS:
            if op == _SYNC and server.deferred_sync:
                server.process_sync(self, xid, body)  # type: ignore[attr-defined]
            elif self.queue:
                self.queue.append(Pending(xid, op, body, None, None, None, server.clock))
            else:
                server.process_read(self, xid, op, body)
        elif op in WRITE_OPS:
            server.process_write(self, xid, op, body)
        elif op == _CLOSE_SESSION:
            server.process_close_session(self, xid)
        elif op == _AUTH:
            server.process_auth(self, xid, body)
        elif op == _SASL:
            server.process_sasl(self, xid, body)
        else:
            # Unknown opcode: ZooKeeper answers Unimplemented and closes the connection.
            self.send_reply(xid, server.last_zxid, errors.UnimplementedError.code)
            self.close_after_flush()

    def enqueue_write(self, pending: Pending) -> None:
        self.queue.append(pending)

    def complete(self, pending: Pending, response: bytes) -> None:
        """A write was applied: answer it, then run the reads that waited behind it."""
        queue = self.queue
        if self.closed:
            queue.clear()
            return
        if queue and queue[0] is pending:
            queue.popleft()
            self.send(response)
            self._drain()
        else:
            # Not at the head (should not happen: writes apply in order); keep FIFO anyway.
            pending.done = True
            pending.response = response
            self._drain()

    def _drain(self) -> None:
        queue = self.queue
        server = self.server
        while queue:
            head = queue[0]
            if head.prepared is None:
                queue.popleft()
                server.process_read(self, head.xid, head.op, head.body, head.started)
            elif head.done:
                queue.popleft()
                assert head.response is not None
                self.send(head.response)
            else:
                break
        if self.paused_reading:
            self._update_reading()

    def _update_reading(self) -> None:
        """Pause reading while this client has too much in flight or will not read its answers."""
        t = self.transport
        if t is None or self.closed:
            return
        should_pause = self._must_hold_back()
        if should_pause and not self.paused_reading:
            self.paused_reading = True
            t.pause_reading()
            self.server.paused.add(self)
        elif not should_pause and self.paused_reading:
            self.paused_reading = False
            t.resume_reading()
            self.server.paused.discard(self)
            if self.reader.buffered:
                # Frames that arrived before we held back are still waiting.
                self.loop.call_soon(self.process_frames)

    # ------------------------------------------------------------------ output

    def send(self, data: bytes | bytearray) -> None:
        if self.closed:
            return
        if not self.out:
            self.server.mark_dirty(self)
        self.out += data
        self.packets_sent += 1

    def send_reply(self, xid: int, zxid: int, err: int, body: bytes = b"") -> None:
        self.send(_REPLY.pack(16 + len(body), xid, zxid, err) + body)

    def send_event(self, event_type: int, path: str) -> None:
        """A watch notification (xid -1, zxid -1), as ZooKeeper's ServerCnxn.process sends it."""
        p = path.encode("utf-8")
        self.send(_NOTIFICATION.pack(28 + len(p), Xid.NOTIFICATION, -1, 0, event_type, 3, len(p)) + p)

    def flush(self) -> None:
        if self.out and self.transport is not None and not self.closed:
            self.transport.write(self.out)
            self.out = bytearray()
            self.last_response_time = time.time()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.state = CLOSED
        self.out = bytearray()
        if self.transport is not None:
            self.transport.abort()

    def close_after_flush(self) -> None:
        """Send what is buffered, then close (ZooKeeper's closeConn after a last answer)."""
        if self.closed:
            return
        self.state = CLOSING
        self.flush()
        self.closed = True
        if self.transport is not None:
            if self.paused_reading:
                self.transport.resume_reading()
            self.transport.close()

    # ------------------------------------------------------------------ stats

    def record_op(self, cxid: int, zxid: int, op: int, ms: int) -> None:
        """Last operation and latency figures for ``cons`` (ServerCnxn.updateStatsForResponse)."""
        if cxid >= 0:
            self.last_cxid = cxid
        self.last_zxid = zxid
        self.last_op = _OP_NAMES.get(op, "NA")
        self.last_latency_ms = ms
        if self.latency_count == 0 or ms < self.min_latency_ms:
            self.min_latency_ms = ms
        if ms > self.max_latency_ms:
            self.max_latency_ms = ms
        self.total_latency_ms += ms
        self.latency_count += 1

    def reset_stats(self) -> None:
        self.packets_received = self.packets_sent = 0
        self.last_cxid, self.last_zxid, self.last_op = -1, -1, "NA"
        self.last_latency_ms = self.min_latency_ms = self.max_latency_ms = 0
        self.total_latency_ms = self.latency_count = 0


__all__ = ["READ_OPS", "WRITE_OPS", "ClientConnection", "DecodeError", "Pending"]
