"""One transaction log entry: TxnHeader, the txn record its type selects, optional TxnDigest.

The layout is Apache ZooKeeper's ``Util.marshallTxnEntry``: the header, then the
txn record (absent for some types), then an optional ``TxnDigest``.  Decoding
mirrors ``SerializeUtils.deserializeTxn`` record for record, including its
tolerances: a create written by pre-3.3 servers (``CreateTxnV0``, no
parentCVersion), a closeSession written without a body, and entries that stop
before the digest.  The same bytes travel in quorum PROPOSAL packets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from zkpy.proto.constants import OpCode
from zkpy.proto.jute import MAX_BUFFER_DEFAULT, DecodeError, Record
from zkpy.proto.records import (
    ACL,
    CheckVersionTxn,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateSessionTxn,
    CreateTTLTxn,
    CreateTxn,
    CreateTxnV0,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    TxnDigest,
    TxnHeader,
)

__all__ = [
    "TXN_HEADER",
    "LogEntry",
    "TxnDecodeError",
    "decode_multi",
    "decode_txn",
    "encode_multi",
    "encode_txn",
    "txn_class_for",
]

_DIGEST_SIZE = 12  # TxnDigest: int version + long treeDigest
# What BinaryInputArchive accepts per string or buffer (jute.maxbuffer + extrasize), as jute.py.
_LENGTH_LIMIT = 2 * MAX_BUFFER_DEFAULT
# An ACL vector longer than this is decoded but not remembered (bounds the memo below).
_ACL_MEMO_MAX_BYTES = 4096
_INT = struct.Struct(">i")
TXN_HEADER = struct.Struct(">qiqqi")  # TxnHeader: clientId, cxid, zxid, time, type
_BOOL_INT = struct.Struct(">?i")
# TxnHeader (clientId, cxid, zxid, time, type) and the int after it.
_HEAD = struct.Struct(">qiqqii")
_PATH_AT = _HEAD.size  # where the path's bytes start (36)
_DIGEST = struct.Struct(">iq")
_int_from = _INT.unpack_from
_bool_int_from = _BOOL_INT.unpack_from
_head_from = _HEAD.unpack_from
_digest_from = _DIGEST.unpack_from
_new = object.__new__


class TxnDecodeError(ValueError):
    """The bytes are not a transaction entry Apache ZooKeeper 3.8 could read."""


@dataclass(slots=True)
class LogEntry:
    hdr: TxnHeader
    txn: Record | None
    digest: TxnDigest | None = None

    @property
    def zxid(self) -> int:
        return self.hdr.zxid


# Top-level entries (SerializeUtils.deserializeTxn).  closeSession is special-cased.
_TOP: dict[int, type[Record]] = {
    OpCode.createSession: CreateSessionTxn,
    OpCode.closeSession: CloseSessionTxn,
    OpCode.create: CreateTxn,
    OpCode.create2: CreateTxn,
    OpCode.createTTL: CreateTTLTxn,
    OpCode.createContainer: CreateContainerTxn,
    OpCode.delete: DeleteTxn,
    OpCode.deleteContainer: DeleteTxn,
    OpCode.reconfig: SetDataTxn,
    OpCode.setData: SetDataTxn,
    OpCode.setACL: SetACLTxn,
    OpCode.error: ErrorTxn,
    OpCode.multi: MultiTxn,
}

# Sub-transactions of a multi (DataTree.processTxn, case multi).
_SUB: dict[int, type[Record]] = {
    OpCode.create: CreateTxn,
    OpCode.create2: CreateTxn,
    OpCode.createTTL: CreateTTLTxn,
    OpCode.createContainer: CreateContainerTxn,
    OpCode.delete: DeleteTxn,
    OpCode.deleteContainer: DeleteTxn,
    OpCode.setData: SetDataTxn,
    OpCode.check: CheckVersionTxn,
    OpCode.error: ErrorTxn,
}


def txn_class_for(op_type: int) -> type[Record]:
    """The record class that follows a TxnHeader of this type."""
    try:
        return _TOP[op_type]
    except KeyError:
        raise TxnDecodeError(f"Unsupported Txn with type={op_type}") from None


def encode_txn(hdr: TxnHeader, txn: Record | None, digest: TxnDigest | None = None) -> bytes:
    """Serialize one entry exactly as ``Util.marshallTxnEntry``."""
    out = bytearray()
    encode_txn_into(out, hdr, txn, digest)
    return bytes(out)


def encode_txn_into(out: bytearray, hdr: TxnHeader, txn: Record | None, digest: TxnDigest | None) -> None:
    hdr.encode_into(out)
    if txn is not None:
        txn.encode_into(out)
    if digest is not None:
        digest.encode_into(out)


def decode_txn(buf: bytes | memoryview) -> LogEntry:
    """Parse one entry (all of ``buf``) as ``SerializeUtils.deserializeTxn`` does."""
    if type(buf) is not bytes:
        buf = bytes(buf)  # one copy; every slice below is then bytes already
    if len(buf) >= _PATH_AT:
        # The header and the length of the path that every fast-path record starts with.
        client_id, cxid, zxid, time, op, n = _head_from(buf, 0)
        fast = _FAST.get(op)
        if fast is not None:
            try:
                got = fast(buf, n)
            except DecodeError:
                got = None
            if got is not None:
                txn, pos = got
                hdr = _new(TxnHeader)
                hdr.clientId, hdr.cxid, hdr.zxid, hdr.time, hdr.type = client_id, cxid, zxid, time, op
                entry = _new(LogEntry)
                entry.hdr, entry.txn = hdr, txn
                if len(buf) - pos >= _DIGEST_SIZE:  # as _entry
                    digest = entry.digest = _new(TxnDigest)
                    digest.version, digest.treeDigest = _digest_from(buf, pos)
                else:
                    entry.digest = None
                return entry
    try:
        hdr, pos = TxnHeader.decode_from(buf, 0)
    except DecodeError as e:
        raise TxnDecodeError(f"truncated TxnHeader: {e}") from None
    txn, pos = _decode_generic(hdr.type, buf, pos)
    return _entry(hdr, txn, buf, pos)


def _entry(hdr: TxnHeader, txn: Record | None, buf: bytes, pos: int) -> LogEntry:
    entry = _new(LogEntry)
    entry.hdr, entry.txn, entry.digest = hdr, txn, None
    # Apache reads the digest if it is there; an entry ending early simply has none
    # (an EOFException in Java), and trailing bytes beyond it are ignored.
    if len(buf) - pos >= _DIGEST_SIZE:
        digest = entry.digest = _new(TxnDigest)
        digest.version, digest.treeDigest = _digest_from(buf, pos)
    return entry


def _decode_generic(op: int, buf: bytes | memoryview, pos: int) -> tuple[Record | None, int]:
    """The record after the header through the schema's codec, with Apache's tolerances."""
    cls = _TOP.get(op)
    if cls is None:
        raise TxnDecodeError(f"Unsupported Txn with type={op}")
    txn: Record | None
    try:
        txn, pos = cls.decode_from(buf, pos)
    except DecodeError as e:
        if op == OpCode.create:
            # A create logged before parentCVersion existed; -1 asks the tree to fix it up.
            try:
                v0, pos = CreateTxnV0.decode_from(buf, pos)
            except DecodeError:
                raise TxnDecodeError(f"undecodable create txn: {e}") from None
            txn = CreateTxn(v0.path, v0.data, v0.acl, v0.ephemeral, -1)
        elif op == OpCode.closeSession:
            txn = None  # logged before CloseSessionTxn was added
        else:
            raise TxnDecodeError(f"undecodable txn of type {op}: {e}") from None
    return txn, pos


# ---------------------------------------------------------------------- fast paths
#
# The types a log is mostly made of, decoded without the generic codec's per-field calls.  Each
# returns (record, pos), or None for anything unusual (a null path, a negative vector count, a
# truncated record...), which then goes through _decode_generic: same records, same errors.


class _AclMemo:
    """The last ACL vector decoded, by its encoded bytes: a log repeats the same few ACLs.

    Jute encodings are self-delimiting, so bytes that start with a remembered encoding hold
    that vector.  Each record still gets a list of its own; the ACL records in it are shared
    (nothing mutates a decoded ACL).  One (bytes, tuple) pair, swapped whole, so concurrent
    decoders never see a half-updated entry."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[bytes, tuple[ACL, ...]] = (b"\xff\xff\xff\xff", ())  # null: never taken here

    def read(self, buf: bytes, pos: int) -> tuple[list[ACL], int] | None:
        """Decode the vector at ``pos`` and remember it; None for null or an odd count."""
        if pos + 4 > len(buf):
            return None
        (n,) = _int_from(buf, pos)
        if n < 0 or n > len(buf) - pos - 4:
            return None  # null (-1) and the codec's other cases: the generic path
        start = pos
        pos += 4
        out: list[ACL] = []
        decode = ACL.decode_from
        for _ in range(n):
            acl, pos = decode(buf, pos)
            out.append(acl)
        if pos - start <= _ACL_MEMO_MAX_BYTES:
            self.last = (buf[start:pos], tuple(out))
        return out, pos


