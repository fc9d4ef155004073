"""Running one ensemble member: the quorum counterpart of :func:`zkpy.server.runner.serve`.

Start-up order: the member's data directory is recovered (newest snapshot + log, epochs),
the metrics endpoint and AdminServer start, the client port opens (clients are turned away
until the member is synced with a leader), then the election and quorum ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zkpy.quorum.disk import QuorumDisk
from zkpy.quorum.driver import QuorumDriver
from zkpy.quorum.peer import PeerConfig
from zkpy.quorum.transport import PeerAddress
from zkpy.server.persistence import FsyncRecorder, LogStats, SnapshotSchedule, Snapshotter, start_autopurge
from zkpy.server.quorum_server import QuorumPeerServer, stop_driver

log = logging.getLogger("zkpy.server")


def peer_config(config: Any) -> tuple[PeerConfig, dict[int, PeerAddress]]:
    """The consensus core's view of zoo.cfg: voters, observers, limits and the membership text."""
    if int(getattr(config, "election_alg", 3)) != 3:
        raise ValueError(f"electionAlg={config.election_alg} is not supported (only 3, fast leader election)")
    servers = config.servers
    peers = {sid: PeerAddress(s.host, s.quorum_port, s.election_port) for sid, s in servers.items()}
    voters = frozenset(sid for sid, s in servers.items() if s.peer_type == "participant")
    observers = frozenset(sid for sid, s in servers.items() if s.peer_type == "observer")
    membership = "".join(f"{k}={v}\n" for k, v in config.membership()).rstrip("\n")
    cfg = PeerConfig(my_id=int(config.my_id), voters=voters, observers=observers, tick_ms=int(config.tick_time_ms),
                     init_limit=int(config.init_limit), sync_limit=int(config.sync_limit),
                     leader_serves=bool(config.leader_serves), config_bytes=membership.encode())
    return cfg, peers


class MemberStorage:
    """Snapshots and retention for a member (the driver's QuorumDisk owns the log and epochs)."""

    def __init__(self, config: Any, server: QuorumPeerServer, disk: QuorumDisk) -> None:
        self.config = config
        self.disk = disk
        self.stats = LogStats()
        self.fsyncs = FsyncRecorder(self.stats, int(getattr(config, "fsync_warning_threshold_ms", 1000)),
                                    server.metrics)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="zkpy-snapshot")
        self.snapshotter = Snapshotter(lambda: server.db, disk.dirs.snap_dir, disk.dirs.snap_dir, self._executor,
                                       self.stats, getattr(config, "snapshot_compression_method", ""))
        self.snapshotter.metrics = server.metrics
        self.schedule = SnapshotSchedule(int(config.snap_count), int(getattr(config, "snap_size_limit_kb", 0)) * 1024)
        self.server = server
        self._purge_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.server.after_apply = self.after_apply
        self._purge_task = start_autopurge(self.config, self._executor)

    def after_apply(self, n_txns: int) -> None:
        # Only committed txns are applied, so any snapshot taken here is of a committed state.
        if self.schedule.due(n_txns, 0) and not self.snapshotter.running:
            self.schedule.reset()
            self.disk.roll_requested = True
            self.snapshotter.start()

    async def close(self) -> None:
        if self._purge_task is not None:
            self._purge_task.cancel()
        task = self.snapshotter.task
        if task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 20)
        self._executor.shutdown(wait=True)


async def serve_member(config: Any, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> int:
    from zkpy.server.fourlw import FourLetterWords
    from zkpy.server.runner import close_endpoints, start_endpoints, stop_on_signals

    try:
        pcfg, peers = peer_config(config)
    except ValueError as e:
        print(f"zkpy: {e}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    disk = QuorumDisk(config.data_dir, config.data_log_dir, prealloc_bytes=int(config.pre_alloc_size_kb) * 1024,
                      force_sync=bool(config.force_sync), extended_types=bool(config.extended_types_enabled),
                      snapshot_compression=getattr(config, "snapshot_compression_method", "") or "")
    db, state = await loop.run_in_executor(None, disk.load)
    server = QuorumPeerServer(config, pcfg.my_id)
    server.four_letter_words = FourLetterWords(config)
    server.attach_database(db)
    storage = MemberStorage(config, server, disk)
    endpoints = await start_endpoints(config, server, storage)
    if isinstance(endpoints, int):
        return endpoints
    stop = stop or asyncio.Event()
    server.on_fatal = stop.set
    stop_on_signals(stop)
    me = config.servers[pcfg.my_id]
    host = me.client_host or config.client_port_address or "0.0.0.0"
    port = me.client_port or config.client_port
    await server.start(host, port)
    driver = QuorumDriver(pcfg, peers, disk, state, server, on_fsync=storage.fsyncs.record)
    server.driver = driver
    await driver.start()
    storage.start()
    log.info("zkpy member %d: clients on %s:%d, quorum %s:%d, election %s:%d (last zxid 0x%x)", pcfg.my_id,
             host, server.bound_port, me.host, me.quorum_port, me.host, me.election_port, server.last_zxid)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down")
    await server.stop()
    await storage.close()
    await stop_driver(driver)
    await close_endpoints(*endpoints)
    if driver.failed is not None:
        log.critical("stopped after a persistence failure: %s", driver.failed)
        return 1
    log.info("stopped")
    return 0
