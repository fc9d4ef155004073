"""In-process stand-ins for client tests: a TCP proxy we can cut, and a scripted fake server.

(Holds no tests itself; the name keeps it among the client test files.)
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Awaitable, Callable

from zkpy.proto.framing import FrameReader
from zkpy.proto.messages import decode_connect_request, encode_connect_response
from zkpy.proto.records import ConnectResponse

_HDR = struct.Struct(">ii")
_REPLY = struct.Struct(">iqi")


class Proxy:
    """Forwards loopback connections to ``target``; ``cut()`` drops them and refuses new ones.

    Records the first frame (the ConnectRequest) of every connection it forwards.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.blocked = False
        self.handshakes: list[bytes] = []
        self._server: asyncio.base_events.Server | None = None
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._pairs.append((writer, up_w))
        first = True

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
            nonlocal first
            buf = b""
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    if record and first:
                        buf += data
                        if len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">i", buf[:4])[0]:
                            self.handshakes.append(buf[4 : 4 + struct.unpack(">i", buf[:4])[0]])
                            first = False
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        for coro in (pump(reader, up_w, True), pump(up_r, writer, False)):
            t = asyncio.get_running_loop().create_task(coro)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    def cut(self) -> None:
        """Drop every forwarded connection and refuse new ones until ``restore()``."""
        self.blocked = True
        for a, b in self._pairs:
            for w in (a, b):
                with contextlib.suppress(Exception):
                    w.transport.abort()
        self._pairs.clear()

    def restore(self) -> None:
        self.blocked = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for t in list(self._tasks):
            t.cancel()


# A handler gets (xid, opcode, body) and returns reply bytes (after the header) with an err,
# None to send nothing (hold the request), or raises to drop the connection.
Handler = Callable[[int, int, bytes], Awaitable["tuple[int, bytes] | None"]]


class FakeServer:
    """A scripted server: answers the handshake as told, pings always, the rest via ``handler``."""

    def __init__(self, timeout_ms: int = 30_000, read_only: bool = False, session_id: int = 0x1234,
                 handler: Handler | None = None, answer_pings: bool = True) -> None:
        self.timeout_ms = timeout_ms
        self.read_only = read_only
        self.session_id = session_id
        self.handler = handler
        self.answer_pings = answer_pings
        self.connects: list = []
        self.requests: list[tuple[int, int, bytes]] = []
        self.pings = 0
        self.writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.base_events.Server | None = None
        self.port = 0
        self.zxid = 1

    async def start(self) -> FakeServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        frames = FrameReader(1 << 22)
        handshaken = False
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                if not handshaken and data[:4] == b"isro":  # the read/write probe
                    writer.write(b"ro" if self.read_only else b"rw")
                    return
                frames.feed(data)
                for body in frames.frames():
                    if not handshaken:
                        hs = decode_connect_request(body)
                        self.connects.append(hs)
                        sid = hs.request.sessionId or self.session_id
                        resp = ConnectResponse(0, self.timeout_ms, sid if self.timeout_ms > 0 else 0, bytes(16))
                        out = encode_connect_response(resp, self.read_only)
                        writer.write(struct.pack(">i", len(out)) + out)
                        handshaken = True
                        if self.timeout_ms <= 0:
                            writer.close()
                            return
                        continue
                    xid, op = _HDR.unpack_from(body, 0)
                    if op == 11:
                        self.pings += 1
                        if self.answer_pings:
                            self._reply(writer, xid, 0, b"")
                        continue
                    self.requests.append((xid, op, body[8:]))
                    if self.handler is None:
                        self._reply(writer, xid, 0, b"")
                        continue
                    answer = await self.handler(xid, op, body[8:])
                    if answer is not None:
                        self._reply(writer, xid, answer[0], answer[1])
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _reply(self, writer: asyncio.StreamWriter, xid: int, err: int, body: bytes) -> None:
        self.zxid += 1
        payload = _REPLY.pack(xid, self.zxid, err) + body
        writer.write(struct.pack(">i", len(payload)) + payload)

    def reply(self, xid: int, err: int = 0, body: bytes = b"") -> None:
        """Answer a held request on the newest connection."""
        self._reply(self.writers[-1], xid, err, body)

    def drop_all(self) -> None:
        for w in self.writers:
            with contextlib.suppress(Exception):
                w.transport.abort()

    async def close(self) -> None:
        self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
