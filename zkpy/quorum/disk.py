"""A member's data directory in quorum mode: the txn log, snapshots and the epoch files.

Everything here is synchronous file I/O for one thread (the driver's disk thread), but
:meth:`QuorumDisk.frame`, which the event loop calls.  It carries out the core's persist
items (:mod:`zkpy.quorum.effects`) in order, each durable before the next begins, in
Apache ZooKeeper 3.8's formats:

- log entries, framed on the event loop (:meth:`QuorumDisk.frame`), go through
  :class:`~zkpy.storage.TxnLogWriter`, fsync'ed before any later item and at the end of
  each batch;
- TRUNC cuts the log (:func:`~zkpy.storage.truncate_log`), drops snapshots past the cut
  and reloads the database;
- SNAP first drops logged txns after the snapshot's zxid, then writes the snapshot;
- ``acceptedEpoch`` / ``currentEpoch`` are decimal text files in ``dataDir/version-2``,
  replaced atomically (written to ``<name>.tmp``, fsync'ed, renamed), as QuorumPeer does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zkpy.proto.records import ACL
from zkpy.quorum.effects import (
    AppendEntries,
    InstallSnapshot,
    PersistItem,
    SetAcceptedEpoch,
    SetCurrentEpoch,
    TruncateLog,
)
from zkpy.quorum.peer import DiskState
from zkpy.quorum.snapwire import decode_database
from zkpy.quorum.zxid import epoch_of
from zkpy.server.database import Database
from zkpy.storage import encode_txn
from zkpy.storage.errors import StorageError
from zkpy.storage.files import fsync_dir, list_logs, list_snapshots, open_data_dirs
from zkpy.storage.recovery import load_tree, recover
from zkpy.storage.snapshot import SnapshotReader, SnapshotWriter
from zkpy.storage.txnlog import FramedTxns, TxnLogIterator, TxnLogWriter, frame_entries, truncate_log
from zkpy.tree.loader import Replayer

log = logging.getLogger(__name__)

ACCEPTED_EPOCH_FILE = "acceptedEpoch"
CURRENT_EPOCH_FILE = "currentEpoch"
TMP_SUFFIX = ".tmp"


@dataclass(slots=True)
class BatchResult:
    """What a persisted batch changed besides the disk: a database to serve instead."""

    database: Database | None = None


class QuorumDisk:
    """Owns the data directory while the member runs (one worker thread calls it)."""

    def __init__(self, data_dir: str | os.PathLike[str], data_log_dir: str | os.PathLike[str] | None = None, *,
                 prealloc_bytes: int = 64 * 1024 * 1024, force_sync: bool = True, extended_types: bool = False,
                 history_limit: int = 100_000, snapshot_compression: str = "") -> None:
        self.data_dir = Path(data_dir)
        self.data_log_dir = Path(data_log_dir) if data_log_dir is not None else self.data_dir
        self.dirs = open_data_dirs(self.data_dir, self.data_log_dir)
        self.prealloc_bytes = prealloc_bytes
        self.force_sync = force_sync
        self.extended_types = extended_types
        self.history_limit = history_limit
        self.compression = snapshot_compression
        self.writer = self._new_writer()
        self.max_entry_bytes = self.writer.max_entry_bytes
        # Set from the event loop when a snapshot starts; the next persisted batch begins a new
        # log file, so the snapshot's log suffix starts in a file of its own (rollLog).
        self.roll_requested = False

    def _new_writer(self) -> TxnLogWriter:
        return TxnLogWriter(self.dirs.log_dir, prealloc_bytes=self.prealloc_bytes, force_sync=self.force_sync)

    # ------------------------------------------------------------------ start-up

    def load(self) -> tuple[Database, DiskState]:
        """Recover the database (newest valid snapshot + the whole log after it) and the epochs."""
        db, floor = self._recover()
        if floor < 0:
            # No snapshot yet: record the empty database at zxid 0, so recovery never has to trust
            # an empty directory and TRUNC always has a state to reload from.
            self.write_snapshot(Database(self.extended_types), 0)
            floor = 0
        entries = self._tail(floor)
        last = entries[-1][0] if entries else floor
        if last != db.last_zxid:
            raise StorageError(f"the log ends at 0x{last:x} but recovery reached 0x{db.last_zxid:x}")
        accepted = self.read_epoch(ACCEPTED_EPOCH_FILE)
        current = self.read_epoch(CURRENT_EPOCH_FILE)
        default = epoch_of(last)
        if current is None:
            log.info("%s not found! Creating with a reasonable default of %d.", CURRENT_EPOCH_FILE, default)
            current = default
            self.write_epoch(CURRENT_EPOCH_FILE, current)
        if accepted is None:
            log.info("%s not found! Creating with a reasonable default of %d.", ACCEPTED_EPOCH_FILE, default)
            accepted = max(default, current)
            self.write_epoch(ACCEPTED_EPOCH_FILE, accepted)
        if accepted < current:
            raise StorageError(f"The accepted epoch, {accepted} is less than the current epoch, {current}")
        base = floor
        if len(entries) > self.history_limit:
            base = entries[-self.history_limit - 1][0]
            entries = entries[-self.history_limit:]
        return db, DiskState(accepted, current, floor, base, entries)

    def _recover(self) -> tuple[Database, int]:
        """(database, zxid of the snapshot it started from, -1 without one)."""

        def load(reader: SnapshotReader) -> Database:
            d = Database(self.extended_types)
            load_tree(reader, d.tree)
            d.sessions = dict(reader.sessions)
            return d

        rec = recover(self.data_dir, self.data_log_dir, load=load, trust_empty_snapshot=True)
        db = rec.snapshot if rec.snapshot is not None else Database(self.extended_types)
        floor = rec.snapshot_zxid if rec.snapshot is not None else -1
        Replayer(db.tree, lambda hdr, txn: db.apply(hdr, txn, replay=True)).replay(rec.entries())
        return db, floor

    def _tail(self, after: int) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for entry in TxnLogIterator(self.dirs.log_dir, after + 1):
            z = entry.hdr.zxid
            if z <= after or (out and z <= out[-1][0]):
                continue
            out.append((z, encode_txn(entry.hdr, entry.txn, entry.digest)))
        return out

    # ------------------------------------------------------------------ epochs

    def read_epoch(self, name: str) -> int | None:
        path = self.dirs.snap_dir / name
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        try:
            return int(text.splitlines()[0] if text else "")
        except ValueError:
            raise StorageError(f"Found {text!r} in {path}") from None

    def write_epoch(self, name: str, value: int) -> None:
        path = self.dirs.snap_dir / name
        tmp = path.with_name(name + TMP_SUFFIX)
        with open(tmp, "w") as f:
            f.write(str(value))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(self.dirs.snap_dir)

    # ------------------------------------------------------------------ persist items

    def frame(self, items: Sequence[PersistItem]) -> list[PersistItem | FramedTxns]:
        """``items`` with their log entries framed and checksummed (done by the event loop, so the
        disk thread holds the GIL for little more than its write and fsync)."""
        limit = self.max_entry_bytes
        return [frame_entries(item.entries, limit) if isinstance(item, AppendEntries) else item for item in items]

    def persist(self, items: Sequence[PersistItem | FramedTxns], applied_zxid: int, sync: bool = True) -> BatchResult:
        """Carry out ``items`` in order, each durable before the next; ``applied_zxid`` is how far
        the live database has got (a TRUNC below it means reloading).  Without ``sync`` the
        entries last appended may stay unsynced (the next call syncs them with its own)."""
        result = BatchResult()
        if self.roll_requested:
            self.roll_requested = False
            self.writer.roll()
        for item in items:
            if isinstance(item, AppendEntries):
                item = frame_entries(item.entries, self.max_entry_bytes)
            if isinstance(item, FramedTxns):
                self.writer.append_framed(item)
                continue
            self.writer.flush(sync=True)  # what came before is durable before this item starts
            if isinstance(item, SetAcceptedEpoch):
                self.write_epoch(ACCEPTED_EPOCH_FILE, item.epoch)
            elif isinstance(item, SetCurrentEpoch):
                self.write_epoch(CURRENT_EPOCH_FILE, item.epoch)
            elif isinstance(item, TruncateLog):
                self._truncate(item.zxid)
                if applied_zxid > item.zxid:
                    result.database = self._reload()
                    applied_zxid = result.database.last_zxid
            elif isinstance(item, InstallSnapshot):
                db = decode_database(item.snapshot, item.zxid, self.extended_types)
                self._truncate(item.zxid)
                self.write_snapshot(db, item.zxid)
                result.database = db
                applied_zxid = item.zxid
        if sync:
            self.writer.flush(sync=True)
        return result

    def _truncate(self, zxid: int) -> None:
        """Drop logged txns and snapshots after ``zxid`` (FileTxnSnapLog.truncateLog)."""
        self.writer.close()
        try:
            if list_logs(self.dirs.log_dir):
                truncate_log(self.dirs.log_dir, zxid)
            for z, path in list_snapshots(self.dirs.snap_dir):
                if z > zxid:
                    log.info("removing snapshot %s, past the truncation point 0x%x", path.name, zxid)
                    path.unlink()
            fsync_dir(self.dirs.snap_dir)
        finally:
            self.writer = self._new_writer()

    def _reload(self) -> Database:
        return self._recover()[0]

    def write_snapshot(self, db: Database, zxid: int) -> Path:
        tree = db.tree
        nodes = list(tree.iter_nodes())
        acl_map: dict[int, list[ACL]] = {}
        for _, node in nodes:
            if node.acl != -1 and node.acl not in acl_map:
                acl_map[node.acl] = list(tree.acls.lookup(node.acl))
        w = SnapshotWriter(self.dirs.snap_dir, zxid, compression=self.compression, fsync=self.force_sync)
        try:
            w.write_sessions(dict(db.sessions))
            w.write_acls(dict(sorted(acl_map.items())))
            w.write_nodes((path, node.data, node.acl, node.stat_persisted()) for path, node in nodes)
            return w.finish()
        except BaseException:
            w.abort()
            raise

    def close(self) -> None:
        self.writer.close()
