"""A znode, kept compact: one slotted object, its persisted Stat packed in 60 bytes.

A million znodes must fit in about the memory Apache ZooKeeper's heap needs
(~420 bytes per 100-byte znode), so a node holds four references: data, the
ACL cache id, the packed StatPersisted and the children dict (None for a
leaf).  Python ints for five zxids and times would cost 32 bytes each.
"""

from __future__ import annotations

import struct

from zkpy.proto.constants import CONTAINER_EPHEMERAL_OWNER, EXTENDED_MASK
from zkpy.proto.records import Stat, StatPersisted

# StatPersisted: czxid mzxid ctime mtime version cversion aversion ephemeralOwner pzxid
PERSISTED = struct.Struct(">qqqqiiiqq")
# Its version, cversion, aversion and ephemeralOwner alone (unpack_from at PERSISTED_VERSIONS_AT):
# what validating a write needs, without allocating its zxids and times as ints.
PERSISTED_VERSIONS = struct.Struct(">iiiq")
PERSISTED_VERSIONS_AT = 32
# Its tail from the cversion on (cversion, aversion, ephemeralOwner, pzxid), and its pzxid: what
# a child's create or delete changes in a parent, rewritten alone.
PERSISTED_FROM_CVERSION = struct.Struct(">iiqq")
PERSISTED_CVERSION_AT = PERSISTED.size - PERSISTED_FROM_CVERSION.size
PERSISTED_PZXID = struct.Struct(">q")
PERSISTED_PZXID_AT = PERSISTED.size - PERSISTED_PZXID.size
# Stat as clients see it: ... ephemeralOwner dataLength numChildren pzxid
WIRE_STAT = struct.Struct(">qqqqiiiqiiq")
_EMPTY_STAT = PERSISTED.pack(0, 0, 0, 0, 0, 0, 0, 0, 0)

EPHEMERAL_VOID, EPHEMERAL_NORMAL, EPHEMERAL_CONTAINER, EPHEMERAL_TTL = 0, 1, 2, 3
_TTL_VALUE_MASK = 0x000000FFFFFFFFFF


def wrap_int32(n: int) -> int:
    """Java int arithmetic: wrap to 32 bits, signed."""
    return ((n + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def ephemeral_type(owner: int, extended_types: bool) -> int:
    """EphemeralType.get: what an ephemeralOwner value means."""
    if extended_types and owner & EXTENDED_MASK == EXTENDED_MASK:
        if (owner >> 40) & 0xFFFF == 0:
            return EPHEMERAL_TTL
        raise ValueError(f"Invalid ephemeralOwner. [{owner & 0xFFFFFFFFFFFFFFFF:x}]")
    if owner == CONTAINER_EPHEMERAL_OWNER:
        return EPHEMERAL_CONTAINER
    return EPHEMERAL_VOID if owner == 0 else EPHEMERAL_NORMAL


def ttl_owner(ttl_ms: int) -> int:
    """The ephemeralOwner that stores a TTL (0xff << 56 | ttl), as a signed long."""
    return EXTENDED_MASK | ttl_ms


def ttl_of(owner: int) -> int:
    return owner & _TTL_VALUE_MASK


def client_owner(owner: int) -> int:
    """Containers and TTL nodes show ephemeralOwner 0 to clients (DataNode.getClientEphemeralOwner)."""
    if owner < 0 and (owner == CONTAINER_EPHEMERAL_OWNER or owner & EXTENDED_MASK == EXTENDED_MASK):
        return 0
    return owner


def data_length(data: bytes | None) -> int:
    return len(data) if data is not None else 0


class Node:
    """``data`` is None when a client created or set null data: ZooKeeper returns it as null."""

    __slots__ = ("acl", "children", "data", "stat")

    def __init__(self, data: bytes | None, acl: int, stat: bytes = _EMPTY_STAT) -> None:
        self.data = data
        self.acl = acl
        self.stat = stat
        self.children: dict[str, Node] | None = None

    # The unpacked persisted stat, in StatPersisted order.
    def persisted(self) -> tuple[int, int, int, int, int, int, int, int, int]:
        return PERSISTED.unpack(self.stat)

    def stat_persisted(self) -> StatPersisted:
        return StatPersisted(*PERSISTED.unpack(self.stat))

    @property
    def ephemeral_owner(self) -> int:
        return PERSISTED.unpack(self.stat)[7]

    @property
    def num_children(self) -> int:
        ch = self.children
        return len(ch) if ch else 0

    def wire_stat(self) -> bytes:
        """The 68-byte Stat a client sees (DataNode.copyStat)."""
        czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid = PERSISTED.unpack(self.stat)
        ch = self.children
        n = len(ch) if ch else 0
        if owner < 0:
            owner = client_owner(owner)
        # The stored cversion counts creates; clients see creates + deletes (v3 semantics).
        cv = cversion * 2 - n
        if not -0x80000000 <= cv <= 0x7FFFFFFF:
            cv = wrap_int32(cv)
        data = self.data
        return WIRE_STAT.pack(czxid, mzxid, ctime, mtime, version, cv, aversion, owner,
                              len(data) if data is not None else 0, n, pzxid)

    def client_stat(self) -> Stat:
        return Stat.from_bytes(self.wire_stat())
