"""The asyncio driver: connects a :class:`PeerCore` to TCP, the disk and the server.

Each core input is followed by :meth:`QuorumDriver._pump`, which handles every Ready in
order (see :mod:`zkpy.quorum.effects`): apply to the database, send, hand the persist
items over, report to the server.  Persist items go to the member's disk I/O: on Linux
:class:`DiskAio` (appends written by the loop, fsyncs run by the kernel through AIO; other
items on an executor thread), else :class:`DiskThread` (a thread fed by a queue).  Either
way everything handed over while an fsync runs shares the next one (group commit), and
``PeerCore.persisted`` is called once they are durable -- only then does the core emit what
depended on them (ACKs, ACKEPOCH, ...).
Time reaches the core through a tick task that wakes at the core's next deadline
(at least every ``MAX_TICK_SLEEP_S``), and sooner only when a pump brings that deadline
forward.

What the server provides is the :class:`ServerHooks` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from zkpy.proto.records import QuorumPacket
from zkpy.quorum.disk import QuorumDisk
from zkpy.quorum.effects import PersistItem, Ready, Role
from zkpy.quorum.peer import DiskState, PeerConfig, PeerCore
from zkpy.quorum.snapwire import signature
from zkpy.quorum.transport import ElectionChannels, PeerAddress, QuorumLinks
from zkpy.quorum.wire import encode_quorum_packet
from zkpy.server.database import Database
from zkpy.server.persistence import next_group
from zkpy.storage.aio import AioFsync, AioLogFlush
from zkpy.storage.txnlog import FramedTxns

log = logging.getLogger(__name__)

MAX_TICK_SLEEP_S = 0.05
MIN_TICK_SLEEP_S = 0.002


# Where a member's log fsyncs are reported: (milliseconds, txns made durable); see FsyncRecorder.
FsyncObserver = Callable[[float, int], None]


class ServerHooks(Protocol):
    """What the server does with what the consensus core decides."""

    def apply(self, zxid: int, entry: bytes) -> None:
        """Apply a committed txn (TxnHeader + txn) to the database, in zxid order."""

    def applied_zxid(self) -> int:
        """The zxid the database stands at."""

    def snapshot_bytes(self) -> bytes:
        """The database serialized for a SNAP sync (:func:`zkpy.quorum.snapwire.encode_database`)."""

    def replace_database(self, db: Database) -> None:
        """Serve ``db`` from now on (after a SNAP install or a TRUNC reload)."""

    def role_changed(self, role: Role, leader_id: int | None, epoch: int) -> None: ...

    def serving_changed(self, serving: bool) -> None: ...

    def learner_request(self, sid: int, request: bytes, authinfo: list) -> None:
        """Leader: a write a learner forwarded (REQUEST data and the client's auth ids); prepare
        it and call propose()."""

    def session_touches(self, touches: list[tuple[int, int]]) -> None: ...

    def revalidate_request(self, sid: int, session_id: int, timeout_ms: int) -> None: ...

    def revalidated(self, session_id: int, valid: bool) -> None: ...

    def sync_done(self, token: object) -> None: ...

    def fatal(self, error: BaseException) -> None:
        """Persisting failed: nothing further may be acknowledged; stop the member."""


class QuorumDriver:
    """Runs one member: the core, its transport, its disk."""

    def __init__(self, config: PeerConfig, peers: dict[int, PeerAddress], disk: QuorumDisk, state: DiskState,
                 hooks: ServerHooks, clock: Callable[[], float] | None = None,
                 on_fsync: FsyncObserver | None = None) -> None:
        self.config = config
        self.peers = peers
        self.disk = disk
        self.hooks = hooks
        self._clock = clock
        self._state = state
        self._on_fsync = on_fsync
        self.core: PeerCore | None = None
        self.elections = ElectionChannels(config.my_id, peers, self._on_election_message, self._on_election_connected)
        self.links = QuorumLinks(config.my_id, peers, self._on_accepted, self._on_connected, self._on_packets,
                                 self._on_closed)
        self._disk_io: DiskAio | DiskThread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick_wake = asyncio.Event()
        # When the tick loop wakes next by itself (driver clock, ms): a pump wakes it sooner
        # only for a deadline before that, not after every pump.
        self._wake_at_ms = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._pumping = False
        self._pump_scheduled = False
        self._stopping = False
        self.failed: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    def now_ms(self) -> int:
        t = self._clock() if self._clock is not None else (self._loop or asyncio.get_running_loop()).time()
        return int(t * 1000)

    async def start(self) -> None:
        await self.links.start()
        await self.elections.start()
        self.core = PeerCore(self.config, self._state, self.now_ms())
        self._loop = asyncio.get_running_loop()  # kept: each lookup costs a getpid() system call
        # Kernel AIO for the log's fsyncs unless ZKPY_TXNLOG_AIO=0 (or it does not work here).
        aio = AioFsync.open(self.disk.dirs.log_dir) if os.environ.get("ZKPY_TXNLOG_AIO", "1") != "0" else None
        if aio is not None:
            self._disk_io = DiskAio(self.disk, self._loop, self._persisted, aio, self._on_fsync)
        else:
            self._disk_io = DiskThread(self.disk, self._loop, self._persisted, f"zkpy-quorum-disk-{self.config.my_id}",
                                       self._on_fsync)
        self._tasks.append(asyncio.ensure_future(self._tick_loop()))
        self._pump()

    async def stop(self) -> None:
        self._stopping = True
        self._tick_wake.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        await self.links.close()
        await self.elections.close()
        loop = asyncio.get_running_loop()
        if self._disk_io is not None:
            await self._disk_io.close()  # after what was handed over
        await loop.run_in_executor(None, self.disk.close)

    @property
    def peer(self) -> PeerCore:
        if self.core is None:
            raise RuntimeError("the driver has not started")
        return self.core

    # ------------------------------------------------------------------ server requests

    # propose and forward leave the core's clock alone: neither looks at it, and they come once
    # per write (the clock moves with every packet received and every tick).
    def propose(self, entry: bytes) -> int:
        try:
            return self.peer.propose(entry)
        finally:
            self._pump_soon()

    def forward(self, request: bytes, authinfo: list | None = None) -> None:
        try:
            self.peer.forward(request, authinfo)
        finally:
            self._pump_soon()

    def sync(self, token: object, request: bytes = b"") -> None:
        core = self.peer
        core.advance_time(self.now_ms())
        try:
            core.sync(token, request)
        finally:
            self._pump()

    def touch(self, session_id: int, timeout_ms: int) -> None:
        self.peer.touch(session_id, timeout_ms)

    def revalidate(self, session_id: int, timeout_ms: int) -> None:
        self.peer.revalidate(session_id, timeout_ms)
        self._pump()

    def revalidate_reply(self, sid: int, session_id: int, valid: bool) -> None:
        self.peer.revalidate_reply(sid, session_id, valid)
        self._pump()

    # ------------------------------------------------------------------ transport events

    def _input(self) -> PeerCore | None:
        core = self.core
        if core is None or self._stopping:
            return None
        core.advance_time(self.now_ms())
        return core

    def _on_election_message(self, sid: int, data: bytes) -> None:
        core = self._input()
        if core is not None:
            core.election_message(sid, data)
            self._pump()

    def _on_election_connected(self, sid: int) -> None:
        core = self._input()
        if core is not None:
            core.election_connected(sid)
            self._pump()

    def _on_accepted(self, conn: int) -> None:
        core = self._input()
        if core is not None:
            core.quorum_accepted(conn)
            self._pump()

    def _on_connected(self, conn: int) -> None:
        core = self._input()
        if core is not None:
            core.quorum_connected(conn)
            self._pump()

    def _on_packets(self, conn: int, packets: list[tuple[QuorumPacket, bytes | None]]) -> None:
        # Every packet of one read goes in before the Readies are handled: the ACKs of a batch
        # commit together and their COMMITs leave in one send.
        core = self._input()
        if core is not None:
            try:
                core.quorum_packets(conn, packets)
            finally:
                self._pump()

    def _on_closed(self, conn: int) -> None:
        core = self._input()
        if core is not None:
            core.quorum_closed(conn)
            self._pump()

    # ------------------------------------------------------------------ readies

    def _pump_soon(self) -> None:
        """Handle the Readies at the end of this event-loop turn: the writes of every client
        request read in one turn share one Ready (one log append, one PROPOSAL send per peer).
        Nothing waits on them sooner: their sends are coalesced per turn anyway."""
        if not self._pump_scheduled:
            self._pump_scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        if not self._stopping:
            self._pump()

    def _pump(self) -> None:
        if self._pumping or self.core is None:
            return  # the outer call picks up whatever this input queued
        self._pumping = True
        try:
            while True:
                rd = self.core.take_ready()
                if rd is None:
                    break
                self._handle(rd)
        finally:
            self._pumping = False
        deadline = self.core.next_deadline()
        if deadline is not None and deadline < self._wake_at_ms:
            self._tick_wake.set()

    def _handle(self, rd: Ready) -> None:
        hooks = self.hooks
        core = self.peer
        for zxid, entry in rd.apply:
            hooks.apply(zxid, entry)
        for conn in rd.close:
            self.links.close_conn(conn)
        for c in rd.connect:
            self.links.connect(c.conn, c.sid)
        for sid, n in rd.election:
            self.elections.send(sid, n.to_bytes())
        send = self.links.send
        for out in rd.packets:
            if out.encoded is not None:
                send(out.conn, b"".join(out.encoded))
                continue
            send(out.conn, encode_quorum_packet(out.packet))
            if out.with_snapshot:
                # Serialized now, after this Ready's txns were applied: the state at SNAP's zxid.
                self.links.send(out.conn, hooks.snapshot_bytes() + signature())
        if rd.persist and self._disk_io is not None and not self._stopping:
            try:
                items = self.disk.frame(rd.persist)
            except ValueError as e:  # an entry no log reader would accept: nothing after it is acknowledged
                self._persisted(rd.persist_token, None, e)
            else:
                self._disk_io.hand_over(rd.persist_token, items, hooks.applied_zxid())
        if rd.role is not None:
            hooks.role_changed(rd.role, core.leader_id, core.epoch)
        if rd.serving is not None:
            hooks.serving_changed(rd.serving)
        for sid, data, authinfo in rd.learner_requests:
            hooks.learner_request(sid, data, authinfo)
        if rd.session_touches:
            hooks.session_touches(rd.session_touches)
        for sid, session, timeout in rd.revalidate_requests:
            hooks.revalidate_request(sid, session, timeout)
        for session, valid in rd.revalidated:
            hooks.revalidated(session, valid)
        for token in rd.syncs_done:
            hooks.sync_done(token)

    # ------------------------------------------------------------------ background tasks

    async def _tick_loop(self) -> None:
        while not self._stopping:
            core = self.peer
            now = self.now_ms()
            core.tick(now)
            self._pump()
            deadline = core.next_deadline()
            wait = MAX_TICK_SLEEP_S if deadline is None else (deadline - now) / 1000
            wait = min(max(wait, MIN_TICK_SLEEP_S), MAX_TICK_SLEEP_S)
            self._wake_at_ms = now + int(wait * 1000)
            self._tick_wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._tick_wake.wait(), wait)

    def _persisted(self, token: int, database: Database | None, error: BaseException | None) -> None:
        """On the loop: the disk thread made everything up to ``token`` durable (or failed)."""
        if self._stopping:
            return
        if error is not None:  # an unpersisted write must never be acknowledged
            self.failed = error
            log.critical("quorum persistence failed, stopping: %s", error)
            self._stopping = True
            self.hooks.fatal(error)
            return
        if database is not None:
            self.hooks.replace_database(database)
        core = self._input()
        if core is not None:
            core.persisted(token)
            self._pump()


_Handed = tuple[int, list[PersistItem | FramedTxns], int]  # persist token, items, the applied zxid then


class DiskThread:
    """The member's disk I/O, on a thread of its own fed by a queue.

    The thread takes every batch handed over by the time it is free, carries them out in order
    with one fsync at the end (a batch with epochs, a TRUNC or a SNAP syncs what came before
    it first), and reports the last token with one wake-up of the event loop.  After a failure
    it stops: nothing later may become durable and be acknowledged."""

    def __init__(self, disk: QuorumDisk, loop: asyncio.AbstractEventLoop,
                 done: Callable[[int, Database | None, BaseException | None], None], name: str,
                 on_fsync: FsyncObserver | None = None) -> None:
        self.disk = disk
        self._loop = loop
        self._done = done
        self._on_fsync = on_fsync
        self._handed: queue.SimpleQueue[_Handed | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def hand_over(self, token: int, items: list[PersistItem | FramedTxns], applied_zxid: int) -> None:
        self._handed.put((token, items, applied_zxid))

    def stop(self) -> None:
        """Blocks until what was handed over before is done."""
        self._handed.put(None)
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while True:
            group, stop = next_group(self._handed)
            if not group:
                return
            database: Database | None = None
            error: BaseException | None = None
            started = time.monotonic()
            try:
                database = persist_group(self.disk, group)
            except BaseException as e:
                error = e
            txns = appended_txns(group)
            if error is None and txns is not None and self._on_fsync is not None:
                self._on_fsync((time.monotonic() - started) * 1000, txns)
            try:
                self._loop.call_soon_threadsafe(self._done, group[-1][0], database, error)
            except RuntimeError:
                return  # the loop is closed: nobody waits any more
            if stop or error is not None:
                return

    async def close(self) -> None:
        """Once what was handed over before is done."""
        await asyncio.get_running_loop().run_in_executor(None, self.stop)


def appended_txns(group: list[_Handed]) -> int | None:
    """The txns of a group that only appends to the log (the hot path), or None if it carries
    anything else (epochs, TRUNC, SNAP)."""
    txns = 0
    for _token, items, _applied in group:
        for item in items:
            if type(item) is not FramedTxns:
                return None
            txns += item.count
    return txns


def persist_group(disk: QuorumDisk, group: list[_Handed]) -> Database | None:
    """Carry out the batches of ``group`` in order with one fsync at the end; the database to
    switch to if one of them replaced it."""
    database: Database | None = None
    last = len(group) - 1
    for i, (_token, items, applied) in enumerate(group):
        result = disk.persist(items, applied, sync=i == last)
        if result.database is not None:
            database = result.database
    return database


class DiskAio:
    """The member's disk I/O on the event loop, the log's fsyncs run by the kernel (AioFsync).

    Appends, the hot path, are written by the loop; everything handed over while an fsync runs
    shares the next one, submitted as soon as it ends, and the group's last token is reported
    when it is done.  A group that carries anything else (epoch files, TRUNC, SNAP: rare, and
    blocking) is carried out by :func:`persist_group` on an executor thread, in turn with the
    fsyncs.  No Python thread wakes per batch (the DiskThread's GIL hand-offs are what cost at
    small batches).  After a failure it stops: nothing later becomes durable."""

    def __init__(self, disk: QuorumDisk, loop: asyncio.AbstractEventLoop,
                 done: Callable[[int, Database | None, BaseException | None], None], aio: AioFsync,
                 on_fsync: FsyncObserver | None = None) -> None:
        self.disk = disk
        self._loop = loop
        self._done = done
        self._on_fsync = on_fsync
        self._txns = 0  # in the group being synced
        self._flush = AioLogFlush(aio, loop, self._fsync_ended)
        self._queue: list[_Handed] = []
        self._busy = False
        self._failed = False
        self._token = 0  # the last token of the group being synced
        self._idle = asyncio.Event()
        self._idle.set()

    def hand_over(self, token: int, items: list[PersistItem | FramedTxns], applied_zxid: int) -> None:
        if self._failed:
            return
        self._queue.append((token, items, applied_zxid))
        if not self._busy:
            self._next()

    def _next(self) -> None:
        group, self._queue = self._queue, []
        self._busy = bool(group)
        if not group:
            self._idle.set()
            return
        self._idle.clear()
        self._token = group[-1][0]
        txns = appended_txns(group)
        if txns is not None:
            self._txns = txns
            self._append_and_sync(group)
        else:
            job = self._loop.run_in_executor(None, persist_group, self.disk, group)
            job.add_done_callback(self._after_job)

    def _append_and_sync(self, group: list[_Handed]) -> None:
        disk = self.disk
        try:
            if disk.roll_requested:
                disk.roll_requested = False
                disk.writer.roll()
            for _token, items, _applied in group:
                for framed in items:
                    disk.writer.append_framed(framed)  # type: ignore[arg-type]
            self._flush.start(disk.writer)
        except BaseException as e:
            self._fsync_ended(e)

    def _fsync_ended(self, error: BaseException | None) -> None:
        if error is None and self._on_fsync is not None:
            self._on_fsync((time.monotonic() - self._flush.started) * 1000, self._txns)
        self._reported(None, error)

    def _after_job(self, job: asyncio.Future[Database | None]) -> None:
        error = job.exception()
        self._reported(None if error is not None else job.result(), error)

    def _reported(self, database: Database | None, error: BaseException | None) -> None:
        token = self._token
        if error is not None:
            self._failed = True
            self._busy = False
            self._queue.clear()
            self._idle.set()
        else:
            self._next()  # the disk works on the next group while the loop goes on with this one
        self._done(token, database, error)

    async def close(self) -> None:
        """Once what was handed over is done (or failed): stop watching the kernel's completions."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), 60)
        self._flush.wait(timeout_s=30.0)
        self._flush.close()
