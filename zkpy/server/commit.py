"""Group commit: prepared txns become durable in batches, then are applied in zxid order.

The pipeline collects the txns prepared during an event-loop turn, asks the
durability backend to make them durable with one fsync (standalone: the
transaction log, written off the event loop), and then hands each to
``on_commit`` in order.  Txns prepared while a sync runs form the next batch,
so write throughput grows with concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
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
        until :meth:`sync` returns."""

    async def sync(self) -> None:
        """Make every txn appended so far durable."""


class MemoryOnly:
    """No log: txns are 'durable' at once (a server started without a data directory)."""

    def append(self, hdr: TxnHeader, txn: Record | None, raw: bytes | None = None) -> None:
        pass

    async def sync(self) -> None:
        return None


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
        self._task: asyncio.Task[None] | None = None
        self._memory = isinstance(durability, MemoryOnly)
        self._scheduled = False
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
        if self._memory:
            if not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._commit_memory)
        elif self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _commit_memory(self) -> None:
        self._scheduled = False
        batch, self._batch = self._batch, []
        self.clock = time.time()
        self._apply(batch)

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

    async def _run(self) -> None:
        # The next batch's write + fsync starts as soon as the previous one is durable, before
        # that one is applied and answered: the disk is never idle while the loop applies.
        loop = asyncio.get_running_loop()
        batch, self._batch = self._batch, []
        syncing = loop.create_task(self.durability.sync())
        try:
            while batch:
                await syncing
                nxt, self._batch = self._batch, []
                if nxt:
                    syncing = loop.create_task(self.durability.sync())
                self.clock = time.time()
                self._apply(batch)
                batch = nxt
                if not batch and self._batch:
                    # Prepared while this batch was applied: take them now rather than return.
                    batch, self._batch = self._batch, []
                    syncing = loop.create_task(self.durability.sync())
        except Exception as e:  # a failed fsync must not be acknowledged, ever
            self.failed = e
            self._batch.clear()
            log.critical("transaction log failure, no further writes are acknowledged: %s", e)
            if self.on_failure is not None:
                self.on_failure()
        finally:
            self._task = None

    async def drain(self) -> None:
        """Wait until everything submitted so far is applied."""
        for _ in range(10000):
            if not self._batch and self._task is None and not self._scheduled:
                return
            if self._task is not None:
                await asyncio.shield(self._task)
            else:
                await asyncio.sleep(0)
