"""Answers: reads served from the tree, and the replies to applied writes.

ZooKeeper's FinalRequestProcessor.  Reads run when they reach the head of
their session's queue; each answer carries the zxid of the last applied txn.
Replies to writes are built from the TxnResult of applying the txn.  The hot
answers (getData, exists, setData, create) are packed directly into bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from zkpy.proto import errors
from zkpy.proto.constants import AddWatchMode, OpCode
from zkpy.proto.jute import DecodeError
from zkpy.proto.messages import decode_multi_request, encode_multi_response
from zkpy.proto.records import (
    ACL,
    AddWatchRequest,
    CheckWatchesRequest,
    ClientInfo,
    ExistsRequest,
    GetACLRequest,
    GetACLResponse,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    GetEphemeralsResponse,
    Id,
    RemoveWatchesRequest,
    SetWatches,
    SetWatches2,
    Stat,
    SyncRequest,
    WhoAmIResponse,
)
from zkpy.tree.acl import OPEN_ACL_UNSAFE_ID, PERM_ADMIN, PERM_READ
from zkpy.tree.datatree import TxnResult
from zkpy.tree.node import PERSISTED

if TYPE_CHECKING:
    from zkpy.server.connection import ClientConnection
    from zkpy.server.server import ZooKeeperServer

_REPLY = struct.Struct(">iiqi")
_REPLY_DATA = struct.Struct(">iiqii")  # reply header + data length; then data and the Stat
_GET_DATA, _EXISTS = int(OpCode.getData), int(OpCode.exists)
# Plain ints for the write replies: comparing with an IntEnum member costs a metaclass lookup.
_ERROR, _MULTI, _CREATE = int(OpCode.error), int(OpCode.multi), int(OpCode.create)
_SET_DATA, _SET_ACL = int(OpCode.setData), int(OpCode.setACL)
_CREATES_WITH_STAT = frozenset({int(OpCode.create2), int(OpCode.createTTL), int(OpCode.createContainer)})
_INT = struct.Struct(">i")
_REPLY_INT = struct.Struct(">iiqii")
_EVENT_DELETED, _EVENT_CREATED, _EVENT_DATA, _EVENT_CHILDREN = 2, 1, 3, 4


def _ustring(s: str) -> bytes:
    b = s.encode("utf-8")
    return _INT.pack(len(b)) + b


def _string_vector(items: list[str]) -> bytes:
    parts = [_INT.pack(len(items))]
    for s in items:
        b = s.encode("utf-8")
        parts.append(_INT.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


class ReadHandler:
    """Executes read-type requests for a connection and writes the answer."""

    def __init__(self, server: ZooKeeperServer) -> None:
        self.server = server
        self.tree = server.db.tree
        self.watches = server.watches
        self.auth = server.auth
        self._ops: dict[int, Callable[[ClientConnection, bytes], bytes | None]] = {
            OpCode.getData: self._get_data,
            OpCode.exists: self._exists,
            OpCode.getChildren: self._get_children,
            OpCode.getChildren2: self._get_children2,
            OpCode.getACL: self._get_acl,
            OpCode.getAllChildrenNumber: self._get_all_children_number,
            OpCode.getEphemerals: self._get_ephemerals,
            OpCode.sync: self._sync,
            OpCode.ping: self._empty,
            OpCode.setWatches: self._set_watches,
            OpCode.setWatches2: self._set_watches2,
            OpCode.addWatch: self._add_watch,
            OpCode.checkWatches: self._check_watches,
            OpCode.removeWatches: self._remove_watches,
            OpCode.whoAmI: self._who_am_i,
            OpCode.multiRead: self._multi_read,
        }

    def execute(self, conn: ClientConnection, xid: int, op: int, body: bytes) -> None:
        zxid = self.tree.last_processed_zxid
        sess = conn.session
        if sess is not None and not sess.closing and (op == _GET_DATA or op == _EXISTS):
            # The hot reads, inline: parse, look up, check, answer.
            if self._fast_read(conn, xid, op, body, zxid):
                return
        try:
            if sess is None or sess.closing:
                raise errors.SessionExpiredError()
            payload = self._ops[op](conn, body)
            err = 0
        except errors.ZooKeeperError as e:
            payload, err = None, e.code
        except (DecodeError, UnicodeError, KeyError):
            payload, err = None, errors.MarshallingError.code
        if payload:
            conn.send(_REPLY.pack(16 + len(payload), xid, zxid, err) + payload)
        else:
            conn.send(_REPLY.pack(16, xid, zxid, err))

    def _fast_read(self, conn: ClientConnection, xid: int, op: int, body: bytes, zxid: int) -> bool:
        """getData / exists without records or exceptions; False hands anything unusual (a
        malformed body, a missing node, an ACL to check in full) to the general path."""
        n = len(body)
        if n < 5:
            return False
        (plen,) = _INT.unpack_from(body, 0)
        if plen < 0 or plen + 5 != n:
            return False
        try:
            path = body[4 : 4 + plen].decode("utf-8")
        except UnicodeDecodeError:
            return False
        node = self.tree.get_node(path)
        if node is None:
            return False
        watch = body[n - 1]
        if op == _GET_DATA:
            if not self.tree.acls.world_perms.get(node.acl, 0) & PERM_READ:
                return False
            if watch:
                self.watches.add_data_watch(path, conn)
            data = node.data
            if data is None:
                conn.send(_REPLY_DATA.pack(88, xid, zxid, 0, -1) + node.wire_stat())
            else:
                conn.send(_REPLY_DATA.pack(88 + len(data), xid, zxid, 0, len(data)) + data + node.wire_stat())
            return True
        if watch:
            self.watches.add_data_watch(path, conn)
        conn.send(_REPLY.pack(84, xid, zxid, 0) + node.wire_stat())
        return True

    # ------------------------------------------------------------------ helpers

    def _check(self, conn: ClientConnection, acl_id: int, perm: int) -> None:
        if acl_id != OPEN_ACL_UNSAFE_ID:
            self.auth.check(self.tree.acls.lookup(acl_id), perm, conn.auth_ids)

    def _node_for_read(self, conn: ClientConnection, path: str | None):
        node = self.tree.get_node(path) if path is not None else None
        if node is None:
            raise errors.NoNodeError(path)
        self._check(conn, node.acl, PERM_READ)
        return node

    # ------------------------------------------------------------------ ops

    def _get_data(self, conn: ClientConnection, body: bytes) -> bytes:
        req, _ = GetDataRequest.decode_from(body, 0)
        node = self._node_for_read(conn, req.path)
        if req.watch:
            self.watches.add_data_watch(req.path, conn)
        data = node.data
        if data is None:
            return b"\xff\xff\xff\xff" + node.wire_stat()
        return _INT.pack(len(data)) + data + node.wire_stat()

    def _exists(self, conn: ClientConnection, body: bytes) -> bytes:
        req, _ = ExistsRequest.decode_from(body, 0)
        path = req.path or ""
        if "\0" in path:
            raise errors.BadArgumentsError(path)
        if req.watch:
            self.watches.add_data_watch(path, conn)
        node = self.tree.get_node(path)
        if node is None:
            raise errors.NoNodeError(path)
        return node.wire_stat()

    def _get_children(self, conn: ClientConnection, body: bytes) -> bytes:
        req, _ = GetChildrenRequest.decode_from(body, 0)
        node = self._node_for_read(conn, req.path)
        if req.watch:
            self.watches.add_child_watch(req.path, conn)
        return _string_vector(list(node.children or ()))

    def _get_children2(self, conn: ClientConnection, body: bytes) -> bytes:
        req, _ = GetChildren2Request.decode_from(body, 0)
        node = self._node_for_read(conn, req.path)
        if req.watch:
            self.watches.add_child_watch(req.path, conn)
        return _string_vector(list(node.children or ())) + node.wire_stat()

    def _get_acl(self, conn: ClientConnection, body: bytes) -> bytes:
        req, _ = GetACLRequest.decode_from(body, 0)
        node = self.tree.get_node(req.path) if req.path is not None else None
        if node is None:
            raise errors.NoNodeError(req.path)
        acls = self.tree.acls.lookup(node.acl)
        self.auth.check(acls, PERM_READ | PERM_ADMIN, conn.auth_ids)
        try:
            self.auth.check(acls, PERM_ADMIN, conn.auth_ids)
            shown = acls
        except errors.NoAuthError:
            # Without ADMIN, digest ACLs are shown with the password hash masked.
            shown = [ACL(a.perms, Id(a.id.scheme, _mask_digest(a.id.id or ""))) if a.id.scheme == "digest"
                     else a for a in acls]
        stat = Stat.from_bytes(node.wire_stat())
        return GetACLResponse(list(shown), stat).to_bytes()

    def _get_all_children_number(self, conn: ClientConnection, body: bytes) -> bytes:
        req, _ = GetAllChildrenNumberRequest.decode_from(body, 0)
        node = self._node_for_read(conn, req.path)
        return _INT.pack(self.tree.all_children_number(req.path or "/", node))

    def _get_ephemerals(self, conn: ClientConnection, body: bytes) -> bytes:
        req, _ = GetEphemeralsRequest.decode_from(body, 0)
        prefix = req.prefixPath
        mine = self.tree.session_ephemerals(conn.session_id)
        if prefix is None or not prefix.strip() or prefix.strip() == "/":
            found = list(mine)
        else:
            found = [p for p in mine if p.startswith(prefix)]
        return GetEphemeralsResponse(found).to_bytes()

    def _sync(self, conn: ClientConnection, body: bytes) -> bytes:
        req, _ = SyncRequest.decode_from(body, 0)
        return _ustring(req.path or "") if req.path is not None else b"\xff\xff\xff\xff"

    def _empty(self, conn: ClientConnection, body: bytes) -> None:
        return None

    def _set_watches(self, conn: ClientConnection, body: bytes) -> None:
        req, _ = SetWatches.decode_from(body, 0)
        self._rewatch(conn, req.relativeZxid, req.dataWatches, req.existWatches, req.childWatches, [], [])

    def _set_watches2(self, conn: ClientConnection, body: bytes) -> None:
        req, _ = SetWatches2.decode_from(body, 0)
        self._rewatch(conn, req.relativeZxid, req.dataWatches, req.existWatches, req.childWatches,
                      req.persistentWatches, req.persistentRecursiveWatches)

    def _rewatch(self, conn: ClientConnection, rel_zxid: int, data: list[str] | None, exist: list[str] | None,
                 child: list[str] | None, persistent: list[str] | None, recursive: list[str] | None) -> None:
        """DataTree.setWatches: re-register, firing at once what changed since ``rel_zxid``."""
        tree = self.tree
        for path in data or ():
            node = tree.get_node(path)
            if node is None:
                conn.send_event(_EVENT_DELETED, path)
            elif PERSISTED.unpack(node.stat)[1] > rel_zxid:
                conn.send_event(_EVENT_DATA, path)
            else:
                self.watches.add_data_watch(path, conn)
        for path in exist or ():
            if tree.get_node(path) is not None:
                conn.send_event(_EVENT_CREATED, path)
            else:
                self.watches.add_data_watch(path, conn)
        for path in child or ():
            node = tree.get_node(path)
            if node is None:
                conn.send_event(_EVENT_DELETED, path)
            elif PERSISTED.unpack(node.stat)[8] > rel_zxid:
                conn.send_event(_EVENT_CHILDREN, path)
            else:
                self.watches.add_child_watch(path, conn)
        for path in persistent or ():
            self.watches.add_persistent(path, conn, AddWatchMode.PERSISTENT)
        for path in recursive or ():
            self.watches.add_persistent(path, conn, AddWatchMode.PERSISTENT_RECURSIVE)

    def _add_watch(self, conn: ClientConnection, body: bytes) -> bytes:
        req, _ = AddWatchRequest.decode_from(body, 0)
        self.watches.add_persistent(req.path or "", conn, req.mode)
        return _INT.pack(0)  # ZooKeeper answers with an ErrorResponse(0)

    def _check_watches(self, conn: ClientConnection, body: bytes) -> None:
        req, _ = CheckWatchesRequest.decode_from(body, 0)
        if not self.watches.contains(req.path or "", req.type, conn):
            raise errors.NoWatcherError(req.path)

    def _remove_watches(self, conn: ClientConnection, body: bytes) -> None:
        req, _ = RemoveWatchesRequest.decode_from(body, 0)
        if not self.watches.remove(req.path or "", req.type, conn):
            raise errors.NoWatcherError(req.path)

    def _who_am_i(self, conn: ClientConnection, body: bytes) -> bytes:
        # ZooKeeper keeps a connection's ids in a ConcurrentHashMap-backed set; list them in
        # that map's iteration order so the answer reads the same.
        ids = sorted(enumerate(conn.auth_ids), key=lambda t: (_java_set_bin(t[1]), t[0]))
        infos = [ClientInfo(i.scheme, self.auth.user_name(i)) for _, i in ids]
        return WhoAmIResponse(infos).to_bytes()

    def _multi_read(self, conn: ClientConnection, body: bytes) -> bytes:
        ops = decode_multi_request(body)
        results = []
        for op, rec in ops:
            try:
                if op == OpCode.getChildren:
                    node = self._node_for_read(conn, rec.path)  # type: ignore[attr-defined]
                    if rec.watch:  # type: ignore[attr-defined]
                        self.watches.add_child_watch(rec.path, conn)  # type: ignore[attr-defined]
                    results.append((op, 0, _RawRecord(_string_vector(list(node.children or ())))))
                elif op == OpCode.getData:
                    node = self._node_for_read(conn, rec.path)  # type: ignore[attr-defined]
                    if rec.watch:  # type: ignore[attr-defined]
                        self.watches.add_data_watch(rec.path, conn)  # type: ignore[attr-defined]
                    data = node.data
                    head = _INT.pack(len(data)) + data if data is not None else b"\xff\xff\xff\xff"
                    payload = head + node.wire_stat()
                    results.append((op, 0, _RawRecord(payload)))
                else:
                    raise DecodeError("Invalid type of readOp")
            except errors.ZooKeeperError as e:
                results.append((OpCode.error, e.code, _RawRecord(_INT.pack(e.code))))
        out = bytearray()
        encode_multi_response(results, out)  # type: ignore[arg-type]
        return bytes(out)


class _RawRecord:
    """Pre-encoded bytes standing in for a record in a multi response."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def encode_into(self, out: bytearray) -> None:
        out += self.payload


