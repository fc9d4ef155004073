"""The client's watch registry: which local watchers wait on which path.

Mirrors ZKWatchManager: one-shot data / exist / child watches are removed as they
fire; persistent and persistent-recursive ones stay until removed.  Paths are client
paths (chroot already stripped).  The session owns one registry and is the only caller.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from zkpy.client.events import Watcher
from zkpy.proto.constants import EventType, WatcherType
from zkpy.proto.errors import NoWatcherError, error_for_code

__all__ = ["WatchKind", "WatchRegistry"]

_EMPTY: frozenset[Watcher] = frozenset()


class WatchKind(enum.IntEnum):
    DATA = 0
    EXIST = 1
    CHILD = 2
    PERSISTENT = 3
    PERSISTENT_RECURSIVE = 4


def _parents(path: str) -> Iterable[str]:
    """``path`` and each of its ancestors up to "/" (PathParentIterator.forAll)."""
    yield path
    while path != "/":
        cut = path.rfind("/")
        path = path[:cut] or "/"
        yield path


class WatchRegistry:
    __slots__ = ("_maps",)

    def __init__(self) -> None:
        self._maps: tuple[dict[str, set[Watcher]], ...] = tuple({} for _ in WatchKind)

    def add(self, kind: WatchKind, path: str, watcher: Watcher) -> None:
        self._maps[kind].setdefault(path, set()).add(watcher)

    def __len__(self) -> int:
        return sum(len(m) for m in self._maps)

    def paths(self, kind: WatchKind) -> list[str]:
        return list(self._maps[kind])

    def all_watchers(self) -> set[Watcher]:
        out: set[Watcher] = set()
        for m in self._maps:
            for ws in m.values():
                out |= ws
        return out

    def clear(self) -> None:
        for m in self._maps:
            m.clear()

    def materialize(self, etype: EventType, path: str) -> set[Watcher]:
        """The watchers an event on ``path`` goes to; one-shot ones are used up."""
        data, exist, child, persistent, recursive = self._maps
        out: set[Watcher] = set()
        if etype in (EventType.NodeDataChanged, EventType.NodeCreated):
            out |= data.pop(path, _EMPTY)
            out |= exist.pop(path, _EMPTY)
        elif etype is EventType.NodeChildrenChanged:
            out |= child.pop(path, _EMPTY)
        elif etype is EventType.NodeDeleted:
            out |= data.pop(path, _EMPTY)
            out |= exist.pop(path, _EMPTY)
            out |= child.pop(path, _EMPTY)
        else:
            return out
        if persistent:
            out |= persistent.get(path, _EMPTY)
        if recursive:
            for p in _parents(path):
                out |= recursive.get(p, _EMPTY)
        return out

    # ------------------------------------------------------------ removal (ZKWatchManager.removeWatcher)

    def contains(self, path: str, watcher: Watcher | None, wtype: WatcherType) -> bool:
        kinds = {
            WatcherType.Children: (WatchKind.CHILD, WatchKind.PERSISTENT, WatchKind.PERSISTENT_RECURSIVE),
            WatcherType.Data: (WatchKind.DATA, WatchKind.EXIST, WatchKind.PERSISTENT,
                               WatchKind.PERSISTENT_RECURSIVE),
        }.get(wtype, tuple(WatchKind))
        for k in kinds:
            ws = self._maps[k].get(path)
            if ws and (watcher is None or watcher in ws):
                return True
        return False

    def remove(
        self, path: str, watcher: Watcher | None, wtype: WatcherType, local: bool, rc: int
    ) -> dict[EventType, set[Watcher]]:
        """Apply a removeWatches / checkWatches reply ``rc``; the removed watchers by event type.

        Raises NoWatcherError when nothing matched, or the server's error when it refused and
        ``local`` is false.  With ``local`` the watchers go whatever the server said.
        """
        if not self.contains(path, watcher, wtype):
            raise NoWatcherError(path)
        if rc != 0 and not local:
            raise error_for_code(rc, path)
        removed: dict[EventType, set[Watcher]] = {
            EventType.ChildWatchRemoved: set(),
            EventType.DataWatchRemoved: set(),
            EventType.PersistentWatchRemoved: set(),
        }
        plan: list[tuple[WatchKind, EventType]]
        if wtype is WatcherType.Children:
            plan = [(WatchKind.CHILD, EventType.ChildWatchRemoved)]
        elif wtype is WatcherType.Data:
            plan = [(WatchKind.DATA, EventType.DataWatchRemoved),
                    (WatchKind.EXIST, EventType.DataWatchRemoved)]
        else:
            plan = [
                (WatchKind.CHILD, EventType.ChildWatchRemoved),
                (WatchKind.DATA, EventType.DataWatchRemoved),
                (WatchKind.EXIST, EventType.DataWatchRemoved),
                (WatchKind.PERSISTENT, EventType.PersistentWatchRemoved),
                (WatchKind.PERSISTENT_RECURSIVE, EventType.PersistentWatchRemoved),
            ]
        found = False
        for kind, etype in plan:
            m = self._maps[kind]
            if watcher is None:
                ws = m.pop(path, None)
                if ws:
                    removed[etype] |= ws
                    found = True
            else:
                ws = m.get(path)
                if ws and watcher in ws:
                    ws.discard(watcher)
                    if not ws:
                        del m[path]
                    removed[etype].add(watcher)
                    found = True
        if not found:
            raise NoWatcherError(path)
        return {k: v for k, v in removed.items() if v}
