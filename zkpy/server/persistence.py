"""Durability for the standalone server: the transaction log, snapshots, recovery and retention.

- **Group commit.**  :class:`TxnLogDurability` is the commit pipeline's backend:
  the txns prepared during an event-loop turn are handed as one batch to the log's own
  thread, which writes every batch handed over while it was busy with one write and one
  fdatasync; only then are they applied and acknowledged (DESIGN invariant 3).
- **Snapshots** every ``snapCount/2 + random(snapCount/2)`` txns (or when the
  log passes half the size limit plus a random part), as ZooKeeper randomizes
  them so that ensemble members do not snapshot at once.  The log is rolled at
  that point; the snapshot is *fuzzy*: it is named after the last applied zxid
  and the tree is serialized in slices between client requests, so no client
  waits for more than one slice.  Recovery replays the log from the snapshot's
  zxid, which converges because every txn carries absolute values.
  The nodes are spooled to a temporary file first, so that the ACL section,
  which precedes the nodes on disk, lists exactly the ACL ids of the nodes as
  they were written (an ACL interned mid-snapshot would otherwise be missing).
- **Recovery** at start-up: newest valid snapshot, then the log after it
  (``zkpy.storage.recovery``), before the client port opens.
- **Retention**: ``autopurge.snapRetainCount`` / ``autopurge.purgeInterval``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import queue
import random
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from zkpy.proto.jute import Record
from zkpy.proto.records import TxnHeader
from zkpy.server.commit import running_loop
from zkpy.server.database import Database
from zkpy.storage import purge as purging
from zkpy.storage.aio import AioFsync, AioLogFlush
from zkpy.storage.errors import StorageError
from zkpy.storage.files import open_data_dirs
from zkpy.storage.recovery import load_tree, recover
from zkpy.storage.snapshot import SnapshotReader, SnapshotWriter
from zkpy.storage.txnlog import FramedTxns, TxnLogWriter, frame_txns
from zkpy.tree.acl import OPEN_ACL_UNSAFE_ID
from zkpy.tree.datatree import DataTree
from zkpy.tree.loader import Replayer
from zkpy.tree.node import Node

if TYPE_CHECKING:
    from zkpy.server.server import ZooKeeperServer

log = logging.getLogger(__name__)

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_T = TypeVar("_T")
_NULL = b"\xff\xff\xff\xff"
_SPOOL_CHUNK_BYTES = 1 << 20
# Nodes serialized per event-loop turn while a snapshot runs: bounds the pause a client can see.
NODES_PER_SLICE = 2000


@dataclass(slots=True)
class LogStats:
    """Figures for mntr / metrics: fsync times and how much the log has seen."""

    fsync_count: int = 0
    fsync_total_ms: float = 0.0
    fsync_max_ms: float = 0.0
    fsync_threshold_exceeded: int = 0
    batches: int = 0
    txns: int = 0
    last_snapshot_zxid: int = -1
    last_snapshot_ms: float = 0.0
    last_snapshot_path: str = ""
    snapshots_taken: int = 0
    recent_batch_sizes: list[int] = field(default_factory=list)


class FsyncRecorder:
    """Each fsync of a transaction log into what mntr, the AdminServer and the metrics show
    (LogStats, the ``fsynctime`` summary), with ZooKeeper's warning when one took longer than
    ``fsync.warningthresholdms``: the same for the standalone log and a quorum member's."""

    def __init__(self, stats: LogStats, warning_ms: float, metrics: Any = None) -> None:
        self.stats = stats
        self.warning_ms = warning_ms
        self.metrics = metrics  # the server's ServerMetrics (a standalone server's is attached later)

    def record(self, ms: float, txns: int) -> None:
        st = self.stats
        st.fsync_count += 1
        st.fsync_total_ms += ms
        st.fsync_max_ms = max(st.fsync_max_ms, ms)
        if self.metrics is not None:
            self.metrics.fsync_time.add(int(ms))
        st.batches += 1
        st.txns += txns
        if ms > self.warning_ms:
            st.fsync_threshold_exceeded += 1
            log.warning("fsync-ing the write ahead log took %.0fms which will adversely effect operation "
                        "latency.", ms)


