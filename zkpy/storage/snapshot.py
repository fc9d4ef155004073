"""Snapshots in Apache ZooKeeper 3.8's format (``FileSnap``, ``SnapStream``, ``DataTree``).

A snapshot ``snapshot.<hex zxid>`` (``.gz`` / ``.snappy`` when compressed) is one
stream, checksummed as it goes by an Adler32 that is never reset::

    FileHeader {int magic "ZKSN", int version 2, long dbid -1}
    int count, then count x (long session id, int timeout ms)
    int count, then count x (long acl id, vector<ACL>)        -- ReferenceCountedACLCache
    (ustring path, DataNode {buffer data, long acl, StatPersisted})*  ending with path "/"
    long adler32-so-far, ustring "/"                          -- SnapStream.sealStream
    [long zxid, int digestVersion, long digest                -- DataTree.serializeZxidDigest
     long adler32-so-far, ustring "/"]                        -- sealed again

3.8.0 writes nothing after the digest (later versions add more; a reader here
ignores trailing bytes as 3.8 does).  The digest section is optional on read:
its absence (EOF right after the first seal, or inside the digest) means an
older snapshot, but a digest without its seal makes the file invalid.

Nodes are written in ``DataTree.serializeNode`` order: pre-order depth-first
from the root, a parent before its children, ``/zookeeper``,
``/zookeeper/quota`` and ``/zookeeper/config`` included like any node.  On disk
the root's path is the empty string (``"/"`` is the end marker); this module
speaks ``"/"`` for the root to its callers and translates.  Node tuples are
``(path, data, acl_id, stat)``; ``acl_id`` -1 means OPEN_ACL_UNSAFE and has no
entry in the ACL map.
"""

from __future__ import annotations

import gzip
import itertools
import logging
import mmap
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from zkpy.proto.jute import MAX_BUFFER_DEFAULT, DecodeError
from zkpy.proto.records import ACL, FileHeader, StatPersisted
from zkpy.storage.errors import CorruptSnapshotError
from zkpy.storage.files import fsync_dir, parse_snapshot_name, snapshot_name
from zkpy.storage.snappy import MAGIC as SNAPPY_MAGIC
from zkpy.storage.snappy import SnappyError, SnappyReader

__all__ = [
    "DIGEST_VERSION",
    "SNAP_MAGIC",
    "Node",
    "PackedNode",
    "Snapshot",
    "SnapshotDigest",
    "SnapshotReader",
    "SnapshotWriter",
    "is_valid_snapshot_tail",
    "read_snapshot",
    "write_snapshot",
]

log = logging.getLogger(__name__)

SNAP_MAGIC = int.from_bytes(b"ZKSN", "big")
SNAP_VERSION = 2
SNAP_DBID = -1
DIGEST_VERSION = 2  # DigestCalculator.DIGEST_VERSION in 3.8
# jute.maxbuffer + zookeeper.jute.maxbuffer.extrasize: what BinaryInputArchive accepts per buffer.
MAX_BUFFER_BYTES = 2 * MAX_BUFFER_DEFAULT
_CHUNK_BYTES = 1 << 20  # write / read granularity of the streaming codec
_NODES_PER_STEP_DEFAULT = 10_000

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_SESSION = struct.Struct(">qi")
# DataNode tail: acl long + StatPersisted (czxid, mzxid, ctime, mtime, version, cversion,
# aversion, ephemeralOwner, pzxid).
_NODE_FIXED = struct.Struct(">qqqqqiiiqq")
_STAT = struct.Struct(">qqqqiiiqq")  # StatPersisted alone
_NODE_TAIL = _NODE_FIXED.size  # acl long + StatPersisted: 68 bytes after the data
_TAIL = struct.Struct(">q60s")  # acl id, the stat as its 60 bytes
_TAIL_NEXT = struct.Struct(">q60si")  # ... and the length of the next node's path
_DIGEST_HEAD = struct.Struct(">qi")
_SEAL_TAIL = _INT.pack(1) + b"/"  # ustring "/"
_NULL = b"\xff\xff\xff\xff"

# (path, data, acl id, stat): the neutral node record exchanged with the tree.
Node = tuple[str, bytes | None, int, StatPersisted]
# The same with the stat as the 60 bytes the file holds (StatPersisted packed as >qqqqiiiqq).
PackedNode = tuple[str, bytes | None, int, bytes]


