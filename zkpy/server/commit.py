"""Group commit: prepared txns become durable in batches, then are applied in zxid order.

The pipeline collects the txns prepared during an event-loop turn and, at the end of the
turn, hands them to the durability backend as one batch (standalone: the transaction log's
thread, which writes every batch handed over while it was busy with one fsync).  Batches
become durable in order; each is then handed to ``on_commit`` txn by txn, so write
throughput grows with concurrency and the disk never waits for the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from zkpy.proto.jute import Record
from zkpy.proto.records import TxnHeader

log = logging.getLogger(__name__)

# A large batch is applied in chunks of this many txns, the answers of each chunk sent before
# the next is applied: the clients (on other cores) work on them meanwhile instead of waiting
# for the whole batch.
APPLY_CHUNK = 128


class Durability(Protocol):
    """Where txns go before they may be applied and acknowledged."""

    def append(self, hdr: TxnHeader, txn: Record | None, raw: bytes | None = None) -> None:
        """Queue a txn (``raw``: the txn record already encoded, when known); it is not durable
        until the awaitable of a later :meth:`sync` is done."""

    def sync(self) -> Awaitable[None]:
        """Make every txn appended so far durable; several syncs may be under way at once
        (the pipeline applies their batches in the order it asked for them)."""


class MemoryOnly:
    """No log: txns are 'durable' at once (a server started without a data directory)."""

    def append(self, hdr: TxnHeader, txn: Record | None, raw: bytes | None = None) -> None:
        pass

    async def sync(self) -> None:
        return None


def running_loop(cached: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    """``cached`` while it runs, else the running loop: asyncio.get_running_loop() makes a
    getpid() system call each time (its fork check), too dear for once per write."""
    if cached is not None and cached.is_running():
        return cached
    return asyncio.get_running_loop()


def _consume(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


class CommitPipeline:
    """Batches txns through a Durability backend and applies them in order."""

    def __init__(self, durability: Durability, on_commit: Callable[[object], None],
                 on_batch_done: Callable[[], None]) -> None:
        self.durability = durability
        self.on_commit = on_commit
        self.on_batch_done = on_batch_done
        # Called after every APPLY_CHUNK txns of a large batch (the server flushes its answers).
        self.on_chunk_done: Callable[[], None] = lambda: None
        self._batch: list[object] = []
        # Batches handed to the backend, oldest first, with what says they are durable.
        self._syncing: deque[tuple[list[object], asyncio.Future[None]]] = deque()
        self._memory = isinstance(durability, MemoryOnly)
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None  # see running_loop
        self.failed: BaseException | None = None
        self.on_failure: Callable[[], None] | None = None
        # Wall-clock time when the batch being applied became durable (latency figures).
        self.clock = 0.0

    def __len__(self) -> int:
        return len(self._batch)

    def submit(self, item: object, hdr: TxnHeader, txn: Record | None, raw: bytes | None = None) -> None:
        if self.failed is not None:
            raise RuntimeError("the transaction log failed; the server is shutting down") from self.failed
        self.durability.append(hdr, txn, raw)
        self._batch.append(item)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop = running_loop(self._loop)
            loop.call_soon(self._commit_memory if self._memory else self._hand_over)

    def _commit_memory(self) -> None:
        self._scheduled = False
        batch, self._batch = self._batch, []
        self.clock = time.time()
        self._apply(batch)

    def _hand_over(self) -> None:
        # End of the loop turn that prepared these txns: one batch for the backend.
        self._scheduled = False
        batch, self._batch = self._batch, []
        if not batch or self.failed is not None:
            return
        durable = asyncio.ensure_future(self.durability.sync())
        self._syncing.append((batch, durable))
        durable.add_done_callback(self._on_durable)

    def _on_durable(self, _done: asyncio.Future[None]) -> None:
        syncing = self._syncing
        while syncing and syncing[0][1].done():
            batch, durable = syncing.popleft()
            error = BaseException("the sync was cancelled") if durable.cancelled() else durable.exception()
            if error is not None:
                self._fail(error)
                return
            self.clock = time.time()
            self._apply(batch)

    def _fail(self, error: BaseException) -> None:
        # A failed fsync must not be acknowledged, ever: this batch, the ones after it and
        # everything not handed over yet are dropped unanswered.
        self.failed = error
        self._batch.clear()
        for _batch, durable in self._syncing:
            # Their failures are this one: mark them seen rather than have each logged.
            durable.add_done_callback(_consume)
        self._syncing.clear()
        log.critical("transaction log failure, no further writes are acknowledged: %s", error)
        if self.on_failure is not None:
            self.on_failure()

    def _apply(self, batch: list[object]) -> None:
        if len(batch) > APPLY_CHUNK:
            for i, item in enumerate(batch, 1):
                self.on_commit(item)
                if i % APPLY_CHUNK == 0:
                    self.on_chunk_done()
        else:
            for item in batch:
                self.on_commit(item)
        self.on_batch_done()

    async def drain(self) -> None:
        """Wait until everything submitted so far is applied (or the log failed)."""
        for _ in range(10000):
            if self.failed is not None or (not self._batch and not self._syncing and not self._scheduled):
                return
            if self._syncing:
                last = self._syncing[-1][1]
                await asyncio.wait([last])
            await asyncio.sleep(0)
