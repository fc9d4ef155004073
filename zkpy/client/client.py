"""The public asyncio client: ZooKeeper's operations on top of a :class:`Session`.

Each operation checks its arguments as the Java client does (bad paths raise ValueError
before anything is sent), maps the path into the chroot, writes the request into the
current connection and awaits the reply.  Errors are the exception classes of
``zkpy.proto.errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from zkpy.client import ops
from zkpy.client.acl import OPEN_ACL_UNSAFE
from zkpy.client.events import ClientState, WatchedEvent, Watcher
from zkpy.client.hosts import parse_connect_string
from zkpy.client.ops import Op, OpResult
from zkpy.client.paths import validate_path
from zkpy.client.session import Session, StateListener, deliver
from zkpy.client.watches import WatchKind
from zkpy.proto.constants import (
    CONFIG_NODE,
    AddWatchMode,
    CreateMode,
    EventType,
    KeeperState,
    OpCode,
    WatcherType,
)
from zkpy.proto.errors import ConnectionLossError, ZooKeeperError, error_for_code
from zkpy.proto.messages import encode_multi_request
from zkpy.proto.records import (
    ACL,
    AddWatchRequest,
    CheckWatchesRequest,
    ClientInfo,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetACLResponse,
    GetAllChildrenNumberRequest,
    GetAllChildrenNumberResponse,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    GetEphemeralsResponse,
    ReconfigRequest,
    RemoveWatchesRequest,
    SetACLRequest,
    SetDataRequest,
    Stat,
    SyncRequest,
    SyncResponse,
    WhoAmIResponse,
)

__all__ = ["Transaction", "ZooKeeperClient", "connect"]

WatchArg = Watcher | bool | None


class _Raw:
    """A request whose body is already encoded (multi)."""

    __slots__ = ("body",)

    def __init__(self, body: bytearray) -> None:
        self.body = body

    def encode_into(self, out: bytearray) -> None:
        out += self.body


class ZooKeeperClient:
    """An asyncio ZooKeeper client for one session.

    ``hosts`` is a connect string: "h1:2181,h2:2181" with an optional chroot ("/app").
    Call :meth:`start` (or use ``async with``) before any operation, :meth:`close` at the end.
    ``default_watcher`` gets connection events and the events of ``watch=True`` watches.
    """

    def __init__(
        self,
        hosts: str,
        session_timeout_ms: int = 30_000,
        *,
        read_only: bool = False,
        default_watcher: Watcher | None = None,
        session_id: int = 0,
        session_password: bytes | None = None,
        max_in_flight: int = 1000,
        auth: Iterable[tuple[str, bytes | None]] = (),
        reconnect_pause_s: float = 1.0,
        reconnect_jitter_s: float = 1.0,
    ) -> None:
        cs = parse_connect_string(hosts)
        self.connect_string = hosts
        self._chroot = cs.chroot
        self._session = Session(
            cs, session_timeout_ms, can_be_read_only=read_only, session_id=session_id,
            session_password=session_password, max_in_flight=max_in_flight,
            default_watcher=default_watcher, reconnect_pause_s=reconnect_pause_s,
            reconnect_jitter_s=reconnect_jitter_s)
        self._initial_auth = list(auth)

    # ------------------------------------------------------------ life cycle and state

    async def start(self, timeout_s: float | None = None) -> ZooKeeperClient:
        """Connect; waits for the first session (closing again and raising if none in time)."""
        self._session.start()
        try:
            await self._session.wait_connected(timeout_s)
        except BaseException:
            await self.close()
            raise
        for scheme, cred in self._initial_auth:
            await self.add_auth(scheme, cred)
        return self

    def start_background(self) -> None:
        """Begin connecting without waiting; operations wait for the connection themselves."""
        self._session.start()

    async def close(self, timeout_s: float = 10.0) -> None:
        """End the session (its ephemerals go) and the connection."""
        await self._session.close(timeout_s)

    async def __aenter__(self) -> ZooKeeperClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def state(self) -> ClientState:
        return self._session.state

    @property
    def connected(self) -> bool:
        return self._session.state.is_connected

    @property
    def session_id(self) -> int:
        return self._session.session_id

    @property
    def session_password(self) -> bytes:
        return self._session.session_password

    @property
    def negotiated_timeout_ms(self) -> int:
        return self._session.negotiated_timeout_ms

    @property
    def last_zxid(self) -> int:
        return self._session.last_zxid

    @property
    def server(self) -> tuple[str, int] | None:
        """The server of the current (or last) connection."""
        return self._session.server

    @property
    def chroot(self) -> str:
        return self._chroot.prefix

    @property
    def default_watcher(self) -> Watcher | None:
        return self._session.default_watcher

    @default_watcher.setter
    def default_watcher(self, watcher: Watcher | None) -> None:
        self._session.default_watcher = watcher

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(state)`` on every change of :class:`ClientState`."""
        self._session.add_listener(listener)

    def remove_listener(self, listener: StateListener) -> None:
        self._session.remove_listener(listener)

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        await self._session.wait_connected(timeout_s)

    # ------------------------------------------------------------ plumbing

    def _watcher(self, watch: WatchArg) -> Watcher | None:
        if watch is None or watch is False:
            return None
        if watch is True:
            return self._session.call_default_watcher
        return watch

    async def _call(self, opcode: int, record: Any, finish: Any, ctx: Any) -> Any:
        s = self._session
        conn = s.conn
        if conn is None or not s.ready:
            conn = await s.wait_ready()
        return await conn.send(opcode, record, finish, ctx)

    # ------------------------------------------------------------ writes

    async def create(self, path: str, data: bytes | None = b"", acl: Sequence[ACL] | None = None,
                     mode: CreateMode = CreateMode.PERSISTENT, ttl: int | None = None) -> str:
        """Create a znode; the path created (with the sequence suffix for sequential modes)."""
        mode = CreateMode(mode)
        validate_path(path, mode.is_sequential)
        ops.check_ttl(mode, ttl)
        acl = OPEN_ACL_UNSAFE if acl is None else acl
        ops.check_acl(acl)
        rec = ops.create_record(self._chroot.to_server(path), data, acl, mode, ttl)
        return await self._call(ops.create_opcode(mode, False), rec, ops.finish_create, (path, self._chroot))

    async def create2(self, path: str, data: bytes | None = b"", acl: Sequence[ACL] | None = None,
                      mode: CreateMode = CreateMode.PERSISTENT, ttl: int | None = None) -> tuple[str, Stat]:
        """Like :meth:`create`, also returning the new node's Stat (create2 / createTTL / createContainer)."""
        mode = CreateMode(mode)
        validate_path(path, mode.is_sequential)
        ops.check_ttl(mode, ttl)
        acl = OPEN_ACL_UNSAFE if acl is None else acl
        ops.check_acl(acl)
        rec = ops.create_record(self._chroot.to_server(path), data, acl, mode, ttl)
        return await self._call(ops.create_opcode(mode, True), rec, ops.finish_create2, (path, self._chroot))

    async def delete(self, path: str, version: int = -1) -> None:
        validate_path(path)
        # As the Java client: "/" is never chrooted, so deleting it fails even in a chroot.
        server_path = path if path == "/" else self._chroot.to_server(path)
        await self._call(OpCode.delete, DeleteRequest(server_path, version), ops.finish_void, path)

    async def set_data(self, path: str, data: bytes | None, version: int = -1) -> Stat:
        validate_path(path)
        rec = SetDataRequest(self._chroot.to_server(path), data, version)
        return await self._call(OpCode.setData, rec, ops.finish_stat, path)

    async def set_acl(self, path: str, acl: Sequence[ACL], version: int = -1) -> Stat:
        validate_path(path)
        ops.check_acl(acl)
        rec = SetACLRequest(self._chroot.to_server(path), list(acl), version)
        return await self._call(OpCode.setACL, rec, ops.finish_stat, path)

    async def check(self, path: str, version: int) -> None:
        """Raise BadVersionError unless ``path`` has ``version`` (NoNodeError if missing).

        Sent as a one-op transaction: Apache 3.8 answers a successful standalone check
        (opcode 13) with nothing at all (a NullPointerException in FinalRequestProcessor).
        """
        try:
            await self.multi([ops.Check(path, version)])
        except ZooKeeperError as e:
            raise error_for_code(e.code, path) from None

    # ------------------------------------------------------------ reads

    async def exists(self, path: str, watch: WatchArg = None) -> Stat | None:
        """The Stat, or None; a watch is set either way (for creation when missing)."""
        validate_path(path)
        w = self._watcher(watch)
        rec = ExistsRequest(self._chroot.to_server(path), w is not None)
        return await self._call(OpCode.exists, rec, ops.finish_exists, (path, self._session.registry, w))

    async def get_data(self, path: str, watch: WatchArg = None) -> tuple[bytes | None, Stat]:
        validate_path(path)
        w = self._watcher(watch)
        rec = GetDataRequest(self._chroot.to_server(path), w is not None)
        return await self._call(OpCode.getData, rec, ops.finish_get_data, (path, self._session.registry, w))

    async def get_children(self, path: str, watch: WatchArg = None) -> list[str]:
        validate_path(path)
        w = self._watcher(watch)
        rec = GetChildrenRequest(self._chroot.to_server(path), w is not None)
        return await self._call(OpCode.getChildren, rec, ops.finish_get_children,
                                (path, self._session.registry, w))

    async def get_children2(self, path: str, watch: WatchArg = None) -> tuple[list[str], Stat]:
        """The children and the parent's Stat (getChildren2)."""
        validate_path(path)
        w = self._watcher(watch)
        rec = GetChildren2Request(self._chroot.to_server(path), w is not None)
        return await self._call(OpCode.getChildren2, rec, ops.finish_get_children2,
                                (path, self._session.registry, w))

    async def get_acl(self, path: str) -> tuple[list[ACL], Stat]:
        validate_path(path)
        rec = GetACLRequest(self._chroot.to_server(path))
        return await self._call(OpCode.getACL, rec, _finish_get_acl, path)

    async def sync(self, path: str) -> str:
        """Make the connected server catch up with the leader; the path synced."""
        validate_path(path)
        return await self._call(OpCode.sync, SyncRequest(self._chroot.to_server(path)), _finish_sync,
                                (path, self._chroot))

    async def get_ephemerals(self, prefix: str = "/") -> list[str]:
        """This session's ephemeral nodes under ``prefix`` (paths relative to the chroot)."""
        validate_path(prefix)
        # Unlike the Java client (which sends the prefix unchrooted), stay inside the chroot.
        rec = GetEphemeralsRequest(self._chroot.to_server(prefix))
        return await self._call(OpCode.getEphemerals, rec, _finish_ephemerals, (prefix, self._chroot))

    async def get_all_children_number(self, path: str) -> int:
        validate_path(path)
        rec = GetAllChildrenNumberRequest(self._chroot.to_server(path))
        return await self._call(OpCode.getAllChildrenNumber, rec, _finish_all_children_number, path)

    async def get_config(self, watch: WatchArg = None) -> tuple[bytes | None, Stat]:
        """The ensemble configuration (/zookeeper/config, never chrooted)."""
        w = self._watcher(watch)
        rec = GetDataRequest(CONFIG_NODE, w is not None)
        return await self._call(OpCode.getData, rec, ops.finish_get_data,
                                (CONFIG_NODE, self._session.registry, w))

    async def whoami(self) -> list[ClientInfo]:
        """The identities the server associates with this session (authScheme, user)."""
        return await self._call(OpCode.whoAmI, None, _finish_whoami, None)

    async def reconfig(self, joining: str | None = None, leaving: str | None = None,
                       new_members: str | None = None, from_config: int = -1) -> tuple[bytes | None, Stat]:
        """Change the ensemble (ZooKeeperAdmin.reconfigure); the new config data and Stat."""
        rec = ReconfigRequest(joining, leaving, new_members, from_config)
        return await self._call(OpCode.reconfig, rec, ops.finish_get_data,
                                (CONFIG_NODE, self._session.registry, None))

    # ------------------------------------------------------------ multi

    async def multi(self, operations: Iterable[Op]) -> list[OpResult]:
        """Run write ops atomically, or read ops (GetData/GetChildren) together.

        A failed transaction raises the first failing op's error, with ``.results`` holding
        one result per op (ErrorResult for the failed and the rolled-back ones).
        """
        op_list = list(operations)
        if not op_list:
            return []
        kinds = {op.is_read for op in op_list}
        if len(kinds) > 1:
            raise ValueError("Mixing different kind of ops")
        for op in op_list:
            op.validate()
        is_read = kinds.pop()
        body = bytearray()
        encode_multi_request([op.to_request(self._chroot) for op in op_list], body)
        opcode = OpCode.multiRead if is_read else OpCode.multi
        return await self._call(opcode, _Raw(body), ops.finish_multi, (self._chroot, is_read))

    async def multi_read(self, operations: Iterable[Op]) -> list[OpResult]:
        """Read ops in one round trip; a failed read is an ErrorResult, not an exception."""
        op_list = list(operations)
        if not all(op.is_read for op in op_list):
            raise ValueError("multi_read takes only GetData and GetChildren ops")
        return await self.multi(op_list)

    def transaction(self) -> Transaction:
        return Transaction(self)

    # ------------------------------------------------------------ watches

    async def add_watch(self, path: str, mode: AddWatchMode = AddWatchMode.PERSISTENT_RECURSIVE,
                        watcher: Watcher | bool = True) -> None:
        """A watch that stays until removed: on ``path`` (PERSISTENT) or its subtree (RECURSIVE)."""
        validate_path(path)
        mode = AddWatchMode(mode)
        w = self._watcher(watcher)
        if w is None:
            raise ValueError("add_watch needs a watcher")
        kind = WatchKind.PERSISTENT if mode is AddWatchMode.PERSISTENT else WatchKind.PERSISTENT_RECURSIVE
        rec = AddWatchRequest(self._chroot.to_server(path), int(mode))
        await self._call(OpCode.addWatch, rec, ops.finish_add_watch, (path, self._session.registry, w, kind))

    async def remove_watches(self, path: str, watcher_type: WatcherType = WatcherType.Any,
                             local: bool = False) -> None:
        """Remove every watch of ``watcher_type`` on ``path`` (removeAllWatches).

        With ``local`` the local watchers go even when the server cannot be told.
        """
        await self._remove(OpCode.removeWatches, path, None, watcher_type, local)

    async def remove_watcher(self, path: str, watcher: Watcher | bool,
                             watcher_type: WatcherType = WatcherType.Any, local: bool = False) -> None:
        """Remove one watcher from ``path`` (ZooKeeper.removeWatches with a watcher)."""
        w = self._watcher(watcher)
        await self._remove(OpCode.checkWatches, path, w, watcher_type, local)

    async def check_watches(self, path: str, watcher_type: WatcherType = WatcherType.Any) -> None:
        """Raise NoWatcherError unless the server holds a watch of this type for this session."""
        validate_path(path)
        rec = CheckWatchesRequest(self._chroot.to_server(path), int(WatcherType(watcher_type)))
        await self._call(OpCode.checkWatches, rec, ops.finish_void, path)

    async def _remove(self, opcode: int, path: str, watcher: Watcher | None, wtype: WatcherType,
                      local: bool) -> None:
        validate_path(path)
        wtype = WatcherType(wtype)
        s = self._session
        ctx = (path, watcher, wtype, local, s)
        if local and not s.state.is_connected:
            _finish_remove(ConnectionLossError.code, b"", 0, ctx)
            return
        cls = RemoveWatchesRequest if opcode == OpCode.removeWatches else CheckWatchesRequest
        rec = cls(self._chroot.to_server(path), int(wtype))
        await self._call(opcode, rec, _finish_remove, ctx)

    # ------------------------------------------------------------ auth

    async def add_auth(self, scheme: str, credential: bytes | str | None) -> None:
        """Add credentials (e.g. "digest", b"user:pw"); re-sent on every reconnect.

        A refused credential raises AuthFailedError and ends the session, as in ZooKeeper.
        """
        if isinstance(credential, str):
            credential = credential.encode()
        await self._session.add_auth(scheme, credential)


