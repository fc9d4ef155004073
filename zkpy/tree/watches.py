"""Watches: who is told about which change, and when a one-time watch is used up.

Two tables as in ZooKeeper, one for data/exists watches and one for child
watches; persistent and persistent-recursive watches (addWatch) sit in both.
A watcher is any object with ``send_event(event_type, path)`` (a server
connection).  This module owns the watch state; the tree reports changes to
:class:`Watches` through the TreeListener methods.

One deliberate difference from 3.8.0 (ZOOKEEPER-4466): a one-time watch and a
persistent watch by the same client on the same path coexist, each keeps its
own semantics, instead of the later one silently replacing the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import Protocol

from zkpy.proto.constants import AddWatchMode, EventType, WatcherType

STANDARD, PERSISTENT, RECURSIVE = 1, 2, 4
# Plain ints: an IntEnum member costs a metaclass attribute lookup, on every write.
_CHILDREN_CHANGED = int(EventType.NodeChildrenChanged)
_CREATED, _DELETED = int(EventType.NodeCreated), int(EventType.NodeDeleted)
_DATA_CHANGED = int(EventType.NodeDataChanged)


class Watcher(Protocol):
    def send_event(self, event_type: int, path: str) -> None: ...


_NO_WATCHERS: frozenset[Watcher] = frozenset()


class WatchTable:
    """path -> {watcher: mode bits}, and its inverse for cleanup."""

    __slots__ = ("by_path", "by_watcher", "recursive_count")

    def __init__(self) -> None:
        self.by_path: dict[str, dict[Watcher, int]] = {}
        self.by_watcher: dict[Watcher, set[str]] = {}
        self.recursive_count = 0

    def add(self, path: str, watcher: Watcher, mode: int) -> None:
        entry = self.by_path.get(path)
        if entry is None:
            entry = self.by_path[path] = {}
        old = entry.get(watcher, 0)
        if mode == STANDARD:
            new = old | STANDARD
        else:
            # addWatch replaces a persistent mode with the other; a pending one-time watch stays.
            new = (old & STANDARD) | mode
        if new & RECURSIVE and not old & RECURSIVE:
            self.recursive_count += 1
        elif old & RECURSIVE and not new & RECURSIVE:
            self.recursive_count -= 1
        entry[watcher] = new
        paths = self.by_watcher.get(watcher)
        if paths is None:
            paths = self.by_watcher[watcher] = set()
        paths.add(path)

    def _drop(self, path: str, watcher: Watcher, entry: dict[Watcher, int]) -> None:
        mode = entry.pop(watcher, 0)
        if mode & RECURSIVE:
            self.recursive_count -= 1
        if not entry:
            del self.by_path[path]
        paths = self.by_watcher.get(watcher)
        if paths is not None:
            paths.discard(path)
            if not paths:
                del self.by_watcher[watcher]

    def remove(self, path: str, watcher: Watcher) -> bool:
        entry = self.by_path.get(path)
        if entry is None or watcher not in entry:
            return False
        self._drop(path, watcher, entry)
        return True

    def remove_watcher(self, watcher: Watcher) -> None:
        for path in self.by_watcher.pop(watcher, ()):
            entry = self.by_path.get(path)
            if entry is not None:
                mode = entry.pop(watcher, 0)
                if mode & RECURSIVE:
                    self.recursive_count -= 1
                if not entry:
                    del self.by_path[path]

    def contains(self, path: str, watcher: Watcher) -> bool:
        entry = self.by_path.get(path)
        return entry is not None and watcher in entry

    def trigger(self, path: str, event_type: int,
                suppress: AbstractSet[Watcher] | None = None) -> AbstractSet[Watcher]:
        """Fire ``event_type`` for ``path``; returns the watchers it matched (fired or suppressed)."""
        by_path = self.by_path
        entry = by_path.get(path)
        if entry is None and not self.recursive_count:
            return _NO_WATCHERS  # the common case: nobody watches
        matched: set[Watcher] = set()
        if entry is not None:
            used: list[Watcher] = []
            for watcher, mode in entry.items():
                if mode & (STANDARD | PERSISTENT) or event_type != _CHILDREN_CHANGED:
                    matched.add(watcher)
                if mode & STANDARD:
                    used.append(watcher)
            for watcher in used:
                mode = entry[watcher] & ~STANDARD
                if mode:
                    entry[watcher] = mode
                else:
                    self._drop(path, watcher, entry)
        if self.recursive_count and event_type != _CHILDREN_CHANGED:
            p = path
            while p != "/":
                p = p[: p.rfind("/")] or "/"
                entry = by_path.get(p)
                if entry is not None:
                    for watcher, mode in entry.items():
                        if mode & RECURSIVE:
                            matched.add(watcher)
        if matched:
            for watcher in matched:
                if suppress is None or watcher not in suppress:
                    watcher.send_event(event_type, path)
        return matched

    def count(self) -> int:
        return sum(len(e) for e in self.by_path.values())


class Watches:
    """The server's watches: registration, triggering on tree changes, reports for 4lw."""

    def __init__(self) -> None:
        self.data = WatchTable()
        self.child = WatchTable()

    # ---------------------------------------------------------------- TreeListener

    def node_created(self, path: str) -> None:
        self.data.trigger(path, _CREATED)
        self.child.trigger(path[: path.rfind("/")] or "/", _CHILDREN_CHANGED)

    def node_deleted(self, path: str) -> None:
        fired = self.data.trigger(path, _DELETED)
        self.child.trigger(path, _DELETED, fired)
        self.child.trigger(path[: path.rfind("/")] or "/", _CHILDREN_CHANGED)

    def data_changed(self, path: str) -> None:
        self.data.trigger(path, _DATA_CHANGED)

    # ---------------------------------------------------------------- registration

    def add_data_watch(self, path: str, watcher: Watcher) -> None:
        self.data.add(path, watcher, STANDARD)

    def add_child_watch(self, path: str, watcher: Watcher) -> None:
        self.child.add(path, watcher, STANDARD)

    def add_persistent(self, path: str, watcher: Watcher, mode: int) -> None:
        bits = RECURSIVE if mode == AddWatchMode.PERSISTENT_RECURSIVE else PERSISTENT
        self.child.add(path, watcher, bits)
        self.data.add(path, watcher, bits)

    def remove(self, path: str, kind: int, watcher: Watcher) -> bool:
        """removeWatches: True when a watch of that kind was there."""
        removed = False
        if kind in (WatcherType.Children, WatcherType.Any) and self.child.remove(path, watcher):
            removed = True
        if kind in (WatcherType.Data, WatcherType.Any) and self.data.remove(path, watcher):
            removed = True
        return removed

    def contains(self, path: str, kind: int, watcher: Watcher) -> bool:
        if kind in (WatcherType.Children, WatcherType.Any) and self.child.contains(path, watcher):
            return True
        return kind in (WatcherType.Data, WatcherType.Any) and self.data.contains(path, watcher)

    def remove_watcher(self, watcher: Watcher) -> None:
        self.data.remove_watcher(watcher)
        self.child.remove_watcher(watcher)

    def count(self) -> int:
        return self.data.count() + self.child.count()

    def paths_of(self, watcher: Watcher) -> Iterable[str]:
        return set(self.data.by_watcher.get(watcher, ())) | set(self.child.by_watcher.get(watcher, ()))
