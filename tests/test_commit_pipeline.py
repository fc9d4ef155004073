"""Group commit: batches, order, and answers sent in chunks of a large batch."""

from __future__ import annotations

import asyncio

from zkpy.proto.records import TxnHeader
from zkpy.server.commit import APPLY_CHUNK, CommitPipeline, MemoryOnly


class HeldLog:
    """A durability backend whose first sync waits until the test releases it."""

    def __init__(self) -> None:
        self.appended: list[int] = []
        self.syncs = 0
        self.release = asyncio.Event()

    def append(self, hdr: TxnHeader, txn: object, raw: bytes | None = None) -> None:
        self.appended.append(hdr.zxid)

    async def sync(self) -> None:
        self.syncs += 1
        await self.release.wait()


def run_pipeline(durability: object, n_first: int, n_second: int) -> list[object]:
    events: list[object] = []

    async def go() -> None:
        pipeline = CommitPipeline(durability, events.append, lambda: events.append("batch done"))  # type: ignore[arg-type]
        pipeline.on_chunk_done = lambda: events.append("chunk done")
        for i in range(n_first):
            pipeline.submit(i, TxnHeader(1, i, i + 1, 0, 5), None)
        await asyncio.sleep(0)  # the first batch goes to the log
        for i in range(n_first, n_first + n_second):
            pipeline.submit(i, TxnHeader(1, i, i + 1, 0, 5), None)
        if isinstance(durability, HeldLog):
            durability.release.set()
        await pipeline.drain()

    asyncio.run(go())
    return events


def test_a_large_batch_is_answered_in_chunks_in_order() -> None:
    log = HeldLog()
    big = 2 * APPLY_CHUNK + 44
    events = run_pipeline(log, 1, big)
    assert log.appended == list(range(1, big + 2))
    assert log.syncs == 2  # everything submitted while the first sync ran shared the second
    second = events[events.index("batch done") + 1:]
    assert [e for e in second if isinstance(e, int)] == list(range(1, big + 1))
    assert second.count("chunk done") == 2 and second[-1] == "batch done"
    assert second.index("chunk done") == APPLY_CHUNK  # after exactly one chunk of commits


def test_small_batches_have_no_chunk_flush_and_memory_only_chunks_too() -> None:
    events = run_pipeline(HeldLog(), 3, 5)
    assert "chunk done" not in events and events.count("batch done") == 2
    events = run_pipeline(MemoryOnly(), APPLY_CHUNK + 1, 0)
    assert events.count("chunk done") == 1 and events[-1] == "batch done"