_ACLS = _AclMemo()


# The fast paths below repeat the same few steps inline: a call per field is what they save.


def _fast_create(buf: bytes, n: int) -> tuple[CreateTxn, int] | None:
    # ustring path (its length n read with the header), buffer data, vector<ACL>, bool, int.
    if n < 0 or n > _LENGTH_LIMIT:
        return None  # a null path (-1): the generic path
    pos = _PATH_AT + n
    end = len(buf)
    if pos + 4 > end:
        return None
    # Java's new String(bytes, UTF_8) replaces malformed input, as jute._read_ustring.
    path = buf[_PATH_AT:pos].decode("utf-8", "replace")
    (dn,) = _int_from(buf, pos)
    pos += 4
    if dn == -1:
        data = None
    elif dn < 0 or dn > _LENGTH_LIMIT or pos + dn > end:
        return None
    else:
        data = buf[pos:pos + dn]
        pos += dn
    enc, known = _ACLS.last
    if buf.startswith(enc, pos):
        acls = list(known)
        pos += len(enc)
    else:
        ga = _ACLS.read(buf, pos)
        if ga is None:
            return None
        acls, pos = ga
    if pos + 5 > end:
        return None  # a pre-3.3 CreateTxnV0 (no parentCVersion) ends here: the generic path
    txn = _new(CreateTxn)
    txn.path, txn.data, txn.acl = path, data, acls
    txn.ephemeral, txn.parentCVersion = _bool_int_from(buf, pos)
    return txn, pos + 5


