"""Prepare: turn a write request into a fully resolved transaction, or an error.

This is ZooKeeper's PrepRequestProcessor.  Validation must see the effect of
earlier writes that are prepared but not yet applied (they wait for fsync or a
quorum), so it reads through an overlay of *change records*, one per path
touched by an outstanding txn, falling back to the tree.  Records are retired
once the tree has applied their zxid.

Every decision lands in the txn (the sequential name, the parent's new cversion,
the time, the ACL after ``auth`` expansion) so that applying it is deterministic.
A request that fails here still becomes a txn — an ErrorTxn, logged with its
own zxid — exactly as ZooKeeper does, so logs and zxids interchange.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zkpy.proto import errors
from zkpy.proto.constants import CONTAINER_EPHEMERAL_OWNER, CreateMode, OpCode
from zkpy.proto.jute import DecodeError, Record
from zkpy.proto.messages import decode_multi_request
from zkpy.proto.paths import VALID_PATH as _VALID_PATH
from zkpy.proto.records import (
    ACL,
    CheckVersionRequest,
    CheckVersionTxn,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateRequest,
    CreateSessionTxn,
    CreateTTLRequest,
    CreateTTLTxn,
    CreateTxn,
    DeleteRequest,
    DeleteTxn,
    ErrorTxn,
    Id,
    MultiTxn,
    ReconfigRequest,
    SetACLRequest,
    SetACLTxn,
    SetDataRequest,
    SetDataTxn,
    Txn,
    TxnHeader,
)
from zkpy.proto.txns import TXN_HEADER
from zkpy.tree.acl import PERM_ADMIN, PERM_CREATE, PERM_DELETE, PERM_READ, PERM_WRITE, AuthRegistry
from zkpy.tree.datatree import DataTree
from zkpy.tree.node import (
    EPHEMERAL_NORMAL,
    PERSISTED,
    PERSISTED_VERSIONS,
    PERSISTED_VERSIONS_AT,
    ephemeral_type,
    ttl_owner,
    wrap_int32,
)
from zkpy.tree.paths import InvalidPathError, validate_path

_INT = struct.Struct(">i")
_BOOL_INT = struct.Struct(">?i")
_VERSIONS_OWNER = PERSISTED_VERSIONS.unpack_from
_SET_DATA = int(OpCode.setData)
_CREATE, _CREATE2, _DELETE = int(OpCode.create), int(OpCode.create2), int(OpCode.delete)
# The encoded Id world:anyone as a create request carries it (ustring scheme, ustring id).
_WORLD_ANYONE = _INT.pack(5) + b"world" + _INT.pack(6) + b"anyone"
# Open ACL lists by their permissions, shared by the txns that carry them (never mutated).
_OPEN_ACLS: dict[int, list[ACL]] = {}


def _ustring(s: str) -> bytes:
    b = s.encode("utf-8")
    return _INT.pack(len(b)) + b


def _world_perms_of(acl: Sequence[ACL] | None) -> int:
    perms = 0
    for a in acl or ():
        if a.id is not None and a.id.scheme == "world" and a.id.id == "anyone":
            perms |= a.perms
    return perms


_DOT_NAMES = frozenset({"", ".", ".."})
_SPECIAL_PATHS = frozenset({"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"})
_TTL_MAX = 0x000000FFFFFFFFFF


class ChangeRecord:
    """The state of one path as of an outstanding txn; ``exists`` False once deleted.

    ``world`` caches the permissions world:anyone holds in ``acl`` (the common open ACL lets
    the ACL check be one bit test)."""

    __slots__ = ("acl", "aversion", "child_count", "cversion", "data", "exists", "owner", "path", "version",
                 "world", "zxid")

    def __init__(self, zxid: int, path: str, exists: bool, version: int = 0, cversion: int = 0,
                 aversion: int = 0, owner: int = 0, child_count: int = 0, acl: list[ACL] | None = None,
                 data: bytes | None = None, world: int | None = None) -> None:
        self.zxid = zxid
        self.path = path
        self.exists = exists
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.owner = owner
        self.child_count = child_count
        self.acl = acl
        self.data = data
        self.world = _world_perms_of(acl) if world is None else world

    def copy(self, zxid: int) -> ChangeRecord:
        return ChangeRecord(zxid, self.path, self.exists, self.version, self.cversion, self.aversion,
                            self.owner, self.child_count, self.acl, self.data, self.world)


@dataclass(slots=True)
class Prepared:
    """A prepared txn; ``error`` is the exception to report for an ErrorTxn (or None).

    ``raw`` is ``txn`` already encoded when the fast paths could take it from the request's
    own bytes (setData, delete and create lay out their txns like their requests)."""

    hdr: TxnHeader
    txn: Record | None
    error: errors.ZooKeeperError | None = None
    raw: bytes | None = None

    def entry(self) -> bytes:
        """The log / PROPOSAL entry: TxnHeader then the txn record."""
        h = self.hdr
        head = TXN_HEADER.pack(h.clientId, h.cxid, h.zxid, h.time, h.type)
        if self.raw is not None:
            return head + self.raw
        return head + (self.txn.to_bytes() if self.txn is not None else b"")


def _check_version(current: int, expected: int, path: str) -> int:
    if expected != -1 and expected != current:
        raise errors.BadVersionError(path)
    return wrap_int32(current + 1)


def _path_and_data(body: bytes, n: int, min_path: int) -> tuple[str, int, bytes | None, int] | None:
    """(path, where it ends, data, where the data ends) of a request that starts with a ustring
    path of at least ``min_path`` bytes and a buffer (setData, create); None when malformed."""
    (plen,) = _INT.unpack_from(body, 0)
    path_end = 4 + plen
    if plen < min_path or path_end + 4 > n:
        return None
    try:
        path = body[4:path_end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    (dlen,) = _INT.unpack_from(body, path_end)
    pos = path_end + 4
    if dlen == -1:
        return path, path_end, None, pos
    if dlen < 0 or pos + dlen > n:
        return None
    return path, path_end, body[pos : pos + dlen], pos + dlen


class Preparer:
    """Validates write requests against tree + outstanding changes and assigns zxids."""

    def __init__(self, tree: DataTree, auth: AuthRegistry, next_zxid: Callable[[], int],
                 session_check: Callable[[int], None], extended_types: bool,
                 clock_ms: Callable[[], int] | None = None,
                 session_live: Callable[[int], bool] | None = None) -> None:
        self.tree = tree
        self.auth = auth
        self.next_zxid = next_zxid
        self.session_check = session_check
        self.session_live = session_live or (lambda sid: True)
        self.extended_types = extended_types
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        # (zxid, record) in zxid order; a record changed in place appears once per zxid.
        self.outstanding: deque[tuple[int, ChangeRecord]] = deque()
        self.by_path: dict[str, ChangeRecord] = {}
        # The inline paths for common requests; off only in tests that compare them with the general one.
        self.fast_paths = True
        # While a multi is being prepared: each touched path's record before it, for rollback.
        self._journal: dict[str, ChangeRecord | None] | None = None

    # ---------------------------------------------------------------- change records

    def record_for(self, path: str) -> ChangeRecord:
        rec = self.by_path.get(path)
        if rec is None:
            node = self.tree.get_node(path)
            if node is not None:
                _cz, _mz, _ct, _mt, ver, cver, aver, owner, _pz = PERSISTED.unpack(node.stat)
                rec = ChangeRecord(-1, path, True, ver, cver, aver, owner, node.num_children,
                                   self.tree.acl_of(node), node.data)
        if rec is None or not rec.exists:
            raise errors.NoNodeError(path)
        return rec

    def _add(self, rec: ChangeRecord) -> None:
        """Make ``rec`` the state of its path as of ``rec.zxid``.

        Also for a record that is the path's state already, changed in place by a later txn
        (the fast paths do that to a parent instead of copying it): it is queued again under
        its new zxid, and only that entry retires it."""
        journal = self._journal
        if journal is not None and rec.path not in journal:
            journal[rec.path] = self.by_path.get(rec.path)
        self.outstanding.append((rec.zxid, rec))
        self.by_path[rec.path] = rec

    def retire(self, zxid: int) -> None:
        """Drop the change records of every txn up to ``zxid``: the tree holds them now."""
        out = self.outstanding
        by_path = self.by_path
        while out and out[0][0] <= zxid:
            rec = out.popleft()[1]
            if rec.zxid <= zxid and by_path.get(rec.path) is rec:
                del by_path[rec.path]

    def reset(self) -> None:
        self.outstanding.clear()
        self.by_path.clear()

    # ---------------------------------------------------------------- entry point

    def prepare(self, op: int, body: bytes, session_id: int, cxid: int, auth_ids: Sequence[Id],
                live: bool = False) -> Prepared:
        """The txn for a write request (ZooKeeper's pRequest): always a txn, maybe an ErrorTxn.

        ``live`` says the caller knows the session is live (saves a lookup)."""
        if self.fast_paths and self._journal is None:
            fast: Prepared | None = None
            if op == _SET_DATA:
                fast = self._fast_set_data(body, session_id, cxid, live)
            elif op == _CREATE or op == _CREATE2:
                fast = self._fast_create(op, body, session_id, cxid, live)
            elif op == _DELETE:
                fast = self._fast_delete(body, session_id, cxid, live)
            if fast is not None:
                return fast
        zxid = self.next_zxid()
        hdr = TxnHeader(session_id, cxid, zxid, self.clock_ms(), op)
        try:
            if op == OpCode.multi:
                return self._prepare_multi(hdr, body, auth_ids)
            record = self._decode(op, body)
            txn = self._prepare_op(op, record, hdr, auth_ids)
            return Prepared(hdr, txn)
        except errors.ZooKeeperError as e:
            hdr.type = OpCode.error
            return Prepared(hdr, ErrorTxn(e.code), e)
        except (DecodeError, UnicodeError):
            hdr.type = OpCode.error
            e2 = errors.MarshallingError()
            return Prepared(hdr, ErrorTxn(e2.code), e2)

    def _fast_set_data(self, body: bytes, session_id: int, cxid: int, live: bool) -> Prepared | None:
        """setData, the most common write, without request records or exceptions.

        Returns None for anything but the plain success case (a malformed body, an invalid
        path, a missing node, a version mismatch, an ACL to check in full): the general path
        then decides, so there is one place for every error."""
        n = len(body)
        if n < 12 or (head := _path_and_data(body, n, 1)) is None:
            return None
        path, _path_end, data, pos = head
        # No regex: a path names an existing node (or an outstanding record) only when it is
        # valid, except "" (the root's alias), which the first character rules out.
        if pos + 4 != n or path[0] != "/":
            return None
        (expected,) = _INT.unpack_from(body, pos)
        rec = self.by_path.get(path)
        if rec is None:
            tree = self.tree
            node = tree.get_node(path)
            if node is None:
                return None
            version, cver, aver, owner = _VERSIONS_OWNER(node.stat, PERSISTED_VERSIONS_AT)
            acl_id = node.acl
            acls = tree.acls
            world = acls.world_perms.get(acl_id, 0)
            if not world & PERM_WRITE:
                return None
            acl = acls.lookup(acl_id)
            ch = node.children
            child_count = len(ch) if ch else 0
        else:
            world = rec.world
            if not rec.exists or world & PERM_WRITE == 0:
                return None
            version, cver, aver, owner, acl, child_count = (rec.version, rec.cversion, rec.aversion, rec.owner,
                                                            rec.acl, rec.child_count)
        if expected != -1 and expected != version:
            return None
        if session_id and not (live or self.session_live(session_id)):
            return None
        new_version = version + 1 if version < 0x7FFFFFFF else wrap_int32(version + 1)
        zxid = self.next_zxid()
        self._add(ChangeRecord(zxid, path, True, new_version, cver, aver, owner, child_count, acl, data, world))
        # SetDataTxn is laid out like SetDataRequest: only the version differs.
        return Prepared(TxnHeader(session_id, cxid, zxid, self.clock_ms(), _SET_DATA),
                        SetDataTxn(path, data, new_version), None, body[:-4] + _INT.pack(new_version))

    def _known(self, path: str) -> ChangeRecord | None:
        """The state of ``path`` for the fast paths: its outstanding record, or a record made
        from the tree (not added to the overlay), or None when it does not exist."""
        rec = self.by_path.get(path)
        if rec is not None:
            return rec if rec.exists else None
        tree = self.tree
        node = tree.get_node(path)
        if node is None:
            return None
        version, cver, aver, owner = _VERSIONS_OWNER(node.stat, PERSISTED_VERSIONS_AT)
        acls = tree.acls
        aid = node.acl
        ch = node.children
        return ChangeRecord(-1, path, True, version, cver, aver, owner, len(ch) if ch else 0, acls.lookup(aid),
                            node.data, acls.world_perms.get(aid, 0))

    def _fast_create(self, op: int, body: bytes, session_id: int, cxid: int, live: bool) -> Prepared | None:
        """create / create2 of a persistent, ephemeral or sequential node with the open ACL
        (world:anyone), the common case; None hands everything else to the general path."""
        n = len(body)
        if n < 43 or (head := _path_and_data(body, n, 2)) is None:
            return None
        path, path_end, data, pos = head
        # One ACL, world:anyone, then the flags.
        if pos + 31 != n or body[pos : pos + 4] != b"\0\0\0\x01" or body[pos + 8 : pos + 27] != _WORLD_ANYONE:
            return None
        (perms,) = _INT.unpack_from(body, pos + 4)
        (flags,) = _INT.unpack_from(body, pos + 27)
        if flags < 0 or flags > 3 or perms & ~0x1F:
            return None
        if session_id and not (live or self.session_live(session_id)):
            return None
        i = path.rfind("/")
        if i < 0:
            return None
        parent_path = path[:i] or "/"
        parent = self._known(parent_path)
        if parent is None or not parent.world & PERM_CREATE:
            return None
        if parent.owner and ephemeral_type(parent.owner, self.extended_types) == EPHEMERAL_NORMAL:
            return None
        pcv = parent.cversion
        if flags & 2:
            path = f"{path}{pcv:010d}"
        # The parent exists, so its path is valid: only the new name needs a look (a printable
        # ASCII name that is not "", "." or ".." is valid; anything else gets the full rule).
        name = path[i + 1 :]
        if not (name.isascii() and name.isprintable()) or name in _DOT_NAMES:
            if not _VALID_PATH.fullmatch(path):
                return None
        if self._known(path) is not None:
            return None
        zxid = self.next_zxid()
        new_cv = pcv + 1 if pcv < 0x7FFFFFFF else wrap_int32(pcv + 1)
        acl = _OPEN_ACLS.get(perms)
        if acl is None:
            acl = _OPEN_ACLS[perms] = [ACL(perms, Id("world", "anyone"))]
        ephemeral = bool(flags & 1)
        # Changed in place, not copied: a fast path never runs inside a multi, whose rollback
        # needs the records as they were.
        parent.zxid = zxid
        parent.child_count += 1
        parent.cversion = new_cv
        self._add(parent)
        self._add(ChangeRecord(zxid, path, True, 0, 0, 0, session_id if ephemeral else 0, 0, acl, data, perms))
        # CreateTxn is CreateRequest's path, data and ACL, then (ephemeral, parentCVersion).
        tail = body[path_end:-4] + _BOOL_INT.pack(ephemeral, new_cv)
        raw = body[:path_end] + tail if not flags & 2 else _ustring(path) + tail
        return Prepared(TxnHeader(session_id, cxid, zxid, self.clock_ms(), op),
                        CreateTxn(path, data, acl, ephemeral, new_cv), None, raw)

    def _fast_delete(self, body: bytes, session_id: int, cxid: int, live: bool) -> Prepared | None:
        """delete of an existing, childless node whose parent grants world:anyone DELETE."""
        n = len(body)
        if n < 9:
            return None
        (plen,) = _INT.unpack_from(body, 0)
        if plen <= 1 or 8 + plen != n:
            return None
        try:
            path = body[4 : 4 + plen].decode("utf-8")
        except UnicodeDecodeError:
            return None
        if path[0] != "/" or path in _SPECIAL_PATHS:
            return None
        (expected,) = _INT.unpack_from(body, 4 + plen)
        if session_id and not (live or self.session_live(session_id)):
            return None
        node = self._known(path)  # an existing node's path is a valid one
        if node is None or node.child_count or (expected != -1 and expected != node.version):
            return None
        parent = self._known(path[: path.rfind("/")] or "/")
        if parent is None or not parent.world & PERM_DELETE:
            return None
        zxid = self.next_zxid()
        parent.zxid = zxid  # in place, as in _fast_create
        parent.child_count -= 1
        self._add(parent)
        self._add(ChangeRecord(zxid, path, False))
        return Prepared(TxnHeader(session_id, cxid, zxid, self.clock_ms(), _DELETE), DeleteTxn(path), None,
                        body[:-4])

    def prepare_session(self, op: int, session_id: int, timeout_ms: int = 0) -> Prepared:
        """createSession / closeSession txns (the latter lists the ephemerals to delete)."""
        zxid = self.next_zxid()
        hdr = TxnHeader(session_id, 0, zxid, self.clock_ms(), op)
        if op == OpCode.createSession:
            return Prepared(hdr, CreateSessionTxn(timeout_ms))
        # Ephemerals of the session as of all outstanding changes.
        paths = set(self.tree.session_ephemerals(session_id))
        for _zxid, rec in self.outstanding:
            if not rec.exists:
                paths.discard(rec.path)
            elif rec.owner == session_id:
                paths.add(rec.path)
        ordered = sorted(paths)
        for path in ordered:
            parent_path = path[: path.rfind("/")] or "/"
            try:
                parent = self.record_for(parent_path).copy(zxid)
                parent.child_count -= 1
                self._add(parent)
            except errors.NoNodeError:
                pass
            self._add(ChangeRecord(zxid, path, False))
        return Prepared(hdr, CloseSessionTxn(ordered))

    def prepare_delete_container(self, path: str) -> Prepared:
        zxid = self.next_zxid()
        hdr = TxnHeader(0, 0, zxid, self.clock_ms(), OpCode.deleteContainer)
        try:
            parent_path = self._parent_for_delete(path)
            rec = self.record_for(path)
            if rec.child_count > 0:
                raise errors.NotEmptyError(path)
            if ephemeral_type(rec.owner, self.extended_types) == EPHEMERAL_NORMAL:
                raise errors.BadVersionError(path)
            parent = self.record_for(parent_path).copy(zxid)
            parent.child_count -= 1
            self._add(parent)
            self._add(ChangeRecord(zxid, path, False))
            return Prepared(hdr, DeleteTxn(path))
        except errors.ZooKeeperError as e:
            hdr.type = OpCode.error
            return Prepared(hdr, ErrorTxn(e.code), e)

    # ---------------------------------------------------------------- per op

    @staticmethod
    def _decode(op: int, body: bytes) -> Record:
        if op == OpCode.deleteContainer:
            return DeleteTxn(None)
        cls = _WRITE_RECORDS.get(op)
        if cls is None:
            raise errors.UnimplementedError()
        return cls.from_bytes(body)

    def _prepare_op(self, op: int, record: Record, hdr: TxnHeader, auth_ids: Sequence[Id]) -> Record:
        if op in (OpCode.create, OpCode.create2, OpCode.createContainer, OpCode.createTTL):
            return self._prepare_create(op, record, hdr, auth_ids)  # type: ignore[arg-type]
        zxid = hdr.zxid
        if op == OpCode.delete:
            assert isinstance(record, DeleteRequest)
            self.session_check(hdr.clientId)
            path = record.path or ""
            parent_path = self._parent_for_delete(path)
            parent = self.record_for(parent_path)
            self.auth.check(parent.acl or (), PERM_DELETE, auth_ids)
            node = self.record_for(path)
            _check_version(node.version, record.version, path)
            if node.child_count > 0:
                raise errors.NotEmptyError(path)
            parent = parent.copy(zxid)
            parent.child_count -= 1
            self._add(parent)
            self._add(ChangeRecord(zxid, path, False))
            return DeleteTxn(path)
        if op == OpCode.setData:
            assert isinstance(record, SetDataRequest)
            self.session_check(hdr.clientId)
            path = self._valid(record.path)
            node = self.record_for(path)
            self.auth.check(node.acl or (), PERM_WRITE, auth_ids)
            new_version = _check_version(node.version, record.version, path)
            node = node.copy(zxid)
            node.version = new_version
            node.data = record.data
            self._add(node)
            return SetDataTxn(path, record.data, new_version)
        if op == OpCode.setACL:
            assert isinstance(record, SetACLRequest)
            self.session_check(hdr.clientId)
            path = self._valid(record.path)
            acl = self.auth.fixup_acl(path, auth_ids, record.acl)
            node = self.record_for(path)
            self.auth.check(node.acl or (), PERM_ADMIN, auth_ids)
            new_aversion = _check_version(node.aversion, record.version, path)
            node = node.copy(zxid)
            node.aversion = new_aversion
            node.acl = acl
            self._add(node)
            return SetACLTxn(path, acl, new_aversion)
        if op == OpCode.check:
            assert isinstance(record, CheckVersionRequest)
            self.session_check(hdr.clientId)
            path = self._valid(record.path)
            node = self.record_for(path)
            self.auth.check(node.acl or (), PERM_READ, auth_ids)
            return CheckVersionTxn(path, _check_version(node.version, record.version, path))
        if op == OpCode.reconfig:
            self.session_check(hdr.clientId)
            raise errors.ReconfigDisabledError()
        if op == OpCode.deleteContainer:
            # Only the server deletes containers; ZooKeeper parses a client's request body as a
            # path including the request header's bytes, which never names a node.
            raise errors.BadArgumentsError()
        raise errors.UnimplementedError()

    def _prepare_create(self, op: int, record: CreateRequest | CreateTTLRequest, hdr: TxnHeader,
                        auth_ids: Sequence[Id]) -> Record:
        zxid = hdr.zxid
        flags = record.flags
        ttl = record.ttl if isinstance(record, CreateTTLRequest) else -1
        path = record.path or ""
        try:
            mode = CreateMode(flags)
        except ValueError:
            raise errors.BadArgumentsError(path, f"Received an invalid flag value: {flags}") from None
        # validateCreateRequest
        if mode.is_ttl and not self.extended_types:
            raise errors.UnimplementedError()
        if mode.is_ttl:
            if ttl > _TTL_MAX or ttl <= 0:
                raise errors.BadArgumentsError(path)
        elif ttl >= 0:
            raise errors.BadArgumentsError(path)
        self.session_check(hdr.clientId)
        # validatePathForCreate
        last_slash = path.rfind("/")
        if last_slash == -1 or "\0" in path:
            raise errors.BadArgumentsError(path)
        parent_path = path[:last_slash] or "/"
        acl = self.auth.fixup_acl(path, auth_ids, record.acl)
        parent = self.record_for(parent_path)
        self.auth.check(parent.acl or (), PERM_CREATE, auth_ids)
        parent_cversion = parent.cversion
        if mode.is_sequential:
            path = f"{path}{parent_cversion:010d}"
        self._valid(path)
        existing = self.by_path.get(path)
        if existing is not None:
            if existing.exists:
                raise errors.NodeExistsError(path)
        elif self.tree.get_node(path) is not None:
            raise errors.NodeExistsError(path)
        if ephemeral_type(parent.owner, self.extended_types) == EPHEMERAL_NORMAL:
            raise errors.NoChildrenForEphemeralsError(path)
        new_cversion = wrap_int32(parent_cversion + 1)
        data = record.data
        if op == OpCode.createContainer:
            txn: Record = CreateContainerTxn(path, data, acl, new_cversion)
        elif op == OpCode.createTTL:
            txn = CreateTTLTxn(path, data, acl, new_cversion, ttl)
        else:
            txn = CreateTxn(path, data, acl, mode.is_ephemeral, new_cversion)
        if mode.is_container:
            owner = CONTAINER_EPHEMERAL_OWNER
        elif mode.is_ttl:
            owner = ttl_owner(ttl)
        elif mode.is_ephemeral:
            owner = hdr.clientId
        else:
            owner = 0
        parent = parent.copy(zxid)
        parent.child_count += 1
        parent.cversion = new_cversion
        self._add(parent)
        self._add(ChangeRecord(zxid, path, True, 0, 0, 0, owner, 0, acl, data))
        return txn

    def _prepare_multi(self, hdr: TxnHeader, body: bytes, auth_ids: Sequence[Id]) -> Prepared:
        try:
            ops = decode_multi_request(body)
        except (DecodeError, UnicodeError):
            hdr.type = OpCode.error
            err = errors.MarshallingError()
            return Prepared(hdr, ErrorTxn(err.code), err)
        zxid = hdr.zxid
        start_len = len(self.outstanding)
        self._journal = {}
        txns: list[Txn] = []
        failure: errors.ZooKeeperError | None = None
        try:
            for op, rec in ops:
                # Op.create picks the opcode from the flags, whatever the header said.
                if op in (OpCode.create, OpCode.create2, OpCode.createContainer) and isinstance(rec, CreateRequest):
                    try:
                        mode = CreateMode(rec.flags)
                    except ValueError:
                        mode = CreateMode.PERSISTENT
                    op = OpCode.createContainer if mode.is_container else (
                        OpCode.createTTL if mode.is_ttl else OpCode.create)
                    if op == OpCode.createTTL:
                        rec = CreateTTLRequest(rec.path, rec.data, rec.acl, rec.flags, -1)
                elif op == OpCode.createTTL and isinstance(rec, CreateTTLRequest):
                    try:
                        mode = CreateMode(rec.flags)
                    except ValueError:
                        mode = CreateMode.PERSISTENT
                    if not mode.is_ttl:
                        op = OpCode.createContainer if mode.is_container else OpCode.create
                        rec = CreateRequest(rec.path, rec.data, rec.acl, rec.flags)
                if failure is not None:
                    txns.append(Txn(OpCode.error, ErrorTxn(errors.RuntimeInconsistencyError.code).to_bytes()))
                    continue
                try:
                    sub_hdr = TxnHeader(hdr.clientId, hdr.cxid, zxid, hdr.time, op)
                    sub = self._prepare_op(op, rec, sub_hdr, auth_ids)
                    txns.append(Txn(op, sub.to_bytes()))
                except errors.ZooKeeperError as e:
                    failure = e
                    txns.append(Txn(OpCode.error, ErrorTxn(e.code).to_bytes()))
                    self._rollback(start_len)
        finally:
            self._journal = None
        return Prepared(hdr, MultiTxn(txns), failure)

    def _rollback(self, start_len: int) -> None:
        """Undo the change records of a failed multi's earlier ops."""
        while len(self.outstanding) > start_len:
            self.outstanding.pop()
        assert self._journal is not None
        for path, rec in self._journal.items():
            if rec is None:
                self.by_path.pop(path, None)
            else:
                self.by_path[path] = rec
        self._journal.clear()

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _valid(path: str | None) -> str:
        try:
            validate_path(path)
        except InvalidPathError:
            raise errors.BadArgumentsError(path) from None
        assert path is not None
        return path

    @staticmethod
    def _parent_for_delete(path: str) -> str:
        """getParentPathAndValidate: the special system paths cannot be deleted."""
        last_slash = path.rfind("/")
        if last_slash == -1 or "\0" in path or path in _SPECIAL_PATHS:
            raise errors.BadArgumentsError(path)
        return path[:last_slash] or "/"


_WRITE_RECORDS: dict[int, type[Record]] = {
    OpCode.create: CreateRequest,
    OpCode.create2: CreateRequest,
    OpCode.createContainer: CreateRequest,
    OpCode.createTTL: CreateTTLRequest,
    OpCode.delete: DeleteRequest,
    OpCode.setData: SetDataRequest,
    OpCode.setACL: SetACLRequest,
    OpCode.check: CheckVersionRequest,
    OpCode.reconfig: ReconfigRequest,
}
