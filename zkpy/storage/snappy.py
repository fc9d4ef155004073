"""Read-only decoder for snappy-java's ``SnappyOutputStream`` framing (``.snappy`` snapshots).

Apache writes such snapshots when ``zookeeper.snapshot.compression.method=snappy``.
The framing is an 8-byte magic, two ints (version, compatible version), then
blocks of ``int compressed length`` + a raw snappy block; streams may be
concatenated, magic and all.  The raw block decoder is pure Python: correct,
not fast, which is fine for a format zkpy only reads when taking over a data
directory from Apache.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

MAGIC = b"\x82SNAPPY\x00"
_HEADER_SIZE = 16
_INT = struct.Struct(">i")
# snappy-java's default block is 32 KiB; a block can never decode to more than this.
_MAX_BLOCK_BYTES = 64 * 1024 * 1024


class SnappyError(ValueError):
    pass


def decompress_block(src: bytes) -> bytes:
    """Decode one raw snappy block (format_description.txt of google/snappy)."""
    n = len(src)
    pos = 0
    length = 0
    shift = 0
    while True:  # varint, at most 5 bytes for a 32-bit length
        if pos >= n or shift > 28:
            raise SnappyError("bad snappy length preamble")
        b = src[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    if length > _MAX_BLOCK_BYTES:
        raise SnappyError(f"snappy block of {length} bytes is too large")
    out = bytearray()
    while pos < n:
        tag = src[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            ln = tag >> 2
            if ln >= 60:
                extra = ln - 59
                ln = int.from_bytes(src[pos:pos + extra], "little")
                pos += extra
            ln += 1
            if pos + ln > n:
                raise SnappyError("literal runs past the block")
            out += src[pos:pos + ln]
            pos += ln
            continue
        if kind == 1:
            ln = ((tag >> 2) & 7) + 4
            off = ((tag >> 5) << 8) | src[pos]
            pos += 1
        elif kind == 2:
            ln = (tag >> 2) + 1
            off = int.from_bytes(src[pos:pos + 2], "little")
            pos += 2
        else:
            ln = (tag >> 2) + 1
            off = int.from_bytes(src[pos:pos + 4], "little")
            pos += 4
        if off <= 0 or off > len(out):
            raise SnappyError("copy offset out of range")
        start = len(out) - off
        if off >= ln:
            out += out[start:start + ln]
        else:  # overlapping copy repeats the pattern
            for i in range(ln):
                out.append(out[start + i])
    if len(out) != length:
        raise SnappyError(f"snappy block decoded to {len(out)} bytes, expected {length}")
    return bytes(out)


class SnappyReader:
    """A ``read(n)`` source over a snappy-java stream."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._pending = b""
        head = f.read(_HEADER_SIZE)
        if len(head) < _HEADER_SIZE or head[:8] != MAGIC:
            raise SnappyError("not a snappy-java stream (bad magic)")

    def _next_block(self) -> bytes | None:
        raw = self._f.read(4)
        if not raw:
            return None
        if len(raw) < 4:
            raise SnappyError("truncated snappy block length")
        if raw == MAGIC[:4]:
            rest = self._f.read(_HEADER_SIZE - 4)
            if raw + rest[:4] != MAGIC:
                raise SnappyError("bad snappy block header")
            return b""
        (n,) = _INT.unpack(raw)
        if n < 0 or n > _MAX_BLOCK_BYTES:
            raise SnappyError(f"bad snappy block length {n}")
        data = self._f.read(n)
        if len(data) < n:
            raise SnappyError("truncated snappy block")
        return decompress_block(data)

    def read(self, n: int) -> bytes:
        out = [self._pending]
        have = len(self._pending)
        while have < n:
            block = self._next_block()
            if block is None:
                break
            out.append(block)
            have += len(block)
        data = b"".join(out)
        self._pending = data[n:]
        return data[:n]

    def close(self) -> None:
        self._f.close()
