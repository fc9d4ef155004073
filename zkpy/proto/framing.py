"""Length-prefixed framing: a 4-byte big-endian length, then the body.

Sans-I/O: feed bytes in with :meth:`FrameReader.feed`, take whole frames out
with :meth:`FrameReader.frames`.  Used by the server, the client and tests.
"""

from __future__ import annotations

import struct

_LEN = struct.Struct(">i")


class FrameError(ValueError):
    """A frame length that ZooKeeper refuses (negative or above jute.maxbuffer)."""


class FrameReader:
    """Splits a byte stream into frames no longer than ``max_frame_bytes``.

    The unconsumed input is the last read's ``bytes`` as it came while every frame in it is
    whole (a frame is then one slice of it, one copy), and a ``bytearray`` only once a frame
    straddles two reads."""

    __slots__ = ("_buf", "_pos", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int) -> None:
        self._buf: bytes | bytearray = b""
        self._pos = 0  # start of the unconsumed bytes (next_frame consumes lazily)
        self.max_frame_bytes = max_frame_bytes

    def _compact(self) -> None:
        pos = self._pos
        if pos:
            buf = self._buf
            if isinstance(buf, bytearray):
                del buf[:pos]
            else:
                self._buf = buf[pos:]
            self._pos = 0

    def feed(self, data: bytes | bytearray) -> None:
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):  # everything before was consumed
            self._buf = data if type(data) is bytes else bytes(data)
            self._pos = 0
        elif isinstance(buf, bytearray):
            buf += data
        else:
            rest = bytearray(buf[pos:]) if pos else bytearray(buf)
            rest += data
            self._buf = rest
            self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet make a whole frame."""
        return len(self._buf) - self._pos

    def peek_length(self) -> int | None:
        """The length field of the next frame, if its 4 bytes have arrived."""
        if len(self._buf) - self._pos < 4:
            return None
        return _LEN.unpack_from(self._buf, self._pos)[0]

    def _consumed_to(self, pos: int) -> None:
        buf = self._buf
        if pos >= len(buf):
            if isinstance(buf, bytearray):
                buf.clear()
            else:
                self._buf = b""
            self._pos = 0
        else:
            self._pos = pos

    def next_frame(self) -> bytes | None:
        """The next complete frame, or None; raises FrameError on a bad length.

        Consumes by moving an offset, so taking many small frames one by one stays linear."""
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if end - pos < 4:
            return None
        (n,) = _LEN.unpack_from(buf, pos)
        if n < 0 or n > self.max_frame_bytes:
            raise FrameError(f"Len error {n}")
        stop = pos + 4 + n
        if stop > end:
            if pos > 65536:
                self._compact()
            return None
        frame = buf[pos + 4 : stop]
        if stop == end:
            self._consumed_to(stop)
        else:
            self._pos = stop
        return frame if type(frame) is bytes else bytes(frame)

    def frames(self, limit: int = 1 << 30) -> list[bytes]:
        """Complete frames received so far (at most ``limit``); raises FrameError on a bad length."""
        buf = self._buf
        out: list[bytes] = []
        pos = self._pos
        end = len(buf)
        max_len = self.max_frame_bytes
        unpack = _LEN.unpack_from
        copy = type(buf) is not bytes
        while end - pos >= 4 and len(out) < limit:
            (n,) = unpack(buf, pos)
            if n < 0 or n > max_len:
                raise FrameError(f"Len error {n}")
            stop = pos + 4 + n
            if stop > end:
                break
            out.append(bytes(buf[pos + 4 : stop]) if copy else buf[pos + 4 : stop])  # type: ignore[arg-type]
            pos = stop
        self._consumed_to(pos)
        self._compact()
        return out

    def take_rest(self) -> bytes:
        """Everything buffered, emptying the reader."""
        data = bytes(self._buf[self._pos :])
        self._buf = b""
        self._pos = 0
        return data


def frame(body: bytes | bytearray) -> bytes:
    """``body`` with its length prefix."""
    return _LEN.pack(len(body)) + body