def next_group(handed: queue.SimpleQueue[_T | None]) -> tuple[list[_T], bool]:
    """For a writer thread: wait for the next item handed over, then take whatever is queued
    behind it, so all of it shares one write and one fsync.  The flag says a None (stop) came
    after them; an empty group means stop now."""
    first = handed.get()
    if first is None:
        return [], True
    group = [first]
    while True:
        try:
            nxt = handed.get_nowait()
        except queue.Empty:
            return group, False
        if nxt is None:
            return group, True
        group.append(nxt)


class TxnLogDurability:
    """The commit pipeline's Durability: the transaction log, synced without stalling the loop.

    Each :meth:`sync` hands the txns appended since the previous one over and returns a future.
    Everything handed over while an fsync runs is written with one ``pwrite`` and synced with the
    next fsync, which starts as soon as the previous one ends.  Two ways to run the fsync:

    - kernel AIO (``aio``, Linux): the loop writes the batch and submits the fsync; a kernel
      worker runs it and bumps an eventfd the loop watches.  No Python thread wakes up.
    - otherwise a thread of its own, which takes everything handed over by the time it is free,
      writes and syncs it, resolves those futures with one wake-up of the loop and goes straight
      on with what arrived meanwhile."""

    def __init__(self, writer: TxnLogWriter, fsync_warning_ms: int, *, aio: AioFsync | None = None) -> None:
        self.writer = writer
        self.stats = LogStats()
        self.fsyncs = FsyncRecorder(self.stats, fsync_warning_ms)
        self._pending: list[tuple[TxnHeader, Record | None, bytes | None]] = []
        self._roll_next = False
        self.bytes_since_roll = 0
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Thread mode: (txns, roll first, future, its loop), or None to stop the thread.
        self._handed: queue.SimpleQueue[_Handed | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # AIO mode: the flush under way (made on the first sync's loop), its group, what waits.
        self.aio = aio
        self._flush: AioLogFlush | None = None
        self._in_flight: list[_Handed] = []
        self._waiting: list[_Handed] = []

    def append(self, hdr: TxnHeader, txn: Record | None, raw: bytes | None = None) -> None:
        self._pending.append((hdr, txn, raw))

    def request_roll(self) -> None:
        """Start a new log file before the next batch (taken with a snapshot)."""
        self._roll_next = True

    def sync(self) -> asyncio.Future[None]:
        loop = self._loop = running_loop(self._loop)
        done: asyncio.Future[None] = loop.create_future()
        batch, self._pending = self._pending, []
        roll, self._roll_next = self._roll_next, False
        try:
            # Framed and checksummed here, on the loop: a log thread then needs the GIL only for a
            # few steps around its write and fsync, instead of taking it from the loop for as
            # long as framing the batch takes.
            framed = frame_txns(batch, self.writer.max_entry_bytes)
        except ValueError as e:
            done.set_exception(e)  # the pipeline fails: nothing of it is acknowledged
            return done
        if self.aio is not None:
            self._hand_to_kernel((framed, roll, done, loop))
            return done
        if self._thread is None:
            self._thread = threading.Thread(target=self._log_thread, name="zkpy-txnlog", daemon=True)
            self._thread.start()
        self._handed.put((framed, roll, done, loop))
        return done

    # ------------------------------------------------------------------ AIO mode (on the loop)

    def _hand_to_kernel(self, handed: _Handed) -> None:
        assert self.aio is not None
        if self._failure is not None:
            handed[2].set_exception(self._failure)
            return
        if self._flush is None:
            self._flush = AioLogFlush(self.aio, handed[3], self._fsync_ended)
        self._waiting.append(handed)
        if not self._in_flight:
            self._start_fsync()

    def _start_fsync(self) -> None:
        assert self._flush is not None
        group, self._waiting = self._waiting, []
        self._in_flight = group  # before start: with forceSync=no it ends at once
        try:
            self._append_group(group)
            self._flush.start(self.writer)
        except BaseException as e:  # nothing of the group, nor anything after it, is acknowledged
            self._fsync_ended(e)

    def _fsync_ended(self, error: BaseException | None) -> None:
        assert self._flush is not None
        group, self._in_flight = self._in_flight, []
        if error is not None:
            self._failure = error
            everything, self._waiting = group + self._waiting, []
            _resolve([done for _framed, _roll, done, _loop in everything], error)
            return
        self._record_fsync((time.monotonic() - self._flush.started) * 1000, group)
        if self._waiting:
            self._start_fsync()  # the disk works on the next group while the loop applies this one
        _resolve([done for _framed, _roll, done, _loop in group], None)

    # ------------------------------------------------------------------ thread mode

    def _log_thread(self) -> None:
        while True:
            group, stop = next_group(self._handed)
            if not group:
                return
            error = self._failure
            if error is None:
                try:
                    self._write(group)
                except BaseException as e:  # handed to the loop: nothing of the group is acknowledged
                    error = self._failure = e
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for _framed, _roll, done, loop in group:
                by_loop.setdefault(loop, []).append(done)
            for loop, futures in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_resolve, futures, error)
                except RuntimeError:
                    pass  # the loop is closed: nobody waits any more
            if stop:
                return

    def _write(self, group: list[_Handed]) -> None:
        self._append_group(group)
        started = time.monotonic()
        self.writer.flush(sync=True)
        self._record_fsync((time.monotonic() - started) * 1000, group)

    # ------------------------------------------------------------------ both

    def _append_group(self, group: list[_Handed]) -> None:
        writer = self.writer
        for framed, roll, _done, _loop in group:
            if roll:
                writer.roll()  # what is buffered goes to the old file, the rest to a new one
                self.bytes_since_roll = 0
            writer.append_framed(framed)

    def _record_fsync(self, ms: float, group: list[_Handed]) -> None:
        self.fsyncs.record(ms, sum(framed.count for framed, _roll, _done, _loop in group))

    def close(self) -> None:
        """Everything handed over is written and synced, then the log is closed.  In AIO mode
        this runs on the loop (it is its state); in thread mode anywhere."""
        thread = self._thread
        if thread is not None:
            self._handed.put(None)  # after everything handed over before it
            thread.join(timeout=30)
        flush = self._flush
        if flush is not None:
            for _ in range(2):  # the fsync under way, then the one its end may start for what waited
                flush.wait(timeout_s=30.0)
            flush.close()
        elif self.aio is not None:
            self.aio.close()
        group, self._waiting = self._waiting, []
        if self._failure is None:
            self._append_group(group)  # synced by the writer's close
        try:
            self.writer.close()
        except BaseException as e:
            _resolve([done for _framed, _roll, done, _loop in group], e)
            raise
        _resolve([done for _framed, _roll, done, _loop in group], self._failure)