# ------------------------------------------------------------------ finishers used only here


def _finish_get_acl(err: int, body: bytes, pos: int, path: Any) -> tuple[list[ACL], Stat]:
    if err:
        raise error_for_code(err, path)
    resp = GetACLResponse.decode_from(body, pos)[0]
    return resp.acl or [], resp.stat


def _finish_sync(err: int, body: bytes, pos: int, ctx: Any) -> str:
    path, chroot = ctx
    if err:
        raise error_for_code(err, path)
    return chroot.to_client(SyncResponse.decode_from(body, pos)[0].path)


def _finish_ephemerals(err: int, body: bytes, pos: int, ctx: Any) -> list[str]:
    path, chroot = ctx
    if err:
        raise error_for_code(err, path)
    paths = GetEphemeralsResponse.decode_from(body, pos)[0].ephemerals or []
    return [chroot.to_client(p) for p in paths]


def _finish_all_children_number(err: int, body: bytes, pos: int, path: Any) -> int:
    if err:
        raise error_for_code(err, path)
    return GetAllChildrenNumberResponse.decode_from(body, pos)[0].totalNumber


def _finish_whoami(err: int, body: bytes, pos: int, ctx: Any) -> list[ClientInfo]:
    if err:
        raise error_for_code(err)
    return WhoAmIResponse.decode_from(body, pos)[0].clientInfo or []