@dataclass(slots=True)
class SnapshotDigest:
    """DataTree.ZxidDigest: the tree digest at ``zxid`` (zxid 0 = none recorded)."""

    zxid: int = 0
    version: int = DIGEST_VERSION
    digest: int = 0


@dataclass(slots=True)
class Snapshot:
    path: Path
    zxid: int
    sessions: dict[int, int]
    acls: dict[int, list[ACL]]
    nodes: list[Node]
    digest: SnapshotDigest | None


# ---------------------------------------------------------------------- writing


class SnapshotWriter:
    """Stream a snapshot to ``snap_dir`` under a temporary name, renamed into place by ``finish``.

    Call ``write_sessions``, ``write_acls``, then ``write_nodes`` (as often as
    wanted: each call may consume a bounded number of nodes so the caller can
    yield in between), then ``finish``.  Memory stays bounded by ``chunk_bytes``
    whatever the tree's size.  A crash at any point leaves at most a hidden
    ``.snapshot.*.tmp`` file, which neither Apache nor zkpy takes for a snapshot.
    """

    def __init__(self, snap_dir: str | os.PathLike[str], zxid: int, *, compression: str = "",
                 fsync: bool = True, chunk_bytes: int = _CHUNK_BYTES) -> None:
        if compression not in ("", "gz"):
            raise ValueError(f"unsupported snapshot compression {compression!r} (write '' or 'gz')")
        self.snap_dir = Path(snap_dir)
        self.zxid = zxid
        self.final_path = self.snap_dir / snapshot_name(zxid, compression)
        self.tmp_path = self.snap_dir / f".{self.final_path.name}.{os.getpid()}.tmp"
        self.fsync = fsync
        self.chunk_bytes = chunk_bytes
        self.node_count = 0
        self._raw: BinaryIO = open(self.tmp_path, "wb")
        self._out: BinaryIO = self._raw
        if compression == "gz":
            # Java's GZIPOutputStream deflates at the default level, 6.
            self._out = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6, mtime=0)  # type: ignore[assignment]
        self._crc = zlib.adler32(b"")
        self._buf = bytearray(FileHeader(SNAP_MAGIC, SNAP_VERSION, SNAP_DBID).to_bytes())
        self._stage = 0  # 0 header, 1 sessions written, 2 acls written, 3 finished

    def _drain(self) -> None:
        buf = self._buf
        if buf:
            self._crc = zlib.adler32(buf, self._crc)
            self._out.write(buf)
            self._buf = bytearray()

    def write_sessions(self, sessions: Mapping[int, int]) -> None:
        """Sessions as {session id: timeout ms}."""
        if self._stage != 0:
            raise RuntimeError("write_sessions must come first, once")
        buf = self._buf
        buf += _INT.pack(len(sessions))
        pack = _SESSION.pack
        for sid, timeout_ms in sessions.items():
            buf += pack(sid, timeout_ms)
            if len(buf) >= self.chunk_bytes:
                self._drain()
                buf = self._buf
        self._stage = 1

    def write_acls(self, acls: Mapping[int, Sequence[ACL]]) -> None:
        """The ACL cache as {acl id: [ACL, ...]} (id -1, OPEN_ACL_UNSAFE, is implicit)."""
        if self._stage != 1:
            raise RuntimeError("write_acls must follow write_sessions, once")
        buf = self._buf
        buf += _INT.pack(len(acls))
        for acl_id, acl_list in acls.items():
            buf += _LONG.pack(acl_id)
            buf += _INT.pack(len(acl_list))
            for acl in acl_list:
                acl.encode_into(buf)
            if len(buf) >= self.chunk_bytes:
                self._drain()
                buf = self._buf
        self._stage = 2

    def write_nodes(self, nodes: Iterable[Node], max_nodes: int | None = None) -> bool:
        """Write nodes from ``nodes``; with ``max_nodes``, at most that many.

        Returns True when ``nodes`` is exhausted.  To write in steps, pass the
        same iterator each time (``it = iter(tree_nodes())``).
        """
        if self._stage != 2:
            raise RuntimeError("write_nodes must follow write_acls")
        src = nodes if max_nodes is None else itertools.islice(nodes, max_nodes)
        buf = self._buf
        limit = self.chunk_bytes
        pack_int = _INT.pack
        pack_fixed = _NODE_FIXED.pack
        count = 0
        for path, data, acl_id, st in src:
            if path == "/":
                pb = b""
                if self.node_count + count != 0:
                    raise ValueError("the root must be the first node of a snapshot")
            else:
                pb = path.encode()
                if self.node_count + count == 0:
                    raise ValueError(f"the first node of a snapshot must be the root, not {path!r}")
            buf += pack_int(len(pb))
            buf += pb
            if data is None:
                buf += _NULL
            else:
                buf += pack_int(len(data))
                buf += data
            buf += pack_fixed(acl_id, st.czxid, st.mzxid, st.ctime, st.mtime, st.version, st.cversion,
                              st.aversion, st.ephemeralOwner, st.pzxid)
            count += 1
            if len(buf) >= limit:
                self._drain()
                buf = self._buf
        self.node_count += count
        return max_nodes is None or count < max_nodes

    def write_encoded_nodes(self, chunk: bytes | bytearray | memoryview, count: int, *,
                            starts_with_root: bool = False) -> None:
        """Append ``count`` nodes already encoded as the file holds them (ustring path, buffer
        data, long acl, StatPersisted), e.g. spooled while the tree kept changing."""
        if self._stage != 2:
            raise RuntimeError("write_encoded_nodes must follow write_acls")
        if self.node_count == 0 and count and not starts_with_root:
            raise ValueError("the first node of a snapshot must be the root")
        self._drain()
        self._crc = zlib.adler32(chunk, self._crc)
        self._out.write(chunk)
        self.node_count += count

    def _seal(self) -> None:
        self._drain()
        seal = _LONG.pack(self._crc) + _SEAL_TAIL
        self._buf += seal
        self._drain()

    def finish(self, digest: SnapshotDigest | None = None, *, write_digest: bool = True) -> Path:
        """Seal, write the digest section, fsync, rename into place; return the final path.

        ``digest`` None writes an empty digest (zxid 0) as Apache does before its
        tree has one; ``write_digest=False`` omits the section (digest disabled).
        """
        if self._stage != 2:
            raise RuntimeError("finish must follow write_acls / write_nodes")
        if self.node_count == 0:
            raise ValueError("a snapshot needs at least the root node")
        try:
            self._buf += pack_ustring("/")  # end of nodes
            self._seal()
            if write_digest:
                d = digest or SnapshotDigest()
                self._buf += _DIGEST_HEAD.pack(d.zxid, d.version) + _LONG.pack(d.digest)
                self._seal()
            if self._out is not self._raw:
                self._out.close()  # writes the gzip trailer; leaves the file open
            self._raw.flush()
            if self.fsync:
                os.fsync(self._raw.fileno())
            self._raw.close()
            self._stage = 3
            os.replace(self.tmp_path, self.final_path)
            if self.fsync:
                fsync_dir(self.snap_dir)
        except BaseException:
            self.abort()
            raise
        return self.final_path

    def abort(self) -> None:
        """Drop the temporary file (after an error, or to give up)."""
        try:
            if not self._raw.closed:
                if self._out is not self._raw:
                    try:
                        self._out.close()
                    except (OSError, ValueError):
                        pass
                self._raw.close()
        finally:
            self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None and self._stage != 3:
            self.abort()