_Handed = tuple[FramedTxns, bool, "asyncio.Future[None]", asyncio.AbstractEventLoop]


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for done in futures:
        if done.done():
            continue  # cancelled: its waiter is gone
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


def encode_node_into(buf: bytearray, path: str, node: Node) -> None:
    """One node as a snapshot holds it: ustring path ("" for the root), buffer data, long acl, stat."""
    pb = b"" if path == "/" else path.encode("utf-8")
    buf += _INT.pack(len(pb))
    buf += pb
    data = node.data
    if data is None:
        buf += _NULL
    else:
        buf += _INT.pack(len(data))
        buf += data
    buf += _LONG.pack(node.acl)
    buf += node.stat  # packed StatPersisted, the layout the file uses


class Snapshotter:
    """Takes fuzzy snapshots of a live database without stalling the event loop."""

    def __init__(self, db: Database | Callable[[], Database], snap_dir: Path, spool_dir: Path,
                 executor: ThreadPoolExecutor, stats: LogStats, compression: str = "") -> None:
        # The database to snapshot, or how to get the current one (a quorum member's is replaced
        # when it syncs from a leader).
        self._db_source: Callable[[], Database] = db if callable(db) else (lambda: db)
        self.snap_dir = snap_dir
        self.spool_dir = spool_dir
        self.executor = executor
        self.stats = stats
        self.compression = compression if compression in ("", "gz") else ""
        self.task: asyncio.Task[Path | None] | None = None
        self.metrics: Any = None  # the server's ServerMetrics, once attached

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self) -> asyncio.Task[Path | None] | None:
        if self.running:
            return None
        self.task = asyncio.get_running_loop().create_task(self.take())
        return self.task

    async def take(self) -> Path | None:
        loop = asyncio.get_running_loop()
        db = self._db_source()
        tree = db.tree
        zxid = tree.last_processed_zxid
        sessions = dict(db.sessions)
        started = time.monotonic()
        fd, spool_name = tempfile.mkstemp(prefix=".nodes.", suffix=".spool", dir=self.spool_dir)
        spool = os.fdopen(fd, "wb")
        acl_map: dict[int, list[Any]] = {}
        count = 0
        try:
            buf = bytearray()
            it = tree.iter_nodes()
            done = False
            while not done:
                # One slice on the loop thread (the tree is not thread-safe), then yield.
                for _ in range(NODES_PER_SLICE):
                    try:
                        path, node = next(it)
                    except StopIteration:
                        done = True
                        break
                    encode_node_into(buf, path, node)
                    aid = node.acl
                    if aid != OPEN_ACL_UNSAFE_ID and aid not in acl_map:
                        acl_map[aid] = list(tree.acls.lookup(aid))
                    count += 1
                if len(buf) >= _SPOOL_CHUNK_BYTES or done:
                    chunk, buf = bytes(buf), bytearray()
                    await loop.run_in_executor(self.executor, spool.write, chunk)
                else:
                    await asyncio.sleep(0)
            spool.close()
            path = await loop.run_in_executor(self.executor, self._assemble, zxid, sessions, acl_map,
                                              spool_name, count)
        except BaseException:
            if not spool.closed:
                spool.close()
            raise
        finally:
            Path(spool_name).unlink(missing_ok=True)
        ms = (time.monotonic() - started) * 1000
        st = self.stats
        st.last_snapshot_zxid, st.last_snapshot_ms, st.last_snapshot_path = zxid, ms, str(path)
        st.snapshots_taken += 1
        if self.metrics is not None:
            self.metrics.snapshot_time.add(int(ms))
        log.info("Snapshot taken: %s (%d nodes, %.0f ms)", path.name, count, ms)
        return path

    def _assemble(self, zxid: int, sessions: dict[int, int], acl_map: dict[int, list[Any]], spool_name: str,
                  count: int) -> Path:
        writer = SnapshotWriter(self.snap_dir, zxid, compression=self.compression)
        try:
            writer.write_sessions(sessions)
            writer.write_acls(dict(sorted(acl_map.items())))
            with open(spool_name, "rb") as spool:
                first = True
                while True:
                    chunk = spool.read(_SPOOL_CHUNK_BYTES)
                    if not chunk:
                        break
                    # The node count is only known as a total; pass it with the first chunk.
                    writer.write_encoded_nodes(chunk, count if first else 0, starts_with_root=True)
                    first = False
            return writer.finish()
        except BaseException:
            writer.abort()
            raise