def _finish_remove(err: int, body: bytes, pos: int, ctx: Any) -> None:
    path, watcher, wtype, local, session = ctx
    removed = session.registry.remove(path, watcher, wtype, local, err)
    for etype, watchers in removed.items():
        deliver(watchers, _removed_event(etype, path))


def _removed_event(etype: EventType, path: str) -> WatchedEvent:
    return WatchedEvent(etype, KeeperState.SyncConnected, path)


class Transaction:
    """Collects write ops and commits them atomically (ZooKeeper's Transaction)."""

    __slots__ = ("_client", "_ops")

    def __init__(self, client: ZooKeeperClient) -> None:
        self._client = client
        self._ops: list[Op] = []

    def create(self, path: str, data: bytes | None = b"", acl: Sequence[ACL] | None = None,
               mode: CreateMode = CreateMode.PERSISTENT, ttl: int | None = None) -> Transaction:
        self._ops.append(ops.Create(path, data, acl, CreateMode(mode), ttl))
        return self

    def delete(self, path: str, version: int = -1) -> Transaction:
        self._ops.append(ops.Delete(path, version))
        return self

    def set_data(self, path: str, data: bytes | None, version: int = -1) -> Transaction:
        self._ops.append(ops.SetData(path, data, version))
        return self

    def check(self, path: str, version: int) -> Transaction:
        self._ops.append(ops.Check(path, version))
        return self

    async def commit(self) -> list[OpResult]:
        return await self._client.multi(self._ops)


async def connect(hosts: str, session_timeout_ms: int = 30_000, timeout_s: float | None = None,
                  **kwargs: Any) -> ZooKeeperClient:
    """A started client: ``zk = await connect("127.0.0.1:2181/app")``."""
    return await ZooKeeperClient(hosts, session_timeout_ms, **kwargs).start(timeout_s)