def _java_string_hash(s: str) -> int:
    h = 0
    for ch in s.encode("utf-16-be").decode("utf-16-be"):
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h


def _java_set_bin(ident: Id) -> int:
    """The bin of ``ident`` in a 16-bin ConcurrentHashMap (jute's Id.hashCode, CHM.spread)."""
    h = (37 * 17 + _java_string_hash(ident.scheme or "")) & 0xFFFFFFFF
    h = (37 * h + _java_string_hash(ident.id or "")) & 0xFFFFFFFF
    return ((h ^ (h >> 16)) & 0x7FFFFFFF) & 15


def _mask_digest(ident: str) -> str:
    i = ident.find(":")
    return ident if i < 0 else ident[:i] + ":x"


# ---------------------------------------------------------------------- write replies


def write_reply(op: int, xid: int, zxid: int, rc: TxnResult, error: errors.ZooKeeperError | None) -> bytes:
    """The reply to an applied write (FinalRequestProcessor's switch on the request type)."""
    if rc.type == _ERROR:
        code = error.code if error is not None else rc.err
        return _REPLY.pack(16, xid, zxid, code)
    if op == _MULTI:
        out = bytearray()
        encode_multi_response([_multi_result(sub) for sub in rc.multi or ()], out)  # type: ignore[misc]
        return _REPLY.pack(16 + len(out), xid, zxid, 0) + out
    err = rc.err
    if err:
        return _REPLY.pack(16, xid, zxid, err)
    if op == _CREATE:
        body = _ustring(rc.path or "")
    elif op in _CREATES_WITH_STAT:
        body = _ustring(rc.path or "") + (rc.stat or b"")
    elif op == _SET_DATA or op == _SET_ACL:
        body = rc.stat or b""
    else:
        # delete and the rest answer with no body; FinalRequestProcessor answers a lone check
        # with a SetDataResponse of a null stat, which is no body either.
        body = b""
    return _REPLY.pack(16 + len(body), xid, zxid, 0) + body


def _multi_result(sub: TxnResult) -> tuple[int, int, _RawRecord | None]:
    t = sub.type
    if t == OpCode.error:
        return (OpCode.error, sub.err, _RawRecord(_INT.pack(sub.err)))
    if t == OpCode.create:
        return (OpCode.create, 0, _RawRecord(_ustring(sub.path or "")))
    if t in (OpCode.create2, OpCode.createTTL, OpCode.createContainer):
        return (OpCode.create2, 0, _RawRecord(_ustring(sub.path or "") + (sub.stat or b"")))
    if t == OpCode.setData:
        return (OpCode.setData, 0, _RawRecord(sub.stat or b""))
    if t in (OpCode.delete, OpCode.deleteContainer):
        return (OpCode.delete, 0, None)
    return (OpCode.check, 0, None)