def pack_ustring(s: str) -> bytes:
    b = s.encode()
    return _INT.pack(len(b)) + b


def write_snapshot(snap_dir: str | os.PathLike[str], zxid: int, sessions: Mapping[int, int],
                   acls: Mapping[int, Sequence[ACL]], nodes: Iterable[Node],
                   digest: SnapshotDigest | None = None, *, compression: str = "",
                   fsync: bool = True) -> Path:
    """Write a whole snapshot in one call (tests, tools, small trees)."""
    with SnapshotWriter(snap_dir, zxid, compression=compression, fsync=fsync) as w:
        w.write_sessions(sessions)
        w.write_acls(acls)
        w.write_nodes(nodes)
        return w.finish(digest)


# ---------------------------------------------------------------------- reading


class _Truncated(Exception):
    pass


class _Input:
    """Bytes of a (possibly decompressed) snapshot with a running Adler32 of what was consumed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "rb")
        self._src: Any = None
        self._mm: mmap.mmap | None = None
        self.buf: Any = b""
        self.pos = 0
        self.crc = zlib.adler32(b"")
        self._crc_from = 0
        name = path.name
        if name.endswith(".gz"):
            self._src = gzip.GzipFile(fileobj=self._file, mode="rb")
        elif name.endswith(".snappy"):
            self._src = SnappyReader(self._file)
        else:
            size = os.fstat(self._file.fileno()).st_size
            if size:
                self._mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
                self.buf = self._mm

    def refill(self, need: int) -> None:
        """Make at least ``need`` bytes available at ``pos`` or raise _Truncated."""
        if len(self.buf) - self.pos >= need:
            return
        if self._src is None:
            raise _Truncated
        self.fold()
        rest = bytes(self.buf[self.pos:])
        parts = [rest]
        have = len(rest)
        while have < need:  # bounded: each read returns new bytes or signals the end
            chunk = self._src.read(max(_CHUNK_BYTES, need - have))
            if not chunk:
                self.buf, self.pos, self._crc_from = rest if len(parts) == 1 else b"".join(parts), 0, 0
                raise _Truncated
            parts.append(chunk)
            have += len(chunk)
        self.buf = b"".join(parts)
        self.pos = 0
        self._crc_from = 0

    def fold(self) -> None:
        """Add the bytes consumed so far to the running checksum."""
        if self.pos > self._crc_from:
            with memoryview(self.buf) as mv:
                self.crc = zlib.adler32(mv[self._crc_from:self.pos], self.crc)
            self._crc_from = self.pos

    def at_end(self) -> bool:
        try:
            self.refill(1)
        except _Truncated:
            return True
        return False

    def read_record(self, cls: Any) -> Any:
        need = 64
        while True:  # bounded: each retry has more bytes, or _Truncated ends it
            try:
                obj, self.pos = cls.decode_from(self.buf, self.pos)
                return obj
            except DecodeError as e:
                if self._src is None:
                    raise _Truncated from e
                need = max(need * 2, len(self.buf) - self.pos + 1)
                self.refill(need)

    def close(self) -> None:
        if self._mm is not None:
            self.buf = b""
            self._mm.close()
            self._mm = None
        if self._src is not None:
            self._src.close()
        self._file.close()


class SnapshotReader:
    """Read a snapshot incrementally: header, sessions and ACLs on open, nodes on demand.

    ``iter_nodes()`` yields nodes as it parses them and verifies the checksum
    when it reaches the end; an error raises :class:`CorruptSnapshotError`
    naming the file, so a caller building a tree from it must discard that tree.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_buffer_bytes: int = MAX_BUFFER_BYTES) -> None:
        self.path = Path(path)
        z = parse_snapshot_name(self.path.name)
        self.zxid = z if z is not None else -1
        self.max_buffer_bytes = max_buffer_bytes
        self.digest: SnapshotDigest | None = None
        self.node_count = 0
        self.complete = False
        self._gen: Iterator[Node] | None = None
        try:
            self._in = _Input(self.path)
        except (OSError, EOFError, SnappyError) as e:
            raise CorruptSnapshotError(self.path, str(e)) from e
        try:
            self.header: FileHeader = self._in.read_record(FileHeader)
            if self.header.magic != SNAP_MAGIC:
                raise CorruptSnapshotError(self.path, f"mismatching magic headers {self.header.magic} != "
                                                      f"{SNAP_MAGIC}")
            self.sessions = self._read_sessions()
            self.acls = self._read_acls()
        except _Truncated:
            self.close()
            raise CorruptSnapshotError(self.path, "truncated") from None
        except (OSError, EOFError, SnappyError, zlib.error) as e:
            self.close()
            raise CorruptSnapshotError(self.path, str(e)) from e
        except CorruptSnapshotError:
            self.close()
            raise

    def _read_int(self) -> int:
        inp = self._in
        inp.refill(4)
        (v,) = _INT.unpack_from(inp.buf, inp.pos)
        inp.pos += 4
        return v

    def _read_sessions(self) -> dict[int, int]:
        inp = self._in
        n = self._read_int()
        if n < 0:
            raise CorruptSnapshotError(self.path, f"negative session count {n}")
        sessions: dict[int, int] = {}
        for _ in range(n):
            inp.refill(_SESSION.size)
            sid, timeout_ms = _SESSION.unpack_from(inp.buf, inp.pos)
            inp.pos += _SESSION.size
            sessions[sid] = timeout_ms
        return sessions

    def _read_acls(self) -> dict[int, list[ACL]]:
        inp = self._in
        n = self._read_int()
        if n < 0:
            raise CorruptSnapshotError(self.path, f"negative ACL map size {n}")
        acls: dict[int, list[ACL]] = {}
        for _ in range(n):
            inp.refill(12)
            (acl_id,) = _LONG.unpack_from(inp.buf, inp.pos)
            inp.pos += 8
            count = self._read_int()
            if count < 0:
                raise CorruptSnapshotError(self.path, "Incorrent format of InputArchive when deserialize "
                                                      "DataTree - missing acls")
            acls[acl_id] = [inp.read_record(ACL) for _ in range(count)]
        return acls

    def iter_nodes(self) -> Iterator[Node]:
        """Yield every node (root as "/"), then verify the seals and read the digest.

        There is one pass per reader: calling this again continues where the
        previous iterator stopped.
        """
        if self._gen is None:
            self._gen = self._checked(self._iter_packed())
        return self._gen

    def iter_packed_nodes(self) -> Iterator[PackedNode]:
        """Like :meth:`iter_nodes`, for bulk loaders: each node's stat as the 60 bytes the file
        holds (``zkpy.tree.node``'s layout) instead of a StatPersisted, and no check that a
        node's parent came before it (the loader finds parents itself and must check that).

        The same single pass: only one of the two iterators can be used on a reader.
        """
        if self._gen is None:
            self._gen = self._iter_packed()
        return self._gen  # type: ignore[return-value]

    def _iter_packed(self) -> Iterator[PackedNode]:
        try:
            yield from self._packed_nodes()
            self._tail()
        except _Truncated:
            raise CorruptSnapshotError(self.path, "truncated") from None
        except (OSError, EOFError, SnappyError, zlib.error) as e:
            raise CorruptSnapshotError(self.path, str(e)) from e
        finally:
            self.close()

    def _checked(self, packed: Iterator[PackedNode]) -> Iterator[Node]:
        """Nodes with a StatPersisted each, every parent seen before its child (DataTree.deserialize)."""
        seen: set[str] = set()
        unpack = _STAT.unpack
        new_stat = StatPersisted
        for path, data, acl_id, stat in packed:
            if path != "/":
                parent = path[:path.rfind("/")]
                if parent not in seen:
                    raise CorruptSnapshotError(self.path, f"Invalid Datatree, unable to find parent {parent} of "
                                                          f"path {path}")
                seen.add(path)
            else:
                seen.add("")
            yield (path, data, acl_id, new_stat(*unpack(stat)))

    def _packed_nodes(self) -> Iterator[PackedNode]:
        inp = self._in
        if inp._mm is not None and hasattr(inp._mm, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
            inp._mm.madvise(mmap.MADV_SEQUENTIAL)  # read ahead: the file is read once, front to back
        limit = self.max_buffer_bytes
        unpack_int = _INT.unpack_from
        unpack_tail = _TAIL.unpack_from
        unpack_tail_next = _TAIL_NEXT.unpack_from
        path_of = self.path
        buf = inp.buf
        pos = inp.pos
        n = len(buf)
        count = 0
        plen = -1  # >= 0: the next path's length, read with the node before it
        while True:  # bounded: every pass consumes a node or refills (which ends at EOF)
            if plen < 0:
                if pos + 4 > n:
                    inp.pos = pos
                    inp.refill(4)
                    buf, pos, n = inp.buf, inp.pos, len(inp.buf)
                (plen,) = unpack_int(buf, pos)
                if plen < 0:
                    raise CorruptSnapshotError(path_of, f"Unreasonable path length = {plen} at node {count}")
            if plen > limit:
                raise CorruptSnapshotError(path_of, f"Unreasonable path length = {plen} at node {count}")
            p_at = pos + 4
            p_end = p_at + plen
            if p_end + 4 > n:
                inp.pos = pos
                inp.refill(4 + plen + 4)
                buf, pos, n = inp.buf, inp.pos, len(inp.buf)
                plen = -1
                continue
            if plen == 1 and buf[p_at] == 0x2F:  # "/": the end of the nodes
                inp.pos = p_end
                break
            (dlen,) = unpack_int(buf, p_end)
            d_at = p_end + 4
            if dlen == -1:
                d_end = d_at
            elif dlen < 0 or dlen > limit:
                path = str(buf[p_at:p_end], "utf-8", "replace")
                raise CorruptSnapshotError(path_of, f"Unreasonable data length = {dlen} for {path!r}")
            else:
                d_end = d_at + dlen
            # acl, the 60-byte stat, and the next path's length when the buffer holds it (it
            # always does in a whole file: the end marker follows the last node).
            if d_end + _NODE_TAIL + 4 <= n:
                acl_id, stat, plen = unpack_tail_next(buf, d_end)
            elif d_end + _NODE_TAIL <= n:
                acl_id, stat = unpack_tail(buf, d_end)
                plen = -1
            else:
                inp.pos = pos
                inp.refill(d_end + _NODE_TAIL - pos)
                buf, pos, n = inp.buf, inp.pos, len(inp.buf)
                plen = -1
                continue
            if plen == 0 or buf[p_at] != 0x2F:
                # Only the root, first, has a path without "/" (the empty string; "/" to callers).
                # A path with a "/" elsewhere has no parent: the loader's parent check says so.
                path = str(buf[p_at:p_end], "utf-8", "replace")
                if count == 0 and p_end == p_at:
                    path = "/"
                elif "/" not in path:
                    raise CorruptSnapshotError(path_of, f"unexpected root path {path!r}")
            else:
                path = buf[p_at:p_end].decode("utf-8", "replace")
            pos = d_end + _NODE_TAIL
            count += 1
            # Slices of bytes (a mmap or a decompressed chunk) are bytes already.
            yield (path, None if dlen == -1 else buf[d_at:d_end], acl_id, stat)
        self.node_count = count
        if count == 0:
            raise CorruptSnapshotError(path_of, "no root node")

    def _check_seal(self) -> None:
        inp = self._in
        inp.fold()
        expected = inp.crc
        inp.refill(8 + 4)
        (val,) = _LONG.unpack_from(inp.buf, inp.pos)
        inp.pos += 8
        (slen,) = _INT.unpack_from(inp.buf, inp.pos)
        inp.pos += 4
        if slen < 0 or slen > 16:
            raise CorruptSnapshotError(self.path, f"bad seal marker length {slen}")
        inp.refill(slen)
        inp.pos += slen
        if val != expected:
            raise CorruptSnapshotError(self.path, "CRC corruption")

    def _tail(self) -> None:
        inp = self._in
        self._check_seal()
        # The digest section came later; an older snapshot ends here (EOF = no digest).
        try:
            inp.refill(_DIGEST_HEAD.size)
            zxid, version = _DIGEST_HEAD.unpack_from(inp.buf, inp.pos)
            inp.pos += _DIGEST_HEAD.size
            if version < 2:
                # Before digest version 2 the value was a hex string.
                slen = self._read_int()
                text = ""
                if slen > 0:
                    inp.refill(slen)
                    text = bytes(inp.buf[inp.pos:inp.pos + slen]).decode()
                    inp.pos += slen
                value = int(text, 16) if text else 0
            else:
                inp.refill(8)
                (value,) = _LONG.unpack_from(inp.buf, inp.pos)
                inp.pos += 8
        except _Truncated:
            self.complete = True
            return
        self.digest = SnapshotDigest(zxid, version, value)
        self._check_seal()
        self.complete = True

    def close(self) -> None:
        self._in.close()

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read and verify a whole snapshot into memory."""
    r = SnapshotReader(path)
    nodes = list(r.iter_nodes())
    return Snapshot(r.path, r.zxid, r.sessions, r.acls, nodes, r.digest)


def is_valid_snapshot_tail(path: str | os.PathLike[str]) -> bool:
    """SnapStream.isValidSnapshot: a cheap look at the file's ends, not a full check."""
    p = Path(path)
    if parse_snapshot_name(p.name) is None:
        return False
    try:
        with open(p, "rb") as f:
            if p.name.endswith(".gz"):
                return f.read(2) == b"\x1f\x8b"
            if p.name.endswith(".snappy"):
                return f.read(len(SNAPPY_MAGIC)) == SNAPPY_MAGIC
            size = os.fstat(f.fileno()).st_size
            # header + the final "/" marker: at least 10 bytes
            if size < 10:
                return False
            f.seek(size - 5)
            return f.read(5) == _SEAL_TAIL
    except OSError:
        return False