def load_database(data_dir: Path, data_log_dir: Path, extended_types: bool, trust_empty: bool = False,
                  timings: dict[str, float] | None = None) -> tuple[Database, list[str]]:
    """Recover a database: newest valid snapshot plus the log after it. Raises StorageError.

    The tree is built by the bulk loader and the log replayed with its fast path
    (``zkpy.tree.loader``): the same database as ``load_node`` / ``Database.apply`` one by one.
    ``timings``, when given, receives ``snap_load_ms``, ``txns_loaded`` and ``txns_load_ms``."""
    started = time.monotonic()

    def load(reader: SnapshotReader) -> Database:
        db = Database(extended_types)
        load_tree(reader, db.tree)
        db.sessions = dict(reader.sessions)
        return db

    # The cyclic collector would scan the growing tree again and again (nothing in it forms a
    # cycle); afterwards what was recovered is frozen out of later full collections, which would
    # otherwise walk every znode (~0.3 s per million) and, the first time, delay serving.
    collecting = gc.isenabled()
    gc.disable()
    try:
        rec = recover(data_dir, data_log_dir, load=load, trust_empty_snapshot=trust_empty)
        db = rec.snapshot if rec.snapshot is not None else Database(extended_types)
        listener, db.tree.listener = db.tree.listener, None
        replay_started = time.monotonic()
        replayed = Replayer(db.tree, lambda hdr, txn: db.apply(hdr, txn, replay=True)).replay(rec.entries())
        db.tree.listener = listener
        if collecting:
            gc.freeze()
    finally:
        if collecting:
            gc.enable()
    if timings is not None:
        timings.update(snap_load_ms=(replay_started - started) * 1000, txns_loaded=replayed,
                       txns_load_ms=(time.monotonic() - replay_started) * 1000)
    return db, [*rec.report.lines(), rec.report.summary()]