def _fast_set_data(buf: bytes, n: int) -> tuple[SetDataTxn, int] | None:
    # ustring path, buffer data, int version.
    if n < 0 or n > _LENGTH_LIMIT:
        return None
    pos = _PATH_AT + n
    end = len(buf)
    if pos + 4 > end:
        return None
    path = buf[_PATH_AT:pos].decode("utf-8", "replace")
    (dn,) = _int_from(buf, pos)
    pos += 4
    if dn == -1:
        data = None
    elif dn < 0 or dn > _LENGTH_LIMIT or pos + dn > end:
        return None
    else:
        data = buf[pos:pos + dn]
        pos += dn
    if pos + 4 > end:
        return None
    txn = _new(SetDataTxn)
    txn.path, txn.data = path, data
    (txn.version,) = _int_from(buf, pos)
    return txn, pos + 4


def _fast_delete(buf: bytes, n: int) -> tuple[DeleteTxn, int] | None:
    # ustring path.
    if n < 0 or n > _LENGTH_LIMIT or _PATH_AT + n > len(buf):
        return None
    txn = _new(DeleteTxn)
    txn.path = buf[_PATH_AT:_PATH_AT + n].decode("utf-8", "replace")
    return txn, _PATH_AT + n


_FAST = {
    int(OpCode.create): _fast_create,
    int(OpCode.create2): _fast_create,
    int(OpCode.setData): _fast_set_data,
    int(OpCode.delete): _fast_delete,
    int(OpCode.deleteContainer): _fast_delete,
}


def decode_multi(multi: MultiTxn) -> list[tuple[int, Record]]:
    """The (type, record) pairs inside a MultiTxn, typed as DataTree.processTxn reads them."""
    out: list[tuple[int, Record]] = []
    for sub in multi.txns or ():
        cls = _SUB.get(sub.type)
        if cls is None:
            raise TxnDecodeError(f"Invalid type of op: {sub.type}")
        try:
            rec = cls.from_bytes(sub.data or b"")
        except DecodeError as e:
            raise TxnDecodeError(f"undecodable multi sub-txn of type {sub.type}: {e}") from None
        out.append((sub.type, rec))
    return out


def encode_multi(ops: list[tuple[int, Record]]) -> MultiTxn:
    """Wrap (type, record) pairs into a MultiTxn as PrepRequestProcessor does."""
    return MultiTxn([Txn(op, rec.to_bytes()) for op, rec in ops])
