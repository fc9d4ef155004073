"""Messages that are not a single plain jute record.

- The handshake: ConnectRequest / ConnectResponse with the trailing ``readOnly``
  bool that old clients omit.
- multi / multiRead requests and responses: a sequence of MultiHeader + record,
  ended by MultiHeader(-1, done=True, -1) (``MultiOperationRecord``, ``MultiResponse``).
- The per-opcode table of request and response records.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from zkpy.proto.constants import OpCode
from zkpy.proto.jute import DecodeError, Record
from zkpy.proto.records import (
    AddWatchRequest,
    AuthPacket,
    CheckVersionRequest,
    CheckWatchesRequest,
    ConnectRequest,
    ConnectResponse,
    Create2Response,
    CreateRequest,
    CreateResponse,
    CreateTTLRequest,
    DeleteRequest,
    ErrorResponse,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    GetEphemeralsRequest,
    MultiHeader,
    ReconfigRequest,
    RemoveWatchesRequest,
    SetACLRequest,
    SetDataRequest,
    SetDataResponse,
    SetWatches,
    SetWatches2,
    SyncRequest,
)

_BOOL = struct.Struct(">?")
_MULTI_END = MultiHeader(-1, True, -1)

# ---------------------------------------------------------------- handshake


@dataclass(slots=True)
class Handshake:
    """A decoded ConnectRequest; ``read_only`` is None for an old client that sent no flag."""

    request: ConnectRequest
    read_only: bool | None


def decode_connect_request(buf: bytes | memoryview) -> Handshake:
    req, pos = ConnectRequest.decode_from(buf, 0)
    read_only: bool | None = None
    if pos < len(buf):
        (read_only,) = _BOOL.unpack_from(buf, pos)
    return Handshake(req, read_only)


def encode_connect_request(req: ConnectRequest, read_only: bool | None) -> bytes:
    out = bytearray()
    req.encode_into(out)
    if read_only is not None:
        out += _BOOL.pack(read_only)
    return bytes(out)


def encode_connect_response(resp: ConnectResponse, read_only: bool | None) -> bytes:
    out = bytearray()
    resp.encode_into(out)
    if read_only is not None:
        out += _BOOL.pack(read_only)
    return bytes(out)


def decode_connect_response(buf: bytes | memoryview) -> tuple[ConnectResponse, bool]:
    resp, pos = ConnectResponse.decode_from(buf, 0)
    read_only = False
    if pos < len(buf):
        (read_only,) = _BOOL.unpack_from(buf, pos)
    return resp, read_only


# ---------------------------------------------------------------- request records by opcode

# The record that follows the RequestHeader for each opcode (None: empty body).
REQUEST_RECORDS: dict[int, type[Record] | None] = {
    OpCode.create: CreateRequest,
    OpCode.create2: CreateRequest,
    OpCode.createContainer: CreateRequest,
    OpCode.createTTL: CreateTTLRequest,
    OpCode.delete: DeleteRequest,
    OpCode.deleteContainer: None,  # raw path bytes, server-internal
    OpCode.exists: ExistsRequest,
    OpCode.getData: GetDataRequest,
    OpCode.setData: SetDataRequest,
    OpCode.getACL: GetACLRequest,
    OpCode.setACL: SetACLRequest,
    OpCode.getChildren: GetChildrenRequest,
    OpCode.getChildren2: GetChildren2Request,
    OpCode.sync: SyncRequest,
    OpCode.ping: None,
    OpCode.check: CheckVersionRequest,
    OpCode.reconfig: ReconfigRequest,
    OpCode.checkWatches: CheckWatchesRequest,
    OpCode.removeWatches: RemoveWatchesRequest,
    OpCode.auth: AuthPacket,
    OpCode.setWatches: SetWatches,
    OpCode.setWatches2: SetWatches2,
    OpCode.getEphemerals: GetEphemeralsRequest,
    OpCode.getAllChildrenNumber: GetAllChildrenNumberRequest,
    OpCode.addWatch: AddWatchRequest,
    OpCode.whoAmI: None,
    OpCode.closeSession: None,
}

# ---------------------------------------------------------------- multi

# Op kinds allowed in a multi (MultiOperationRecord.deserialize).
_WRITE_OPS: dict[int, type[Record]] = {
    OpCode.create: CreateRequest,
    OpCode.create2: CreateRequest,
    OpCode.createContainer: CreateRequest,
    OpCode.createTTL: CreateTTLRequest,
    OpCode.delete: DeleteRequest,
    OpCode.setData: SetDataRequest,
    OpCode.check: CheckVersionRequest,
}
_READ_OPS: dict[int, type[Record]] = {
    OpCode.getChildren: GetChildrenRequest,
    OpCode.getData: GetDataRequest,
}


def decode_multi_request(buf: bytes | memoryview, pos: int = 0) -> list[tuple[int, Record]]:
    """The ops of a multi or multiRead request as (opcode, request record).

    Raises DecodeError for an unknown op type or a mix of read and write ops, as
    ZooKeeper's ``MultiOperationRecord`` does ("Invalid type of op", "Mixing
    different kind of ops")."""
    ops: list[tuple[int, Record]] = []
    kinds: set[bool] = set()
    while True:
        hdr, pos = MultiHeader.decode_from(buf, pos)
        if hdr.done:
            return ops
        rec_cls = _WRITE_OPS.get(hdr.type)
        is_read = False
        if rec_cls is None:
            rec_cls = _READ_OPS.get(hdr.type)
            is_read = True
        if rec_cls is None:
            raise DecodeError(f"Invalid type of op {hdr.type}")
        kinds.add(is_read)
        if len(kinds) > 1:
            raise DecodeError("Mixing different kind of ops")
        rec, pos = rec_cls.decode_from(buf, pos)
        ops.append((hdr.type, rec))


def encode_multi_request(ops: list[tuple[int, Record]], out: bytearray) -> None:
    for op_type, rec in ops:
        MultiHeader(op_type, False, -1).encode_into(out)
        rec.encode_into(out)
    _MULTI_END.encode_into(out)


# A multi result: (result type, error code, response record or None).
MultiResult = tuple[int, int, Record | None]

_RESULT_RECORDS: dict[int, type[Record] | None] = {
    OpCode.create: CreateResponse,
    OpCode.create2: Create2Response,
    OpCode.delete: None,
    OpCode.check: None,
    OpCode.setData: SetDataResponse,
    OpCode.getChildren: GetChildrenResponse,
    OpCode.getData: GetDataResponse,
    OpCode.error: ErrorResponse,
}


def encode_multi_response(results: list[MultiResult], out: bytearray) -> None:
    for result_type, err, rec in results:
        MultiHeader(result_type, False, err).encode_into(out)
        if rec is not None:
            rec.encode_into(out)
    _MULTI_END.encode_into(out)


def decode_multi_response(buf: bytes | memoryview, pos: int = 0) -> list[MultiResult]:
    results: list[MultiResult] = []
    while True:
        hdr, pos = MultiHeader.decode_from(buf, pos)
        if hdr.done:
            return results
        if hdr.type not in _RESULT_RECORDS:
            raise DecodeError(f"Invalid type {hdr.type} in MultiResponse")
        rec_cls = _RESULT_RECORDS[hdr.type]
        rec: Record | None = None
        if rec_cls is not None:
            rec, pos = rec_cls.decode_from(buf, pos)
        err = rec.err if isinstance(rec, ErrorResponse) else hdr.err
        results.append((hdr.type, err, rec))
