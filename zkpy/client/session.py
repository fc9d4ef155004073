"""The session: which server to talk to, and keeping one session alive across connections.

A :class:`Session` owns the session id and password, the last zxid seen, the client
state, the auth credentials and the watch registry.  One task per session runs the
connect loop (the only task it creates): pick a server, connect, handshake with the
session id and last zxid, re-send credentials and watches, serve until the connection
drops, repeat.  Requests do not go through a task: callers write straight into the
live :class:`Connection` and await a future.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from zkpy.client.connection import MAX_FRAME_BYTES_DEFAULT, Connection
from zkpy.client.events import ClientState, WatchedEvent, Watcher
from zkpy.client.hosts import ConnectString, HostProvider
from zkpy.client.watches import WatchKind, WatchRegistry
from zkpy.proto.constants import EventType, KeeperState, OpCode, Xid
from zkpy.proto.errors import (
    AuthFailedError,
    ConnectionLossError,
    SessionExpiredError,
    ZooKeeperError,
    error_for_code,
)
from zkpy.proto.records import AuthPacket, ConnectRequest, SetWatches, SetWatches2, WatcherEvent

log = logging.getLogger(__name__)

__all__ = ["Session", "StateListener"]

StateListener = Callable[[ClientState], None]

# ClientCnxn.SET_WATCHES_MAX_LENGTH: re-registered watches go in batches of about this
# many path characters, so one SetWatches never nears the server's jute.maxbuffer.
SET_WATCHES_MAX_LENGTH = 128 * 1024
_AUTH_FAILED = AuthFailedError.code
_EMPTY_PASSWORD = bytes(16)


def _finish_set_watches(err: int, body: bytes, pos: int, ctx: Any) -> None:
    if err and err != ConnectionLossError.code:
        log.warning("setWatches failed with error %d", err)


def _finish_void(err: int, body: bytes, pos: int, ctx: Any) -> None:
    if err:
        raise error_for_code(err, ctx)


# Tasks of coroutine watchers, held until done so they are not garbage-collected mid-run.
_watcher_tasks: set[asyncio.Future[Any]] = set()


def deliver(watchers: Iterable[Watcher], event: WatchedEvent) -> None:
    """Call each watcher; a coroutine it returns runs as a task; its errors are logged."""
    for w in watchers:
        try:
            r = w(event)
            if r is not None and inspect.isawaitable(r):
                task = asyncio.ensure_future(r)
                _watcher_tasks.add(task)
                task.add_done_callback(_watcher_tasks.discard)
        except Exception:
            log.exception("watcher %r failed on %s", w, event)


class Session:
    """Connects, re-connects and keeps the session; see the module docstring."""

    def __init__(
        self,
        connect: ConnectString,
        session_timeout_ms: int = 30_000,
        *,
        can_be_read_only: bool = False,
        session_id: int = 0,
        session_password: bytes | None = None,
        max_in_flight: int = 1000,
        default_watcher: Watcher | None = None,
        reconnect_pause_s: float = 1.0,
        reconnect_jitter_s: float = 1.0,
        max_frame_bytes: int = MAX_FRAME_BYTES_DEFAULT,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.chroot = connect.chroot
        self.hosts = HostProvider(connect.hosts)
        self.session_timeout_ms = session_timeout_ms
        self.can_be_read_only = can_be_read_only
        self.session_id = session_id
        self.session_password = session_password or _EMPTY_PASSWORD
        # A caller-supplied session is one a read/write server made (ZooKeeper's constructor
        # sets seenRwServerBefore for it); a read-only server's session is never re-attached.
        self._seen_rw = bool(session_id)
        self.negotiated_timeout_ms = 0
        self.last_zxid = 0
        self.max_in_flight = max_in_flight
        self.default_watcher = default_watcher
        self.reconnect_pause_s = reconnect_pause_s
        self.reconnect_jitter_s = reconnect_jitter_s
        self.max_frame_bytes = max_frame_bytes
        self.state = ClientState.CONNECTING
        self.registry = WatchRegistry()
        self.conn: Connection | None = None
        self.server: tuple[str, int] | None = None
        self._auth: list[tuple[str, bytes | None]] = []
        self._auth_waiters: deque[asyncio.Future[None] | None] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._reserved = 0  # window slots granted to woken waiters that have not sent yet
        self._listeners: list[StateListener] = []
        self._task: asyncio.Task[None] | None = None
        self._conn_done: asyncio.Future[None] | None = None
        self._lost_timer: asyncio.TimerHandle | None = None
        self._rw_task: asyncio.Task[None] | None = None
        self._rw_server: tuple[str, int] | None = None
        self._closing = False
        self._connected_once = False

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None:
            return
        self._arm_lost_timer(self.session_timeout_ms / 1000)
        self._task = loop.create_task(self._run(), name="zkpy-session")

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Until the session is connected; raises its error once the session is over."""
        async def wait() -> None:
            while not self.state.is_connected:
                self._check_alive()
                if self.state is ClientState.LOST and not self._connected_once:
                    raise ConnectionLossError(detail="no server could be reached")
                fut = asyncio.get_running_loop().create_future()
                self._listeners.append(_one_shot(fut))
                await fut
        await asyncio.wait_for(wait(), timeout_s)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Close the session (closeSession), then the connection; idempotent."""
        if not self.state.is_alive or self._closing:
            if self._task is not None:
                await _reap(self._task)
            return
        self._closing = True
        conn = self.conn
        if conn is not None and not conn.closed and self.state.is_connected:
            fut = conn.send(OpCode.closeSession, None, _finish_void, None)
            try:
                await asyncio.wait_for(fut, timeout_s)
            except (ZooKeeperError, TimeoutError):
                pass
        if conn is not None:
            conn.close_gracefully()
        self._end(ClientState.CLOSED)
        if self._task is not None:
            self._task.cancel()
            await _reap(self._task)

    # ------------------------------------------------------------ listeners and events

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: StateListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def call_default_watcher(self, event: WatchedEvent) -> Any:
        """Stands for ``watch=True`` in the registry, so the default watcher can change."""
        w = self.default_watcher
        if w is not None:
            return w(event)
        return None

    def _set_state(self, state: ClientState) -> None:
        if state is self.state:
            return
        self.state = state
        for listener in list(self._listeners):
            try:
                if listener(state) is _REMOVE:
                    self._listeners.remove(listener)
            except Exception:
                log.exception("state listener %r failed", listener)
        ks = state.keeper_state
        if ks is not None:
            # Like the Java client: a connection event goes to the default watcher and to
            # every registered watcher.
            watchers = self.registry.all_watchers()
            watchers.add(self.call_default_watcher)
            deliver(watchers, WatchedEvent(EventType.None_, ks, None))

    # ------------------------------------------------------------ sending

    def _check_alive(self) -> None:
        state = self.state
        if state.is_alive and not self._closing:
            return
        if state is ClientState.AUTH_FAILED:
            raise AuthFailedError()
        raise SessionExpiredError()

    @property
    def ready(self) -> bool:
        """True when a request can be written now without exceeding the in-flight window."""
        conn = self.conn
        return (conn is not None and not self._waiters and self.state.is_connected
                and len(conn.pending) + self._reserved < self.max_in_flight)

    async def wait_ready(self) -> Connection:
        """Wait, in arrival order, for a connection with room; the caller must send at once.

        A waiter is woken with a slot of the window reserved for it, so waking never
        overshoots the window and nobody overtakes an earlier waiter.
        """
        loop = asyncio.get_running_loop()
        front = False
        while True:
            self._check_alive()
            if self.state is ClientState.LOST:
                raise _lost_error()
            fut = loop.create_future()
            if front:
                self._waiters.appendleft(fut)
            else:
                self._waiters.append(fut)
            self._wake()
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    self._reserved -= 1  # granted, but the caller gave up: pass the slot on
                    self._wake()
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(fut)
                raise
            self._reserved -= 1
            conn = self.conn
            if conn is not None and self.state.is_connected:
                return conn
            front = True  # the connection went while we were being woken: keep our place

    def _wake(self) -> None:
        """Grant free window slots to the waiters at the head of the queue."""
        conn = self.conn
        if conn is None or not self.state.is_connected:
            return
        room = self.max_in_flight - len(conn.pending) - self._reserved
        waiters = self._waiters
        while room > 0 and waiters:
            fut = waiters.popleft()
            if fut.done():
                continue
            fut.set_result(None)
            self._reserved += 1
            room -= 1

    def _fail_waiters(self, exc_factory: Callable[[], BaseException]) -> None:
        waiters = self._waiters
        self._waiters = deque()
        for fut in waiters:
            if not fut.done():
                fut.set_exception(exc_factory())

    def on_window_open(self) -> None:
        if self._waiters:
            self._wake()

    # ------------------------------------------------------------ auth

    async def add_auth(self, scheme: str, auth: bytes | None) -> None:
        """Send credentials now and on every reconnect; AuthFailed ends the session."""
        conn = await self.wait_ready()
        self._auth.append((scheme, auth))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._auth_waiters.append(fut)
        conn.send_unmatched(Xid.AUTH, OpCode.auth, AuthPacket(0, scheme, auth))
        await fut

    def on_auth_reply(self, err: int) -> None:
        fut = self._auth_waiters.popleft() if self._auth_waiters else None
        if err == _AUTH_FAILED:
            if fut is not None and not fut.done():
                fut.set_exception(AuthFailedError())
            self._end(ClientState.AUTH_FAILED)
            return
        if fut is not None and not fut.done():
            if err:
                fut.set_exception(error_for_code(err))
            else:
                fut.set_result(None)

    # ------------------------------------------------------------ notifications

    def on_notification(self, ev: WatcherEvent) -> None:
        path = self.chroot.to_client(ev.path) if self.chroot else ev.path
        try:
            etype = EventType(ev.type)
            kstate = KeeperState(ev.state)
        except ValueError:
            log.warning("unknown watch event %r", ev)
            return
        watchers = self.registry.materialize(etype, path)
        if watchers:
            deliver(watchers, WatchedEvent(etype, kstate, path))

    # ------------------------------------------------------------ the connect loop

    async def _run(self) -> None:
        first = True
        try:
            while self.state.is_alive and not self._closing:
                if self._rw_server is not None:
                    addr, wrapped = self._rw_server, False
                    self._rw_server = None
                else:
                    addr, wrapped = self.hosts.next()
                if wrapped:
                    await asyncio.sleep(self.reconnect_pause_s)
                elif not first and self.reconnect_jitter_s > 0:
                    await asyncio.sleep(random.uniform(0, self.reconnect_jitter_s))
                first = False
                if not self.state.is_alive or self._closing:
                    return
                conn = await self._connect(addr)
                if conn is None:
                    continue
                assert self._conn_done is not None
                await self._conn_done
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("session loop failed")
            self._end(ClientState.CLOSED)

    async def _connect(self, addr: tuple[str, int]) -> Connection | None:
        loop = asyncio.get_running_loop()
        timeout_s = self._connect_timeout_s()
        deadline = loop.time() + timeout_s
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: Connection(loop, self.max_frame_bytes), addr[0], addr[1]),
                timeout_s)
        except (OSError, TimeoutError) as e:
            log.info("connect to %s:%s failed: %s", addr[0], addr[1], e)
            return None
        request = ConnectRequest(0, self.last_zxid, self.session_timeout_ms,
                                 self.session_id if self._seen_rw else 0, self.session_password)
        try:
            resp, read_only = await conn.handshake(request, self.can_be_read_only,
                                                   max(deadline - loop.time(), 0.001))
        except (ConnectionError, TimeoutError, OSError) as e:
            # A server behind our last zxid, or one not serving yet, closes without a reply.
            log.info("handshake with %s:%s failed: %s", addr[0], addr[1], e)
            conn.abort("handshake failed")
            return None
        if self._closing:
            conn.abort("closing")
            return None
        if resp.timeOut <= 0:
            conn.abort("session expired")
            log.warning("Unable to reconnect, session 0x%x has expired", self.session_id)
            self._end(ClientState.EXPIRED)
            return None
        self.negotiated_timeout_ms = resp.timeOut
        self.session_id = resp.sessionId
        self.session_password = resp.passwd or _EMPTY_PASSWORD
        self._seen_rw |= not read_only
        self.hosts.on_connected()
        self.server = addr
        self.conn = conn
        self._conn_done = loop.create_future()
        conn.activate(self, resp.timeOut * 2 / 3 / 1000, self.max_in_flight)
        self._prime(conn)
        self._connected_once = True
        self._disarm_lost_timer()
        self._set_state(ClientState.CONNECTED_READ_ONLY if read_only else ClientState.CONNECTED)
        if read_only and len(self.hosts) > 1:
            self._rw_task = loop.create_task(self._seek_rw_server(conn), name="zkpy-rw-seek")
        self._wake()
        return conn

    def _connect_timeout_s(self) -> float:
        timeout_ms = self.negotiated_timeout_ms or self.session_timeout_ms
        return max(timeout_ms / len(self.hosts) / 1000, 0.1)

    def _prime(self, conn: Connection) -> None:
        """Re-send credentials and watches on a new connection, before any request."""
        for scheme, auth in self._auth:
            self._auth_waiters.append(None)
            conn.send_unmatched(Xid.AUTH, OpCode.auth, AuthPacket(0, scheme, auth))
        reg = self.registry
        if not len(reg):
            return
        to_server = self.chroot.to_server
        lists = [[to_server(p) for p in reg.paths(kind)] for kind in WatchKind]
        for batch in _batches(lists):
            data, exist, child, persistent, recursive = batch
            if persistent or recursive:
                rec: SetWatches | SetWatches2 = SetWatches2(self.last_zxid, data, exist, child, persistent,
                                                            recursive)
                op = OpCode.setWatches2
            else:
                # Servers older than 3.6 know only setWatches: use it when it suffices.
                rec = SetWatches(self.last_zxid, data, exist, child)
                op = OpCode.setWatches
            conn.send_with(op, rec, _finish_set_watches, None, None, xid=Xid.SET_WATCHES)

    def on_connection_lost(self, conn: Connection, reason: str) -> None:
        if conn is not self.conn:
            return
        self.conn = None
        log.info("connection to %s lost: %s", self.server, reason)
        auth_waiters = self._auth_waiters
        self._auth_waiters = deque()
        for fut in auth_waiters:
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionLossError())
        if self._rw_task is not None:
            self._rw_task.cancel()
            self._rw_task = None
        if self._conn_done is not None and not self._conn_done.done():
            self._conn_done.set_result(None)
        if self.state.is_alive and not self._closing:
            self._set_state(ClientState.SUSPENDED)
            self._arm_lost_timer((self.negotiated_timeout_ms or self.session_timeout_ms) / 1000)

    # ------------------------------------------------------------ LOST and the end

    def _arm_lost_timer(self, delay_s: float) -> None:
        self._disarm_lost_timer()
        self._lost_timer = asyncio.get_running_loop().call_later(delay_s, self._on_lost_timeout)

    def _disarm_lost_timer(self) -> None:
        if self._lost_timer is not None:
            self._lost_timer.cancel()
            self._lost_timer = None

    def _on_lost_timeout(self) -> None:
        self._lost_timer = None
        if self.state.is_alive and not self.state.is_connected and not self._closing:
            self._set_state(ClientState.LOST)
            self._fail_waiters(_lost_error)

    def _end(self, state: ClientState) -> None:
        """The session is over: fail everything waiting and tell every watcher once."""
        if not self.state.is_alive:
            return
        self._disarm_lost_timer()
        if self._rw_task is not None:
            self._rw_task.cancel()
            self._rw_task = None
        conn = self.conn
        self.conn = None
        err = AuthFailedError if state is ClientState.AUTH_FAILED else SessionExpiredError
        if conn is not None:
            conn.abort(state.value, err.code)
        self._set_state(state)
        self.registry.clear()
        self._fail_waiters(err)
        for fut in self._auth_waiters:
            if fut is not None and not fut.done():
                fut.set_exception(err())
        self._auth_waiters.clear()
        if self._conn_done is not None and not self._conn_done.done():
            self._conn_done.set_result(None)

    # ------------------------------------------------------------ read-only mode

    async def _seek_rw_server(self, conn: Connection) -> None:
        """While on a read-only server, look for a read/write one (ClientCnxn.pingRwServer)."""
        delay_s = 0.1
        while self.conn is conn and not conn.closed:
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 60.0)
            addr, _ = self.hosts.next()
            if addr == self.server:
                continue
            if await _probe_rw(addr):
                log.info("read/write server found at %s:%s", *addr)
                self._rw_server = addr
                conn.abort("moving to a read/write server")
                return


async def _probe_rw(addr: tuple[str, int]) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(addr[0], addr[1]), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"isro")
        line = await asyncio.wait_for(reader.read(64), 1.0)
        return line.strip() == b"rw"
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


def _batches(lists: list[list[str]]) -> Iterable[list[list[str]]]:
    """Split the five watch lists into SetWatches-sized batches, in ClientCnxn's order."""
    iters = [iter(x) for x in lists]
    which = 0
    pending: str | None = None
    while True:
        batch: list[list[str]] = [[] for _ in lists]
        length = 0
        while length < SET_WATCHES_MAX_LENGTH:
            if pending is None:
                while which < len(iters):
                    pending = next(iters[which], None)
                    if pending is not None:
                        break
                    which += 1
                if pending is None:
                    break
            batch[which].append(pending)
            length += len(pending)
            pending = None
        if any(batch):
            yield batch
        if which >= len(iters):
            return


_REMOVE = object()


def _lost_error() -> ConnectionLossError:
    return ConnectionLossError(detail="no connection for a whole session timeout")


def _one_shot(fut: asyncio.Future[None]) -> StateListener:
    def listener(state: ClientState) -> object:
        if not fut.done():
            fut.set_result(None)
        return _REMOVE
    return listener


async def _reap(task: asyncio.Task[None]) -> None:
    if task is asyncio.current_task():
        return
    try:
        await task
    except asyncio.CancelledError:
        pass
