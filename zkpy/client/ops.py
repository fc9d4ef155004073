"""Operations of a multi / multiRead, their results, and the reply decoders ("finishers").

A finisher turns one reply into the operation's result, or raises its error; it runs
inside the connection's read path, so it also registers the watch a successful read
set (before any later notification is processed, as ZooKeeper requires).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zkpy.client.acl import OPEN_ACL_UNSAFE
from zkpy.client.paths import Chroot, validate_path
from zkpy.client.watches import WatchKind
from zkpy.proto.constants import TTL_MAX, CreateMode, OpCode
from zkpy.proto.errors import (
    InvalidACLError,
    NoNodeError,
    ZooKeeperError,
    error_for_code,
)
from zkpy.proto.jute import Record
from zkpy.proto.messages import decode_multi_response
from zkpy.proto.records import (
    ACL,
    CheckVersionRequest,
    Create2Response,
    CreateRequest,
    CreateResponse,
    CreateTTLRequest,
    DeleteRequest,
    GetChildren2Response,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    SetDataRequest,
    SetDataResponse,
    Stat,
)

__all__ = [
    "Check",
    "CheckResult",
    "Create",
    "CreateResult",
    "Delete",
    "DeleteResult",
    "ErrorResult",
    "GetChildren",
    "GetChildrenResult",
    "GetData",
    "GetDataResult",
    "Op",
    "OpResult",
    "SetData",
    "SetDataResult",
    "check_acl",
    "check_ttl",
    "create_opcode",
]

_NO_NODE = NoNodeError.code

# ------------------------------------------------------------------ argument checks


def check_ttl(mode: CreateMode, ttl: int | None) -> None:
    """EphemeralType.validateTTL: a TTL mode needs 0 < ttl <= max; other modes take none."""
    if mode.is_ttl:
        if ttl is None or ttl <= 0 or ttl > TTL_MAX:
            raise ValueError(f"ttl must be positive and cannot be larger than: {TTL_MAX}")
    elif ttl is not None and ttl >= 0:
        raise ValueError(f"ttl not valid for mode: {mode.name}")


def check_acl(acl: Sequence[ACL]) -> None:
    if not acl or any(a is None for a in acl):
        raise InvalidACLError()


def create_opcode(mode: CreateMode, with_stat: bool) -> int:
    if mode.is_ttl:
        return OpCode.createTTL
    if mode.is_container:
        return OpCode.createContainer
    return OpCode.create2 if with_stat else OpCode.create


def create_record(server_path: str, data: bytes | None, acl: Sequence[ACL], mode: CreateMode,
                  ttl: int | None) -> Record:
    if mode.is_ttl:
        return CreateTTLRequest(server_path, data, list(acl), int(mode), int(ttl or 0))
    return CreateRequest(server_path, data, list(acl), int(mode))


# ------------------------------------------------------------------ multi operations


class Op:
    """An operation of a transaction (write ops) or of a multi_read (read ops)."""

    __slots__ = ()
    path: str
    is_read = False

    def validate(self) -> None:
        validate_path(self.path)

    def to_request(self, chroot: Chroot) -> tuple[int, Record]:
        raise NotImplementedError


@dataclass(slots=True)
class Create(Op):
    path: str
    data: bytes | None = b""
    acl: Sequence[ACL] | None = None
    mode: CreateMode = CreateMode.PERSISTENT
    ttl: int | None = None

    def validate(self) -> None:
        validate_path(self.path, self.mode.is_sequential)
        check_ttl(self.mode, self.ttl)
        if self.acl is not None:
            check_acl(self.acl)

    def to_request(self, chroot: Chroot) -> tuple[int, Record]:
        acl = OPEN_ACL_UNSAFE if self.acl is None else self.acl
        return (create_opcode(self.mode, False),
                create_record(chroot.to_server(self.path), self.data, acl, self.mode, self.ttl))


@dataclass(slots=True)
class Delete(Op):
    path: str
    version: int = -1

    def to_request(self, chroot: Chroot) -> tuple[int, Record]:
        return OpCode.delete, DeleteRequest(chroot.to_server(self.path), self.version)


@dataclass(slots=True)
class SetData(Op):
    path: str
    data: bytes | None
    version: int = -1

    def to_request(self, chroot: Chroot) -> tuple[int, Record]:
        return OpCode.setData, SetDataRequest(chroot.to_server(self.path), self.data, self.version)


@dataclass(slots=True)
class Check(Op):
    path: str
    version: int

    def to_request(self, chroot: Chroot) -> tuple[int, Record]:
        return OpCode.check, CheckVersionRequest(chroot.to_server(self.path), self.version)


@dataclass(slots=True)
class GetData(Op):
    path: str
    is_read = True

    def to_request(self, chroot: Chroot) -> tuple[int, Record]:
        return OpCode.getData, GetDataRequest(chroot.to_server(self.path), False)


@dataclass(slots=True)
class GetChildren(Op):
    path: str
    is_read = True

    def to_request(self, chroot: Chroot) -> tuple[int, Record]:
        return OpCode.getChildren, GetChildrenRequest(chroot.to_server(self.path), False)


# ------------------------------------------------------------------ multi results


@dataclass(frozen=True, slots=True)
class CreateResult:
    path: str
    stat: Stat | None = None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    pass


@dataclass(frozen=True, slots=True)
class SetDataResult:
    stat: Stat


@dataclass(frozen=True, slots=True)
class CheckResult:
    pass


@dataclass(frozen=True, slots=True)
class GetDataResult:
    data: bytes | None
    stat: Stat


@dataclass(frozen=True, slots=True)
class GetChildrenResult:
    children: list[str]


@dataclass(frozen=True, slots=True)
class ErrorResult:
    """An op that failed, or (err 0 / RuntimeInconsistency) one rolled back with the rest."""

    err: int

    @property
    def exception(self) -> ZooKeeperError:
        return error_for_code(self.err)


OpResult = (CreateResult | DeleteResult | SetDataResult | CheckResult | GetDataResult | GetChildrenResult
            | ErrorResult)


def _to_result(rtype: int, err: int, rec: Record | None, chroot: Chroot) -> OpResult:
    if rtype == OpCode.error:
        return ErrorResult(err)
    if isinstance(rec, Create2Response):
        return CreateResult(chroot.to_client(rec.path), rec.stat)
    if isinstance(rec, CreateResponse):
        return CreateResult(chroot.to_client(rec.path))
    if isinstance(rec, SetDataResponse):
        return SetDataResult(rec.stat)
    if isinstance(rec, GetDataResponse):
        return GetDataResult(rec.data, rec.stat)
    if isinstance(rec, GetChildrenResponse):
        return GetChildrenResult(rec.children or [])
    if rtype == OpCode.delete:
        return DeleteResult()
    return CheckResult()


def finish_multi(err: int, body: bytes, pos: int, ctx: Any) -> list[OpResult]:
    """A transaction's results; raises the first failing op's error with ``.results`` set."""
    chroot, is_read = ctx
    if err:
        raise error_for_code(err)
    results = [_to_result(t, e, r, chroot) for t, e, r in decode_multi_response(body, pos)]
    if not is_read:
        for r in results:
            if isinstance(r, ErrorResult) and r.err != 0:
                exc = error_for_code(r.err)
                exc.results = results  # type: ignore[attr-defined]
                raise exc
    return results


# ------------------------------------------------------------------ single-op finishers
# ctx is the client path, or (path, registry, watcher[, extra]) for ops that may set a watch.


def finish_void(err: int, body: bytes, pos: int, path: Any) -> None:
    if err:
        raise error_for_code(err, path)


def finish_create(err: int, body: bytes, pos: int, ctx: Any) -> str:
    path, chroot = ctx
    if err:
        raise error_for_code(err, path)
    # create, createContainer and createTTL replies all start with the path.
    created, _ = CreateResponse.decode_from(body, pos)
    return chroot.to_client(created.path)


def finish_create2(err: int, body: bytes, pos: int, ctx: Any) -> tuple[str, Stat]:
    path, chroot = ctx
    if err:
        raise error_for_code(err, path)
    resp, _ = Create2Response.decode_from(body, pos)
    return chroot.to_client(resp.path), resp.stat


def finish_stat(err: int, body: bytes, pos: int, path: Any) -> Stat:
    """setData, setACL: the node's new Stat."""
    if err:
        raise error_for_code(err, path)
    return Stat.decode_from(body, pos)[0]


