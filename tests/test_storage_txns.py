"""Transaction entries: encode/decode of every type as Apache's SerializeUtils.deserializeTxn reads them."""

from __future__ import annotations

import pytest

from zkpy.proto.constants import OpCode
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
    Id,
    SetACLTxn,
    SetDataTxn,
    TxnDigest,
    TxnHeader,
)
from zkpy.proto.txns import TxnDecodeError, decode_multi, decode_txn, encode_multi, encode_txn

OPEN = [ACL(31, Id("world", "anyone"))]
MIXED = [ACL(1, Id("world", "anyone")), ACL(31, Id("digest", "u:h=")), ACL(3, Id("ip", "10.0.0.0/8"))]

CASES = [
    (OpCode.createSession, CreateSessionTxn(30000)),
    (OpCode.closeSession, CloseSessionTxn(["/e1", "/a/e2"])),
    (OpCode.create, CreateTxn("/a", b"data", OPEN, False, 3)),
    (OpCode.create2, CreateTxn("/eph", None, MIXED, True, 0)),
    (OpCode.createTTL, CreateTTLTxn("/ttl", b"t", OPEN, 2, 60_000)),
    (OpCode.createContainer, CreateContainerTxn("/c", b"", OPEN, 1)),
    (OpCode.delete, DeleteTxn("/a")),
    (OpCode.deleteContainer, DeleteTxn("/c")),
    (OpCode.setData, SetDataTxn("/a", b"\x00\xff" * 10, 7)),
    (OpCode.reconfig, SetDataTxn("/zookeeper/config", b"server.1=...", -1)),
    (OpCode.setACL, SetACLTxn("/a", MIXED, 2)),
    (OpCode.error, ErrorTxn(-101)),
    (OpCode.multi, encode_multi([(OpCode.create, CreateTxn("/m", b"m", OPEN, False, 1)),
                                 (OpCode.check, CheckVersionTxn("/m", 0)),
                                 (OpCode.setData, SetDataTxn("/m", b"x", 1)),
                                 (OpCode.delete, DeleteTxn("/m"))])),
]


def _hdr(op: int, zxid: int = 0x100000005) -> TxnHeader:
    return TxnHeader(0x1234, 7, zxid, 1_700_000_000_000, op)


@pytest.mark.parametrize(("op", "txn"), CASES, ids=[OpCode(op).name for op, _ in CASES])
def test_every_txn_type_round_trips(op: int, txn) -> None:
    e = decode_txn(encode_txn(_hdr(op), txn))
    assert (e.hdr, e.txn, e.digest) == (_hdr(op), txn, None)


@pytest.mark.parametrize(("op", "txn"), CASES, ids=[OpCode(op).name for op, _ in CASES])
def test_every_txn_type_round_trips_with_a_digest(op: int, txn) -> None:
    e = decode_txn(encode_txn(_hdr(op), txn, TxnDigest(2, -42)))
    assert (e.txn, e.digest) == (txn, TxnDigest(2, -42))


def test_encoding_is_header_then_txn_then_digest() -> None:
    hdr, txn, dig = _hdr(OpCode.delete), DeleteTxn("/x"), TxnDigest(2, 9)
    assert encode_txn(hdr, txn, dig) == hdr.to_bytes() + txn.to_bytes() + dig.to_bytes()


def test_create_logged_by_old_servers_decodes_with_parent_cversion_minus_one() -> None:
    v0 = CreateTxnV0("/old", b"d", OPEN, True)
    e = decode_txn(_hdr(OpCode.create).to_bytes() + v0.to_bytes())
    assert e.txn == CreateTxn("/old", b"d", OPEN, True, -1)


def test_close_session_without_body_decodes_to_no_txn() -> None:
    e = decode_txn(encode_txn(_hdr(OpCode.closeSession), None))
    assert e.txn is None and e.hdr.type == OpCode.closeSession


def test_partial_digest_is_treated_as_absent() -> None:
    raw = encode_txn(_hdr(OpCode.delete), DeleteTxn("/x")) + b"\x00\x00\x00\x02\x00"
    assert decode_txn(raw).digest is None


def test_unsupported_top_level_type_is_an_error() -> None:
    with pytest.raises(TxnDecodeError, match="Unsupported Txn with type=13"):
        decode_txn(encode_txn(_hdr(OpCode.check), CheckVersionTxn("/a", 1)))


def test_truncated_set_data_is_an_error() -> None:
    raw = encode_txn(_hdr(OpCode.setData), SetDataTxn("/a", b"abc", 1))
    with pytest.raises(TxnDecodeError):
        decode_txn(raw[:-2])


def test_multi_sub_txns_decode_by_type() -> None:
    ops = [(OpCode.create, CreateTxn("/m", b"m", OPEN, False, 1)),
           (OpCode.createTTL, CreateTTLTxn("/t", b"", OPEN, 1, 5)),
           (OpCode.createContainer, CreateContainerTxn("/c", b"", OPEN, 1)),
           (OpCode.check, CheckVersionTxn("/m", 0)),
           (OpCode.setData, SetDataTxn("/m", b"x", 1)),
           (OpCode.delete, DeleteTxn("/m")),
           (OpCode.error, ErrorTxn(-110))]
    assert decode_multi(encode_multi(ops)) == ops