class SnapshotSchedule:
    """When to snapshot: after ``snapCount/2 + random(snapCount/2)`` txns or half the log size
    limit plus a random part (SyncRequestProcessor.shouldSnapshot), randomized anew each time so
    that ensemble members do not all snapshot at once."""

    def __init__(self, snap_count: int, snap_size_bytes: int) -> None:
        self.snap_count = max(2, snap_count)
        self.snap_size_bytes = snap_size_bytes
        self.txns = 0
        self.reset()

    def reset(self) -> None:
        self.txns = 0
        self.roll_at = self.snap_count // 2 + random.randrange(max(1, self.snap_count // 2))
        half = self.snap_size_bytes // 2
        self.size_roll_at = half + random.randrange(max(1, half)) if half > 0 else 0

    def due(self, n_txns: int, log_bytes: int) -> bool:
        self.txns += n_txns
        return self.txns > self.roll_at or bool(self.size_roll_at and log_bytes > self.size_roll_at)


def start_autopurge(config: Any, executor: ThreadPoolExecutor) -> asyncio.Task[None] | None:
    """``autopurge.purgeInterval`` hours > 0: purge every so often in ``executor`` (the snapshot
    thread, so a purge never races a snapshot being written); None when disabled."""
    interval_h = int(getattr(config, "autopurge_purge_interval_hours", 0))
    if interval_h <= 0:
        return None
    retain = int(getattr(config, "autopurge_snap_retain_count", 3))

    async def purge_forever() -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval_h * 3600.0)
            await loop.run_in_executor(executor, purging.autopurge, config.data_dir, config.data_log_dir, retain)

    return asyncio.get_running_loop().create_task(purge_forever())


