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
    """Splits a byte stream into frames no longer than ``max_frame_bytes``."""

    __slots__ = ("_buf", "_pos", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed bytes (next_frame consumes lazily)
        self.max_frame_bytes = max_frame_bytes

    def _compact(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos >= len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet make a whole frame."""
        return len(self._buf) - self._pos

    def peek_length(self) -> int | None:
        """The length field of the next frame, if its 4 bytes have arrived."""
        if len(self._buf) - self._pos < 4:
            return None
        return _LEN.unpack_from(self._buf, self._pos)[0]

    def next_frame(self) -> bytes | None:
        """The next complete frame, or None; raises FrameError on a bad length.

        Consumes by moving an offset, so taking many small frames one by one stays linear."""
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 4:
            return None
        (n,) = _LEN.unpack_from(buf, pos)
        if n < 0 or n > self.max_frame_bytes:
            raise FrameError(f"Len error {n}")
        stop = pos + 4 + n
        if stop > len(buf):
            if pos > 65536:
                self._compact()
            return None
        frame = bytes(buf[pos + 4 : stop])
        self._pos = stop
        if stop == len(buf):
            buf.clear()
            self._pos = 0
        return frame

    def frames(self, limit: int = 1 << 30) -> list[bytes]:
        """Complete frames received so far (at most ``limit``); raises FrameError on a bad length."""
        self._compact()
        buf = self._buf
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        max_len = self.max_frame_bytes
        unpack = _LEN.unpack_from
        while end - pos >= 4 and len(out) < limit:
            (n,) = unpack(buf, pos)
            if n < 0 or n > max_len:
                raise FrameError(f"Len error {n}")
            stop = pos + 4 + n
            if stop > end:
                break
            out.append(bytes(buf[pos + 4 : stop]))
            pos = stop
        if pos:
            del buf[:pos]
        return out

    def take_rest(self) -> bytes:
        """Everything buffered, emptying the reader."""
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return data


def frame(body: bytes | bytearray) -> bytes:
    """``body`` with its length prefix."""
    return _LEN.pack(len(body)) + body
