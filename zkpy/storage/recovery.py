"""Start-up recovery: newest valid snapshot + the log entries after it (``FileTxnSnapLog.restore``).

Usage from the server (a worker thread, before serving)::

    rec = recover(cfg.data_dir, cfg.data_log_dir, load=tree_loader)
    for line in rec.report.lines():
        log.info("%s", line)
    for entry in rec.entries():          # raises StorageError: refuse to start
        tree.apply(entry.hdr, entry.txn)
    log.info("%s", rec.report.summary())  # now includes replay figures and the tear, if any

``load(reader)`` builds the caller's tree from a :class:`SnapshotReader`; if
it raises :class:`CorruptSnapshotError` (which ``reader.iter_nodes()`` does on
a bad checksum or a truncated file) the next older snapshot is tried, as
Apache does for the 100 most recent ones.  The loader must build a fresh tree
on every call.

What is refused (a :class:`StorageError` subclass whose message names the file):
snapshot files exist but none is readable; log entries exist but no snapshot
(unless ``trust_empty_snapshot``, Apache's ``zookeeper.snapshot.trust.empty``);
a log record with a bad checksum or an unreadable body; and a gap in the
zxids after the snapshot within one epoch (Apache would replay past a gap
silently; a missing acknowledged write is worse than a server that does not
start).  A torn record at the end of the newest log file is expected after a
crash: it is reported and, by default, cut off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zkpy.proto.txns import LogEntry
from zkpy.storage.errors import CorruptSnapshotError, UnrecoverableError
from zkpy.storage.files import DataDirs, fsync_dir, list_logs, list_snapshots, open_data_dirs
from zkpy.storage.snapshot import Snapshot, SnapshotReader, is_valid_snapshot_tail
from zkpy.storage.txnlog import FILE_HEADER_SIZE, LogEnd, TxnLogIterator, last_logged_zxid
from zkpy.tree.datatree import DataTree
from zkpy.tree.loader import SnapshotLoadError, load_nodes

__all__ = ["Recovery", "RecoveryReport", "check_data_dir", "load_full_snapshot", "load_tree", "recover"]

log = logging.getLogger(__name__)

MAX_SNAPSHOTS_TRIED = 100  # FileSnap.deserialize: findNValidSnapshots(100)


@dataclass(slots=True)
class RecoveryReport:
    """What recovery found and did, for the server's log."""

    snap_dir: Path
    log_dir: Path
    snapshot: Path | None = None
    snapshot_zxid: int = -1
    skipped_snapshots: list[tuple[Path, str]] = field(default_factory=list)
    removed_temp_files: list[Path] = field(default_factory=list)
    empty_database: bool = False  # nothing on disk: the server should write snapshot.0 (Apache does)
    log_files: list[Path] = field(default_factory=list)
    entries_replayed: int = 0
    duplicates_skipped: int = 0
    last_zxid: int = -1
    torn_tail: LogEnd | None = None  # a torn record at the end of the newest log file
    torn_tail_removed: bool = False
    warnings: list[str] = field(default_factory=list)
    replay_done: bool = False

    def lines(self) -> list[str]:
        out = [f"snapshot dir {self.snap_dir}, log dir {self.log_dir}"]
        for p in self.removed_temp_files:
            out.append(f"removed unfinished snapshot {p.name}")
        for p, why in self.skipped_snapshots:
            out.append(f"skipped snapshot {p.name}: {why}")
        if self.snapshot is not None:
            out.append(f"loaded snapshot {self.snapshot.name} (zxid {self.snapshot_zxid:#x})")
        elif self.empty_database:
            out.append("no snapshot and no log: starting with an empty database")
        else:
            out.append("no snapshot: replaying the log from the start")
        if self.replay_done:
            out.append(self.summary())
        out.extend(self.warnings)
        return out

    def summary(self) -> str:
        s = (f"{self.entries_replayed} txns replayed from {len(self.log_files)} log file(s), "
             f"last zxid {self.last_zxid:#x}")
        if self.duplicates_skipped:
            s += f", {self.duplicates_skipped} duplicate(s) skipped"
        if self.torn_tail is not None:
            action = "removed" if self.torn_tail_removed else "left in place"
            s += (f"; torn record at the end of {self.torn_tail.path.name} offset {self.torn_tail.offset} "
                  f"({self.torn_tail.reason}), {action}")
        return s


def load_full_snapshot(reader: SnapshotReader) -> Snapshot:
    """The default loader: the whole snapshot in memory."""
    nodes = list(reader.iter_nodes())
    return Snapshot(reader.path, reader.zxid, reader.sessions, reader.acls, nodes, reader.digest)


def load_tree(reader: SnapshotReader, tree: DataTree) -> None:
    """Fill a fresh ``tree`` from a snapshot with the bulk loader (``zkpy.tree.loader``): the same
    tree as ``load_node`` for every node, and the same :class:`CorruptSnapshotError` for a node
    whose parent is missing, so that recovery tries the next older snapshot."""
    try:
        load_nodes(tree, reader.acls, reader.iter_packed_nodes())
    except SnapshotLoadError as e:
        raise CorruptSnapshotError(reader.path, str(e)) from None
    tree.last_processed_zxid = reader.zxid


