"""One transaction log entry: TxnHeader, the txn record its type selects, optional TxnDigest.

The layout is Apache ZooKeeper's ``Util.marshallTxnEntry``: the header, then the
txn record (absent for some types), then an optional ``TxnDigest``.  Decoding
mirrors ``SerializeUtils.deserializeTxn`` record for record, including its
tolerances: a create written by pre-3.3 servers (``CreateTxnV0``, no
parentCVersion), a closeSession written without a body, and entries that stop
before the digest.  The same bytes travel in quorum PROPOSAL packets.
"""

from __future__ import annotations

from dataclasses import dataclass

from zkpy.proto.constants import OpCode
from zkpy.proto.jute import DecodeError, Record
from zkpy.proto.records import (
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
    "LogEntry",
    "TxnDecodeError",
    "decode_multi",
    "decode_txn",
    "encode_multi",
    "encode_txn",
    "txn_class_for",
]

_DIGEST_SIZE = 12  # TxnDigest: int version + long treeDigest


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
    try:
        hdr, pos = TxnHeader.decode_from(buf, 0)
    except DecodeError as e:
        raise TxnDecodeError(f"truncated TxnHeader: {e}") from None
    op = hdr.type
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
    digest: TxnDigest | None = None
    # Apache reads the digest if it is there; an entry ending early simply has none
    # (an EOFException in Java), and trailing bytes beyond it are ignored.
    if len(buf) - pos >= _DIGEST_SIZE:
        digest, pos = TxnDigest.decode_from(buf, pos)
    return LogEntry(hdr, txn, digest)


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