def finish_exists(err: int, body: bytes, pos: int, ctx: Any) -> Stat | None:
    path, registry, watcher = ctx
    if err == 0:
        if watcher is not None:
            registry.add(WatchKind.DATA, path, watcher)
        return Stat.decode_from(body, pos)[0]
    if err == _NO_NODE:
        if watcher is not None:
            registry.add(WatchKind.EXIST, path, watcher)
        return None
    raise error_for_code(err, path)


def finish_get_data(err: int, body: bytes, pos: int, ctx: Any) -> tuple[bytes | None, Stat]:
    path, registry, watcher = ctx
    if err:
        raise error_for_code(err, path)
    if watcher is not None:
        registry.add(WatchKind.DATA, path, watcher)
    resp = GetDataResponse.decode_from(body, pos)[0]
    return resp.data, resp.stat


def finish_get_children(err: int, body: bytes, pos: int, ctx: Any) -> list[str]:
    path, registry, watcher = ctx
    if err:
        raise error_for_code(err, path)
    if watcher is not None:
        registry.add(WatchKind.CHILD, path, watcher)
    return GetChildrenResponse.decode_from(body, pos)[0].children or []


def finish_get_children2(err: int, body: bytes, pos: int, ctx: Any) -> tuple[list[str], Stat]:
    path, registry, watcher = ctx
    if err:
        raise error_for_code(err, path)
    if watcher is not None:
        registry.add(WatchKind.CHILD, path, watcher)
    resp = GetChildren2Response.decode_from(body, pos)[0]
    return resp.children or [], resp.stat


def finish_add_watch(err: int, body: bytes, pos: int, ctx: Any) -> None:
    path, registry, watcher, kind = ctx
    if err:
        raise error_for_code(err, path)
    registry.add(kind, path, watcher)