class Storage:
    """Everything on disk for one standalone server."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.dirs = open_data_dirs(config.data_dir, config.data_log_dir,
                                   autocreate=bool(getattr(config, "datadir_autocreate", True)))
        self.writer = TxnLogWriter(self.dirs.log_dir, prealloc_bytes=int(config.pre_alloc_size_kb) * 1024,
                                   force_sync=bool(config.force_sync),
                                   size_limit_bytes=int(getattr(config, "txn_log_size_limit_kb", -1)) * 1024,
                                   max_entry_bytes=int(config.jute_max_buffer)
                                   + int(getattr(config, "jute_max_buffer_extra_size", config.jute_max_buffer)))
        # Kernel AIO for the fsyncs unless ZKPY_TXNLOG_AIO=0 (or it does not work here).
        aio = AioFsync.open(self.dirs.log_dir) if os.environ.get("ZKPY_TXNLOG_AIO", "1") != "0" else None
        self.durability = TxnLogDurability(self.writer, int(getattr(config, "fsync_warning_threshold_ms", 1000)),
                                           aio=aio)
        self.stats = self.durability.stats
        self._snap_executor = ThreadPoolExecutor(1, thread_name_prefix="zkpy-snapshot")
        self.snapshotter: Snapshotter | None = None
        self.schedule = SnapshotSchedule(int(config.snap_count), int(getattr(config, "snap_size_limit_kb", 0)) * 1024)
        self._purge_task: asyncio.Task[None] | None = None
        self._server: ZooKeeperServer | None = None

    def load_into(self, server: ZooKeeperServer) -> None:
        cfg = self.config
        # Recovery logs what it found and did (files, replay, a cut torn tail) itself.
        started, timings = time.monotonic(), {}
        db, _report = load_database(Path(cfg.data_dir), Path(cfg.data_log_dir), bool(cfg.extended_types_enabled),
                                    bool(getattr(cfg, "snapshot_trust_empty", False)), timings)
        server.attach_database(db)
        _record_startup(server, (time.monotonic() - started) * 1000, timings)

    def start_background(self, server: ZooKeeperServer) -> None:
        self._server = server
        self.snapshotter = Snapshotter(lambda: server.db, self.dirs.snap_dir, self.dirs.snap_dir, self._snap_executor,
                                       self.stats, getattr(self.config, "snapshot_compression_method", ""))
        self.durability.fsyncs.metrics = self.snapshotter.metrics = getattr(server, "metrics", None)
        server.after_batch = self.after_batch
        # ZooKeeper snapshots at every start: the recovered state becomes the new base, and a
        # database that never had a snapshot gets one (its log alone would not be trusted).
        self.durability.request_roll()
        self.snapshotter.start()
        self._purge_task = start_autopurge(self.config, self._snap_executor)

    def after_batch(self, n_txns: int) -> None:
        """Called after each committed batch: snapshot when the randomized threshold is crossed."""
        log_bytes = self.writer._pos if self.writer.current_path is not None else 0
        if self.schedule.due(n_txns, log_bytes):
            if self.snapshotter is not None and self.snapshotter.running:
                return  # "Too busy to snap, skipping" — the next batch checks again
            self.schedule.reset()
            self.durability.request_roll()
            if self.snapshotter is not None:
                self.snapshotter.start()

    async def close(self) -> None:
        if self._purge_task is not None:
            self._purge_task.cancel()
        if self.snapshotter is not None and self.snapshotter.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.snapshotter.task), 20)
            except (TimeoutError, asyncio.CancelledError, StorageError, OSError) as e:
                log.warning("snapshot in progress at shutdown did not finish: %s", e)
        loop = asyncio.get_running_loop()
        if self.durability.aio is not None:
            self.durability.close()  # its state is the loop's; at most an fsync's wait
        else:
            await loop.run_in_executor(None, self.durability.close)
        self._snap_executor.shutdown(wait=True)


def _record_startup(server: Any, db_init_ms: float, timings: dict[str, float]) -> None:
    """ZooKeeper's start-up summaries: dbinittime, startup_snap_load_time, startup_txns_load(ed|_time)."""
    metrics = getattr(server, "metrics", None)
    if metrics is None:
        return
    metrics.db_init_time.add(int(db_init_ms))
    if timings:
        metrics.startup_snap_load_time.add(int(timings["snap_load_ms"]))
        metrics.startup_txns_loaded.add(int(timings["txns_loaded"]))
        metrics.startup_txns_load_time.add(int(timings["txns_load_ms"]))


def open_storage(config: Any) -> Storage:
    return Storage(config)


__all__ = [
    "NODES_PER_SLICE",
    "DataTree",
    "LogStats",
    "Snapshotter",
    "Storage",
    "TxnLogDurability",
    "load_database",
    "open_storage",
]
