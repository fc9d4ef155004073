"""The peer transport on asyncio: election channels and learner <-> leader connections.

Election (``QuorumCnxManager``): one TCP connection per pair of members, and the one
that survives is always opened by the higher id.  A member with a lower id that wants
to talk connects, introduces itself and hangs up; the higher member then connects back.
Messages are an int length and the notification.  Sends are queued per peer (bounded,
oldest dropped: a newer notification supersedes older ones) and connections are retried
with a bounded backoff.

Learner <-> leader: a learner connects to the leader's quorum port; both sides exchange
jute ``QuorumPacket`` records back to back (no length prefix), and a SNAP packet is
followed by the serialized database and the signature.

Every outgoing socket is bound to the member's own address, so a member on 127.0.0.12
really speaks from 127.0.0.12 (what the peer sees, and what firewall rules in tests
match on).  No consensus logic here: connections in, bytes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from zkpy.proto.records import QuorumPacket
from zkpy.quorum import wire
from zkpy.quorum.snapwire import read_snapshot_stream

log = logging.getLogger(__name__)

_INT = struct.Struct(">i")
SEND_QUEUE_MAX = 16
CONNECT_TIMEOUT_S = 5.0
INITIAL_MESSAGE_TIMEOUT_S = 5.0
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 2.0


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """Where a member listens: host, quorum (learner) port and election port."""

    host: str
    quorum_port: int
    election_port: int


# ---------------------------------------------------------------------- quorum packets on a stream


async def _open(host: str, port: int, local_host: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(host, port, local_addr=(local_host, 0)),
                                  CONNECT_TIMEOUT_S)


def _close_writer(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


# ---------------------------------------------------------------------- election channels


class _ElectionPeer:
    __slots__ = ("backoff_s", "connecting", "next_try", "queue", "reader_task", "writer")

    def __init__(self) -> None:
        self.queue: deque[bytes] = deque(maxlen=SEND_QUEUE_MAX)
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.connecting = False
        self.backoff_s = BACKOFF_MIN_S
        self.next_try = 0.0


class ElectionChannels:
    """QuorumCnxManager: a message channel to every other member."""

    def __init__(self, my_id: int, peers: dict[int, PeerAddress], on_message: Callable[[int, bytes], None],
                 on_connected: Callable[[int], None]) -> None:
        self.my_id = my_id
        self.me = peers[my_id]
        self.peers = peers
        self.on_message = on_message
        self.on_connected = on_connected
        self._state = {sid: _ElectionPeer() for sid in peers if sid != my_id}
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.me.host, self.me.election_port,
                                                  reuse_address=True)

    async def close(self) -> None:
        self._closed = True
        if self._server is not None:
            self._server.close()
        for st in self._state.values():
            if st.writer is not None:
                _close_writer(st.writer)
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def connected_to(self, sid: int) -> bool:
        st = self._state.get(sid)
        return st is not None and st.writer is not None

    # -- sending

    def send(self, sid: int, message: bytes) -> None:
        st = self._state.get(sid)
        if st is None or self._closed:
            return
        frame = _INT.pack(len(message)) + message
        if st.writer is not None and not st.writer.is_closing():
            st.writer.write(frame)
            return
        st.queue.append(frame)
        self._maybe_connect(sid, st)

    def _maybe_connect(self, sid: int, st: _ElectionPeer) -> None:
        loop = asyncio.get_running_loop()
        if st.connecting or st.writer is not None or loop.time() < st.next_try:
            return
        st.connecting = True
        self._spawn(self._connect(sid, st))

    async def _connect(self, sid: int, st: _ElectionPeer) -> None:
        addr = self.peers[sid]
        loop = asyncio.get_running_loop()
        try:
            reader, writer = await _open(addr.host, addr.election_port, self.me.host)
            writer.write(wire.encode_initial_message(self.my_id, f"{self.me.host}:{self.me.election_port}"))
            await writer.drain()
        except (TimeoutError, OSError) as e:
            log.debug("election: cannot open a channel to %d at %s:%d: %s", sid, addr.host, addr.election_port, e)
            st.connecting = False
            st.next_try = loop.time() + st.backoff_s
            st.backoff_s = min(st.backoff_s * 2, BACKOFF_MAX_S)
            if st.queue:
                # Try again once the backoff has passed, without waiting for another send.
                loop.call_later(st.backoff_s, self._retry, sid)
            return
        st.connecting = False
        if sid > self.my_id:
            # It wins the challenge: having said who we are, we hang up and it calls back.
            _close_writer(writer)
            return
        self._adopt(sid, st, reader, writer)

    def _retry(self, sid: int) -> None:
        st = self._state.get(sid)
        if st is not None and st.queue and not self._closed:
            self._maybe_connect(sid, st)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readexactly(wire.initial_message_head_size()),
                                          INITIAL_MESSAGE_TIMEOUT_S)
            protocol, sid, alen = wire.decode_initial_head(head)
            if alen > 0:
                await asyncio.wait_for(reader.readexactly(alen), INITIAL_MESSAGE_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, wire.WireError) as e:
            log.info("election: dropping a connection with a bad initial message: %s", e)
            _close_writer(writer)
            return
        st = self._state.get(sid)
        if st is None:
            log.warning("election: connection from unknown server %d", sid)
            _close_writer(writer)
            return
        if sid < self.my_id:
            # We win the challenge: drop it and connect ourselves.
            _close_writer(writer)
            st.next_try = 0.0
            self._maybe_connect(sid, st)
            return
        del protocol
        self._adopt(sid, st, reader, writer)

    def _adopt(self, sid: int, st: _ElectionPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if st.writer is not None:
            _close_writer(st.writer)
        if st.reader_task is not None:
            st.reader_task.cancel()
        st.writer = writer
        st.backoff_s = BACKOFF_MIN_S
        st.next_try = 0.0
        while st.queue:
            writer.write(st.queue.popleft())
        task = asyncio.ensure_future(self._read(sid, st, reader, writer))
        st.reader_task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.on_connected(sid)

    async def _read(self, sid: int, st: _ElectionPeer, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (n,) = _INT.unpack(await reader.readexactly(4))
                if n <= 0 or n > wire.ELECTION_MESSAGE_MAX_BYTES:
                    raise wire.WireError(f"election message of {n} bytes")
                self.on_message(sid, await reader.readexactly(n))
        except (OSError, asyncio.IncompleteReadError, wire.WireError) as e:
            log.debug("election: channel to %d closed: %s", sid, e)
        finally:
            if st.writer is writer:
                st.writer = None
                st.reader_task = None
                if st.queue and not self._closed:
                    self._retry(sid)  # what was queued while the channel died goes on a new one
            _close_writer(writer)


# ---------------------------------------------------------------------- learner <-> leader

READ_PAUSE_BYTES = 16 * 1024 * 1024  # a snapshot being streamed pauses the socket beyond this


class _QuorumConnection(asyncio.Protocol):
    """One quorum connection: parses every complete packet of a read at once and hands them over
    together; writes of one event-loop turn leave as one send.

    A SNAP on a learner's connection is followed by a database with no length prefix: the
    connection then switches to streaming it to :func:`read_snapshot_stream` (``_readexactly``)
    and back to packets after the signature.
    """

    def __init__(self, links: QuorumLinks, conn: int, learner: bool) -> None:
        self.links = links
        self.conn = conn
        self.learner = learner
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()  # once: each lookup costs a getpid() system call
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.dead = False
        self.paused = False
        self.streaming = False
        self.stream_waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.links._made(self)

    def data_received(self, data: bytes) -> None:
        if self.dead:
            return
        if self.streaming:
            self.buf += data
            self._wake_stream()
            if len(self.buf) > READ_PAUSE_BYTES and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
            return
        if self.buf:
            self.buf += data
            data = bytes(self.buf)
            self.buf.clear()
        self._parse(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        self._wake_stream()
        self.links._lost(self, exc)

    # -- reading

    def _parse(self, data: bytes) -> None:
        """Every whole packet of ``data`` (what is left over waits in ``buf``); packets are sliced
        from the bytes read, one copy each."""
        packets, pos, error = wire.parse_quorum_packets(data, wire.SNAP if self.learner else -1)
        snap = bool(packets) and self.learner and packets[-1].type == wire.SNAP
        if snap:
            qp = packets.pop()
        got = [(p, None) for p in packets]
        if error is not None:
            if got:
                self.links._packets(self, got)
            self._fail(error)
            return
        if pos < len(data):
            self.buf += memoryview(data)[pos:]
        if got:
            self.links._packets(self, got)
        if snap and not self.dead:
            self.streaming = True
            self.links._spawn(self._stream_snapshot(qp))

    async def _stream_snapshot(self, qp: QuorumPacket) -> None:
        try:
            snapshot = await read_snapshot_stream(self._readexactly)
        except (asyncio.IncompleteReadError, wire.WireError) as e:
            self._fail(e)
            return
        self.streaming = False
        if self.paused and self.transport is not None and not self.dead:
            self.paused = False
            self.transport.resume_reading()
        if self.dead:
            return
        self.links._packets(self, [(qp, snapshot)])
        if not self.dead and self.buf:
            data = bytes(self.buf)
            self.buf.clear()
            self._parse(data)  # what came after the signature

    async def _readexactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.dead:
                raise asyncio.IncompleteReadError(bytes(self.buf), n)
            if self.paused and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
            self.stream_waiter = asyncio.get_running_loop().create_future()
            try:
                await self.stream_waiter
            finally:
                self.stream_waiter = None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _wake_stream(self) -> None:
        w = self.stream_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, error: BaseException) -> None:
        log.debug("quorum connection %d closed: %s", self.conn, error)
        self.dead = True
        if self.transport is not None:
            self.transport.abort()

    # -- writing

    def send(self, data: bytes) -> None:
        if self.dead:
            return
        self.out.append(data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if not self.out:
            return
        out, self.out = self.out, []
        if self.transport is not None and not self.dead and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def close(self) -> None:
        self.flush()
        self.dead = True
        self._wake_stream()
        if self.transport is not None:
            self.transport.close()


class QuorumLinks:
    """Quorum connections: accepted ones (as leader) and the one to our leader (as learner).

    Connection ids: the core numbers the connections it opens (negative); accepted ones
    are numbered here (positive).  ``on_packets(conn, [(packet, snapshot or None), ...])``
    gets every packet one read brought, in order.
    """

    def __init__(self, my_id: int, peers: dict[int, PeerAddress],
                 on_accepted: Callable[[int], None], on_connected: Callable[[int], None],
                 on_packets: Callable[[int, list[tuple[QuorumPacket, bytes | None]]], None],
                 on_closed: Callable[[int], None]) -> None:
        self.my_id = my_id
        self.me = peers[my_id]
        self.peers = peers
        self.on_accepted = on_accepted
        self.on_connected = on_connected
        self.on_packets = on_packets
        self.on_closed = on_closed
        self._conns: dict[int, _QuorumConnection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_id = 1
        self._server: asyncio.base_events.Server | None = None
        self._closed = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accepted_connection, self.me.host, self.me.quorum_port,
                                                reuse_address=True)

    async def close(self) -> None:
        self._closed = True
        if self._server is not None:
            self._server.close()
        for c in list(self._conns.values()):
            c.close()
        self._conns.clear()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accepted_connection(self) -> _QuorumConnection:
        conn = self._next_id
        self._next_id += 1
        return _QuorumConnection(self, conn, learner=False)

    def connect(self, conn: int, sid: int) -> None:
        self._spawn(self._connect(conn, sid))

    async def _connect(self, conn: int, sid: int) -> None:
        addr = self.peers.get(sid)
        if addr is None:
            self.on_closed(conn)
            return
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: _QuorumConnection(self, conn, learner=True), addr.host,
                                       addr.quorum_port, local_addr=(self.me.host, 0)),
                CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError) as e:
            log.debug("cannot connect to leader %d at %s:%d: %s", sid, addr.host, addr.quorum_port, e)
            self.on_closed(conn)

    # -- from the connections

    def _made(self, c: _QuorumConnection) -> None:
        if self._closed:
            c.close()
            return
        self._conns[c.conn] = c
        if c.learner:
            self.on_connected(c.conn)
        else:
            self.on_accepted(c.conn)

    def _packets(self, c: _QuorumConnection, packets: list[tuple[QuorumPacket, bytes | None]]) -> None:
        if self._conns.get(c.conn) is c:  # else closed by us meanwhile
            self.on_packets(c.conn, packets)

    def _lost(self, c: _QuorumConnection, exc: Exception | None) -> None:
        if self._conns.get(c.conn) is c:
            del self._conns[c.conn]
            log.debug("quorum connection %d closed: %s", c.conn, exc or "end of stream")
            if not self._closed:
                self.on_closed(c.conn)

    # -- for the driver

    def send(self, conn: int, data: bytes) -> None:
        c = self._conns.get(conn)
        if c is not None:
            c.send(data)

    def close_conn(self, conn: int) -> None:
        """Close at the core's request (the core already knows; no on_closed).  What was sent
        before still goes out."""
        c = self._conns.pop(conn, None)
        if c is not None:
            c.close()
