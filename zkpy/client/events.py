"""What a client reports: connection states, watch events and an async event queue."""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from zkpy.proto.constants import EventType, KeeperState

__all__ = ["ClientState", "EventQueue", "WatchedEvent", "Watcher"]


class ClientState(enum.Enum):
    """The client's view of its connection and session.

    CONNECTING: no session yet.  CONNECTED / CONNECTED_READ_ONLY: serving.
    SUSPENDED: the connection dropped; the session may still be alive and the client is
    reconnecting.  LOST: still no connection after a whole session timeout, so the
    session has most likely expired (the client keeps trying; the server decides).
    EXPIRED / AUTH_FAILED / CLOSED: the session is over and the client is dead.
    """

    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    CONNECTED_READ_ONLY = "CONNECTED_READ_ONLY"
    SUSPENDED = "SUSPENDED"
    LOST = "LOST"
    EXPIRED = "EXPIRED"
    AUTH_FAILED = "AUTH_FAILED"
    CLOSED = "CLOSED"

    @property
    def is_connected(self) -> bool:
        return self in (ClientState.CONNECTED, ClientState.CONNECTED_READ_ONLY)

    @property
    def is_alive(self) -> bool:
        """False once the session is over for good (Java's ``States.isAlive``)."""
        return self not in (ClientState.EXPIRED, ClientState.AUTH_FAILED, ClientState.CLOSED)

    @property
    def keeper_state(self) -> KeeperState | None:
        """The KeeperState of the WatchedEvent a Java client delivers for this change."""
        return _KEEPER_STATE.get(self)


_KEEPER_STATE = {
    ClientState.CONNECTED: KeeperState.SyncConnected,
    ClientState.CONNECTED_READ_ONLY: KeeperState.ConnectedReadOnly,
    ClientState.SUSPENDED: KeeperState.Disconnected,
    ClientState.EXPIRED: KeeperState.Expired,
    ClientState.AUTH_FAILED: KeeperState.AuthFailed,
    ClientState.CLOSED: KeeperState.Closed,
}


@dataclass(frozen=True, slots=True)
class WatchedEvent:
    """A watch notification or a connection-state event (type None_, path None)."""

    type: EventType
    state: KeeperState
    path: str | None

    def __str__(self) -> str:
        # The Java client's WatchedEvent.toString, which zkCli prints.
        type_name = "None" if self.type is EventType.None_ else self.type.name
        path = "null" if self.path is None else self.path
        return f"WatchedEvent state:{self.state.name} type:{type_name} path:{path}"


# A watcher is called with each event; it may return an awaitable, which is scheduled.
Watcher = Callable[[WatchedEvent], "Awaitable[None] | None"]


class EventQueue:
    """A watcher that queues its events for ``async for`` (or ``await get()``).

    Pass it wherever a watcher is accepted.  Iteration ends after the session ends
    (an Expired, Closed or AuthFailed event is still delivered first).  ``maxlen``
    bounds memory: the oldest events are dropped beyond it.
    """

    __slots__ = ("_ended", "_events", "_waiter")

    def __init__(self, maxlen: int = 10_000) -> None:
        self._events: deque[WatchedEvent] = deque(maxlen=maxlen)
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False

    def __call__(self, event: WatchedEvent) -> None:
        if self._ended:
            return
        self._events.append(event)
        if event.type is EventType.None_ and event.state in _FINAL_STATES:
            self._ended = True
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __len__(self) -> int:
        return len(self._events)

    async def get(self) -> WatchedEvent:
        """The next event; raises StopAsyncIteration once the session has ended and all are read."""
        while not self._events:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._events.popleft()

    def __aiter__(self) -> EventQueue:
        return self

    async def __anext__(self) -> WatchedEvent:
        return await self.get()


_FINAL_STATES = (KeeperState.Expired, KeeperState.Closed, KeeperState.AuthFailed)
