"""One TCP connection to one server: framing, write coalescing, the reply FIFO, pings.

A :class:`Connection` is an asyncio Protocol (no reader task per connection).  Requests
are encoded straight into one output buffer that is written once per event-loop turn;
each awaits a future.  The server answers in request order, so replies are matched
against the head of a FIFO.  The connection knows nothing about sessions or watches:
it hands notifications, auth replies and its own loss to its owner (the Session).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from zkpy.proto.constants import OpCode, Xid
from zkpy.proto.errors import ConnectionLossError
from zkpy.proto.framing import FrameError, FrameReader
from zkpy.proto.jute import DecodeError, Record
from zkpy.proto.messages import decode_connect_response, encode_connect_request
from zkpy.proto.records import ConnectRequest, ConnectResponse, WatcherEvent

log = logging.getLogger(__name__)

__all__ = ["MAX_FRAME_BYTES_DEFAULT", "Connection", "ConnectionOwner", "Finisher"]

# Replies can be large (getChildren of a big node, multiRead): allow more than one znode's worth.
MAX_FRAME_BYTES_DEFAULT = 4 * 1024 * 1024

_LEN = struct.Struct(">i")
_FRAME_HEAD = struct.Struct(">iii")  # length, xid, type
_REPLY_HEAD = struct.Struct(">iqi")  # xid, zxid, err
_PING_FRAME = _FRAME_HEAD.pack(8, Xid.PING, OpCode.ping)
_CONNECTION_LOSS = ConnectionLossError.code
_XID_MAX = 0x7FFFFFFF

# finish(err, body, pos, ctx) -> result, or raises the error for the caller.
Finisher = Callable[[int, bytes, int, Any], Any]


class ConnectionOwner(Protocol):
    last_zxid: int

    def on_notification(self, event: WatcherEvent) -> None: ...

    def on_auth_reply(self, err: int) -> None: ...

    def on_window_open(self) -> None: ...

    def on_connection_lost(self, conn: Connection, reason: str) -> None: ...


class _PendingEntry:
    __slots__ = ("ctx", "finish", "fut", "xid")

    def __init__(self, xid: int, fut: asyncio.Future[Any] | None, finish: Finisher, ctx: Any) -> None:
        self.xid = xid
        self.fut = fut
        self.finish = finish
        self.ctx = ctx


class Connection(asyncio.Protocol):
    """A connected socket, first handshaking, then carrying requests and replies."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 max_frame_bytes: int = MAX_FRAME_BYTES_DEFAULT) -> None:
        self._loop = loop
        self._reader = FrameReader(max_frame_bytes)
        self._transport: asyncio.Transport | None = None
        self._owner: ConnectionOwner | None = None
        self._handshake: asyncio.Future[tuple[ConnectResponse, bool]] = loop.create_future()
        self._out = bytearray()
        self._flush_handle: asyncio.Handle | None = None
        self.pending: deque[_PendingEntry] = deque()
        self._xid = 0
        self.closed = False
        self.close_reason = ""
        self.window = 1 << 30  # in-flight limit; the owner sets it
        self._read_timeout = 0.0
        self._ping_interval = 0.0
        self._last_send = 0.0
        self._last_recv = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.peer: tuple[str, int] | None = None

    # ------------------------------------------------------------ set-up

    async def handshake(self, request: ConnectRequest, read_only: bool, timeout_s: float) -> tuple[
            ConnectResponse, bool]:
        """Send the ConnectRequest; the server's ConnectResponse and its read-only flag."""
        body = encode_connect_request(request, read_only)
        self._write_now(_LEN.pack(len(body)) + body)
        try:
            return await asyncio.wait_for(asyncio.shield(self._handshake), timeout_s)
        except TimeoutError:
            self.abort("handshake timed out")
            raise

    def activate(self, owner: ConnectionOwner, read_timeout_s: float, window: int) -> None:
        """Start carrying requests for ``owner``, with its heartbeat and read timeout."""
        self._owner = owner
        self.window = window
        self._read_timeout = read_timeout_s
        half = read_timeout_s / 2
        # ClientCnxn pings once nothing was sent for readTimeout/2 less a second (so a ping is
        # not missed by a hair), and at least every 10 s.
        if half <= 1.0:
            interval = half
        else:
            interval = max(half - 1.0, 1.0)
        self._ping_interval = min(interval, 10.0)
        now = self._loop.time()
        self._last_send = self._last_recv = now
        self._arm_timer(now)
        if self._reader.buffered:
            self._process_frames()

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.peer = transport.get_extra_info("peername")

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        if self._owner is None:
            if not self._handshake.done():
                self._read_handshake()
            return
        self._last_recv = self._loop.time()
        self._process_frames()

    def eof_received(self) -> bool:
        self._lost("server closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(f"connection lost: {exc}" if exc else "connection closed")

    # ------------------------------------------------------------ requests

    def next_xid(self) -> int:
        x = self._xid + 1
        if x > _XID_MAX:
            x = 1
        self._xid = x
        return x

    def send(self, opcode: int, record: Record | None, finish: Finisher, ctx: Any,
             xid: int | None = None) -> asyncio.Future[Any]:
        """Queue one request; its future gets ``finish``'s result once the reply is in."""
        fut = self._loop.create_future()
        self.send_with(opcode, record, finish, ctx, fut, xid)
        return fut

    def send_with(self, opcode: int, record: Record | None, finish: Finisher, ctx: Any,
                  fut: asyncio.Future[Any] | None, xid: int | None = None) -> None:
        if self.closed:
            if fut is not None:
                fut.set_exception(ConnectionLossError())
            return
        if xid is None:
            xid = self.next_xid()
        out = self._out
        start = len(out)
        out += _FRAME_HEAD.pack(0, xid, opcode)
        if record is not None:
            record.encode_into(out)
        _LEN.pack_into(out, start, len(out) - start - 4)
        self.pending.append(_PendingEntry(xid, fut, finish, ctx))
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def send_unmatched(self, xid: int, opcode: int, record: Record | None) -> None:
        """A request whose reply is not matched by FIFO (auth: the server answers it at once)."""
        out = self._out
        start = len(out)
        out += _FRAME_HEAD.pack(0, xid, opcode)
        if record is not None:
            record.encode_into(out)
        _LEN.pack_into(out, start, len(out) - start - 4)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if self.closed or not self._out:
            return
        out = self._out
        # A fresh buffer: the transport may keep a view of the one it was given.
        self._out = bytearray()
        self._transport.write(out)  # type: ignore[union-attr]
        self._last_send = self._loop.time()

    def _write_now(self, data: bytes) -> None:
        if self._transport is not None and not self.closed:
            self._transport.write(data)

    # ------------------------------------------------------------ replies

    def _read_handshake(self) -> None:
        try:
            frames = self._reader.frames(limit=1)
            if frames:
                self._handshake.set_result(decode_connect_response(frames[0]))
        except (FrameError, DecodeError) as e:
            self.abort(f"bad handshake reply: {e}")

    def _process_frames(self) -> None:
        try:
            frames = self._reader.frames()
        except FrameError as e:
            self.abort(str(e))
            return
        owner = self._owner
        pending = self.pending
        unpack = _REPLY_HEAD.unpack_from
        replies = 0
        for body in frames:
            if self.closed:
                return
            try:
                xid, zxid, err = unpack(body, 0)
            except struct.error:
                self.abort("truncated reply header")
                return
            if xid < 0 and xid != Xid.SET_WATCHES:
                if xid == Xid.PING:
                    continue
                if xid == Xid.NOTIFICATION:
                    try:
                        event, _ = WatcherEvent.decode_from(body, 16)
                    except DecodeError as e:
                        self.abort(f"bad notification: {e}")
                        return
                    owner.on_notification(event)  # type: ignore[union-attr]
                    continue
                if xid == Xid.AUTH:
                    owner.on_auth_reply(err)  # type: ignore[union-attr]
                    continue
            if not pending:
                self.abort(f"Nothing in the queue, but got {xid}")
                return
            entry = pending.popleft()
            replies += 1
            if entry.xid != xid:
                pending.appendleft(entry)
                self.abort(f"Xid out of order. Got Xid {xid} with err {err} expected Xid {entry.xid}")
                return
            if zxid > 0:
                owner.last_zxid = zxid  # type: ignore[union-attr]
            fut = entry.fut
            try:
                result = entry.finish(err, body, 16, entry.ctx)
            except Exception as e:  # the operation's error goes to its caller
                if fut is not None and not fut.done():
                    fut.set_exception(e)
            else:
                if fut is not None and not fut.done():
                    fut.set_result(result)
        if replies and owner is not None:
            owner.on_window_open()

    # ------------------------------------------------------------ liveness

    def _arm_timer(self, now: float) -> None:
        due = min(self._last_recv + self._read_timeout, self._last_send + self._ping_interval)
        self._timer = self._loop.call_at(max(due, now + 0.001), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = self._loop.time()
        if now - self._last_recv >= self._read_timeout:
            self.abort(f"Client session timed out, have not heard from server in "
                       f"{int((now - self._last_recv) * 1000)}ms")
            return
        if now - self._last_send >= self._ping_interval:
            self._out += _PING_FRAME
            self._flush()
        self._arm_timer(now)

    # ------------------------------------------------------------ teardown

    def abort(self, reason: str, err: int = _CONNECTION_LOSS) -> None:
        """Drop the connection now; pending requests fail with ``err`` (ConnectionLoss)."""
        if self._transport is not None and not self.closed:
            self._transport.abort()
        self._lost(reason, err)

    def close_gracefully(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
            self._flush()
        if self._transport is not None:
            self._transport.close()
        self._lost("closed by client")

    def _lost(self, reason: str, err: int = _CONNECTION_LOSS) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._handshake.done():
            self._handshake.set_exception(ConnectionError(reason))
            # Nobody may await it any more (a timed-out connect): don't warn about it.
            self._handshake.exception()
        pending = self.pending
        self.pending = deque()
        for entry in pending:
            fut = entry.fut
            try:
                result = entry.finish(err, b"", 0, entry.ctx)
            except Exception as e:
                if fut is not None and not fut.done():
                    fut.set_exception(e)
            else:
                if fut is not None and not fut.done():
                    fut.set_result(result)
        if self._owner is not None:
            self._owner.on_connection_lost(self, reason)
