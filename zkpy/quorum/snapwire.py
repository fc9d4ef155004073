"""The database as a SNAP sync streams it (``ZKDatabase.serializeSnapshot``).

After a SNAP packet the leader writes, on the same stream and without any framing::

    int count, then count x (long session id, int timeout ms)
    int count, then count x (long acl id, vector<ACL>)       -- the ACL cache
    (ustring path, buffer data, long acl, StatPersisted)*     -- the root's path is ""
    ustring "/"                                               -- end of nodes
    ustring "BenWasHere"                                      -- Leader's signature

It is a snapshot file's body without the file header, the checksum seals and the
digest.  The reader has to parse it to find its end.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable

from zkpy.proto.records import ACL, Id, StatPersisted
from zkpy.quorum.wire import SNAP_SIGNATURE, WireError
from zkpy.server.database import Database

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_SESSION = struct.Struct(">qi")
_ACL_HEAD = struct.Struct(">qi")
_NODE_TAIL = struct.Struct(">qqqqqiiiqq")  # acl id + StatPersisted
_NULL = b"\xff\xff\xff\xff"
# Per string / buffer, as BinaryInputArchive bounds them (jute.maxbuffer + extrasize).
MAX_FIELD_BYTES = 2 * 0xFFFFF
# A guard against a peer streaming forever.
MAX_SNAPSHOT_BYTES_DEFAULT = 1 << 34


def _ustring(s: str) -> bytes:
    b = s.encode()
    return _INT.pack(len(b)) + b


def encode_database(db: Database) -> bytes:
    """The stream body for ``db`` (without the signature)."""
    out = bytearray()
    out += _INT.pack(len(db.sessions))
    for sid, timeout in db.sessions.items():
        out += _SESSION.pack(sid, timeout)
    tree = db.tree
    nodes = list(tree.iter_nodes())
    acl_map: dict[int, list[ACL]] = {}
    for _, node in nodes:
        aid = node.acl
        if aid != -1 and aid not in acl_map:
            acl_map[aid] = list(tree.acls.lookup(aid))
    out += _INT.pack(len(acl_map))
    for aid in sorted(acl_map):
        acls = acl_map[aid]
        out += _ACL_HEAD.pack(aid, len(acls))
        for acl in acls:
            acl.encode_into(out)
    for path, node in nodes:
        pb = b"" if path == "/" else path.encode()
        out += _INT.pack(len(pb))
        out += pb
        if node.data is None:
            out += _NULL
        else:
            out += _INT.pack(len(node.data))
            out += node.data
        out += _LONG.pack(node.acl)
        out += node.stat
    out += _ustring("/")
    return bytes(out)


def signature() -> bytes:
    return _ustring(SNAP_SIGNATURE)


def decode_database(body: bytes, zxid: int, extended_types: bool = False) -> Database:
    """A Database from a stream body (as :func:`encode_database` makes and
    :func:`read_snapshot_stream` returns), standing at ``zxid``."""
    buf = memoryview(body)
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        if pos + n > len(buf):
            raise WireError("snapshot stream ends early")
        v = buf[pos:pos + n]
        pos += n
        return v

    def read_int() -> int:
        return _INT.unpack(take(4))[0]

    def read_str() -> str:
        n = read_int()
        if n < 0 or n > MAX_FIELD_BYTES:
            raise WireError(f"unreasonable string length {n} in a snapshot")
        return str(take(n), "utf-8", "replace")

    db = Database(extended_types)
    for _ in range(_count(read_int())):
        sid, timeout = _SESSION.unpack(take(_SESSION.size))
        db.sessions[sid] = timeout
    acls: dict[int, list[ACL]] = {}
    for _ in range(_count(read_int())):
        aid, n = _ACL_HEAD.unpack(take(_ACL_HEAD.size))
        items = []
        for _ in range(_count(n)):
            perms = read_int()
            scheme = read_str()
            ident = read_str()
            items.append(ACL(perms, Id(scheme, ident)))
        acls[aid] = items
    tree = db.tree
    tree.acls.load(acls)
    first = True
    while True:
        path = read_str()
        if path == "/":
            break
        n = read_int()
        if n == -1:
            data = None
        elif n < 0 or n > MAX_FIELD_BYTES:
            raise WireError(f"unreasonable data length {n} in a snapshot")
        else:
            data = bytes(take(n))
        acl_id, *stat = _NODE_TAIL.unpack(take(_NODE_TAIL.size))
        if first and path != "":
            raise WireError(f"a snapshot starts with the root, not {path!r}")
        first = False
        try:
            tree.load_node(path or "/", data, acl_id, StatPersisted(*stat))
        except ValueError as e:
            raise WireError(str(e)) from None
    tree.acls.purge_unused()
    tree.setup_quotas()
    tree.last_processed_zxid = zxid
    return db


def _count(n: int) -> int:
    if n < 0 or n > 1 << 31:
        raise WireError(f"unreasonable count {n} in a snapshot")
    return n


async def read_snapshot_stream(read: Callable[[int], Awaitable[bytes]],
                               max_bytes: int = MAX_SNAPSHOT_BYTES_DEFAULT) -> bytes:
    """Read one snapshot body and its signature with ``read(n)`` (e.g. StreamReader.readexactly);
    returns the body.  The stream has no length prefix: it is parsed to find its end."""
    out = bytearray()

    async def take(n: int) -> bytes:
        if len(out) + n > max_bytes:
            raise WireError(f"snapshot larger than {max_bytes} bytes")
        b = await read(n)
        out.extend(b)
        return b

    async def read_int() -> int:
        return _INT.unpack(await take(4))[0]

    async def read_len(what: str) -> int:
        n = await read_int()
        if n != -1 and (n < 0 or n > MAX_FIELD_BYTES):
            raise WireError(f"unreasonable {what} length {n} in a snapshot")
        return n

    for _ in range(_count(await read_int())):
        await take(_SESSION.size)
    for _ in range(_count(await read_int())):
        _aid, n = _ACL_HEAD.unpack(await take(_ACL_HEAD.size))
        for _ in range(_count(n)):
            await take(4)
            await take(max(0, await read_len("scheme")))
            await take(max(0, await read_len("id")))
    while True:
        n = await read_len("path")
        path = await take(max(0, n))
        if path == b"/":
            break
        n = await read_len("data")
        if n > 0:
            await take(n)
        await take(_NODE_TAIL.size)
    body = bytes(out)
    sig_len = _INT.unpack(await read(4))[0]
    if sig_len != len(SNAP_SIGNATURE):
        raise WireError("Missing signature")
    sig = await read(sig_len)
    if sig.decode(errors="replace") != SNAP_SIGNATURE:
        raise WireError(f"Missing signature. Got {sig!r}")
    return body


def read_snapshot_bytes(data: bytes) -> tuple[bytes, int]:
    """Synchronous twin of :func:`read_snapshot_stream` over a buffer: (body, bytes consumed)."""
    pos = 0

    async def read(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise asyncio.IncompleteReadError(data[pos:], n)
        b = data[pos:pos + n]
        pos += n
        return b

    coro = read_snapshot_stream(read)
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value, pos
    raise RuntimeError("read_snapshot_bytes: the reader suspended")  # pragma: no cover