class Recovery:
    """The result of :func:`recover`: the loaded snapshot and a one-shot iterator of later entries."""

    def __init__(self, dirs: DataDirs, snapshot: Any, report: RecoveryReport,
                 truncate_torn_tail: bool) -> None:
        self.dirs = dirs
        self.snapshot = snapshot  # what the loader returned; None for an empty database
        self.report = report
        self._truncate = truncate_torn_tail
        self._consumed = False

    @property
    def snapshot_zxid(self) -> int:
        return self.report.snapshot_zxid

    def entries(self) -> Iterator[LogEntry]:
        """Entries after the snapshot, checked for continuity; consume it fully before serving."""
        if self._consumed:
            raise RuntimeError("Recovery.entries() can be iterated only once")
        self._consumed = True
        rep = self.report
        start = max(rep.snapshot_zxid, 0)
        it = TxnLogIterator(self.dirs.log_dir, start + 1)
        prev = start
        for path, off, entry in it.positions():
            z = entry.hdr.zxid
            if z <= prev:
                # Apache replays it again (its txns are mostly idempotent); skipping is the same
                # result without relying on that.
                rep.duplicates_skipped += 1
                rep.warnings.append(f"zxid {z:#x} in {path.name} at offset {off} is not after {prev:#x}; "
                                    "skipped")
                continue
            if z != prev + 1 and z >> 32 == prev >> 32:  # a gap within one epoch
                raise UnrecoverableError(
                    f"gap in the transaction log: {path} at offset {off} has zxid {z:#x} but the previous "
                    f"txn is {prev:#x}; txns {prev + 1:#x}..{z - 1:#x} are missing")
            prev = z
            rep.entries_replayed += 1
            yield entry
        rep.log_files = list(it.files)
        rep.last_zxid = prev if rep.entries_replayed or rep.snapshot_zxid >= 0 else -1
        newest = list_logs(self.dirs.log_dir)
        newest_path = newest[-1][1] if newest else None
        for end in it.ends:
            if not end.torn:
                continue
            if end.path == newest_path:
                rep.torn_tail = end
            else:
                rep.warnings.append(f"torn record in {end.path.name} at offset {end.offset} ({end.reason}); "
                                    "later files continue the history")
        if rep.torn_tail is not None and self._truncate:
            _cut_torn_tail(rep.torn_tail)
            rep.torn_tail_removed = True
        rep.replay_done = True
        log.info("%s", rep.summary())


def _cut_torn_tail(end: LogEnd) -> None:
    if end.offset < FILE_HEADER_SIZE:
        # No complete header: Apache cannot open such a file at all, and it holds nothing.
        end.path.unlink()
    else:
        with open(end.path, "r+b") as f:
            f.truncate(end.offset)
            os.fsync(f.fileno())
    fsync_dir(end.path.parent)


def _remove_temp_files(snap_dir: Path) -> list[Path]:
    removed = []
    for name in os.listdir(snap_dir):
        # Our SnapshotWriter's temporary names; Apache's own "snapshot.<zxid>.tmp" is left alone.
        if name.startswith(".snapshot.") and name.endswith(".tmp"):
            p = snap_dir / name
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def recover(data_dir: str | os.PathLike[str], data_log_dir: str | os.PathLike[str] | None = None, *,
            load: Callable[[SnapshotReader], Any] = load_full_snapshot, truncate_torn_tail: bool = True,
            max_snapshots: int = MAX_SNAPSHOTS_TRIED, trust_empty_snapshot: bool = False,
            autocreate: bool = True) -> Recovery:
    """Open ``<data_dir>/version-2`` (and the log dir), load the newest valid snapshot.

    Log entries are read by ``Recovery.entries()``.
    """
    dirs = open_data_dirs(data_dir, data_log_dir, autocreate=autocreate)
    report = RecoveryReport(dirs.snap_dir, dirs.log_dir)
    report.removed_temp_files = _remove_temp_files(dirs.snap_dir)
    all_snaps = list_snapshots(dirs.snap_dir)
    candidates: list[tuple[int, Path]] = []
    for zxid, path in all_snaps:
        if len(candidates) >= max_snapshots:
            break
        if is_valid_snapshot_tail(path):
            candidates.append((zxid, path))
        else:
            report.skipped_snapshots.append((path, "incomplete: no end marker"))
    loaded: Any = None
    for zxid, path in candidates:
        try:
            reader = SnapshotReader(path)
        except CorruptSnapshotError as e:
            report.skipped_snapshots.append((path, e.reason))
            log.warning("problem reading snap file %s: %s", path, e.reason)
            continue
        try:
            loaded = load(reader)
            if not reader.complete:
                # The loader stopped early: finish the pass so the checksum is still verified.
                for _ in reader.iter_nodes():
                    pass
        except CorruptSnapshotError as e:
            loaded = None
            report.skipped_snapshots.append((path, e.reason))
            log.warning("problem reading snap file %s: %s", path, e.reason)
            continue
        finally:
            reader.close()
        report.snapshot, report.snapshot_zxid = path, zxid
        break
    if report.snapshot is None:
        if all_snaps:
            raise UnrecoverableError(
                f"Not able to find valid snapshots in {dirs.snap_dir}: "
                + "; ".join(f"{p.name}: {why}" for p, why in report.skipped_snapshots))
        last = last_logged_zxid(dirs.log_dir)
        if last != -1:
            if not trust_empty_snapshot:
                raise UnrecoverableError(
                    f"No snapshot found, but there are log entries (up to zxid {last:#x}) in {dirs.log_dir}. "
                    "Something is broken! (zookeeper.snapshot.trust.empty=true replays them anyway)")
            report.warnings.append("No snapshot found, but there are log entries. This should only be "
                                   "allowed during upgrading.")
        else:
            report.empty_database = True
    for line in report.lines():
        log.info("%s", line)
    return Recovery(dirs, loaded, report, truncate_torn_tail)


def check_data_dir(data_dir: str | os.PathLike[str], data_log_dir: str | os.PathLike[str] | None = None,
                   ) -> RecoveryReport:
    """Dry run: everything recovery would do, without truncating anything (for tools and tests)."""
    rec = recover(data_dir, data_log_dir, truncate_torn_tail=False, autocreate=False)
    for _ in rec.entries():
        pass
    return rec.report

