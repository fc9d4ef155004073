"""Group commit: batches, order, and answers sent in chunks of a large batch."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.aio import HeldAio, kernel_aio
from zkpy.proto.records import SetDataTxn, TxnHeader
from zkpy.server.commit import APPLY_CHUNK, CommitPipeline, MemoryOnly
from zkpy.server.persistence import TxnLogDurability
from zkpy.storage.txnlog import TxnLogIterator, TxnLogWriter


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


class SlowFirstFlush(TxnLogWriter):
    """A real log writer whose first flush waits until the test lets it go."""

    def __init__(self, log_dir: Path, fail: bool = False) -> None:
        super().__init__(log_dir, prealloc_bytes=64 * 1024)
        self.go = threading.Event()
        self.flushes = 0
        self.fail = fail

    def flush(self, sync: bool = True) -> None:
        self.flushes += 1
        if self.flushes == 1:
            assert self.go.wait(10)
            if self.fail:
                raise OSError(5, "Input/output error")
        super().flush(sync)


def _submit_in_turns(pipeline: CommitPipeline, turns: int, per_turn: int, roll_at: int | None = None,
                     durability: TxnLogDurability | None = None, first_zxid: int = 1) -> Awaitable[None]:
    async def go() -> None:
        zxid = first_zxid - 1
        for turn in range(turns):
            if turn == roll_at and durability is not None:
                durability.request_roll()
            for _ in range(per_turn):
                zxid += 1
                txn = SetDataTxn("/n", b"v", zxid)
                pipeline.submit(zxid, TxnHeader(1, zxid, zxid, 0, 5), txn, txn.to_bytes())
            await asyncio.sleep(0)  # end of the turn: this batch goes to the log thread
    return go()


def _check_23_txns_in_two_files(durability: TxnLogDurability, applied: list[object], log_dir: Path) -> None:
    durability.close()
    assert [a for a in applied if a != "batch done"] == list(range(1, 24))
    assert durability.stats.txns == 23
    # The roll asked for before the third turn's batch started a new file at its first zxid.
    assert sorted(p.name for p in log_dir.iterdir()) == ["log.1", f"log.{3 + 2 * 4 + 1:x}"]
    assert [e.hdr.zxid for e in TxnLogIterator(log_dir, 0)] == list(range(1, 24))


def test_batches_handed_over_while_the_log_is_busy_share_one_fsync(tmp_path: Path) -> None:
    writer = SlowFirstFlush(tmp_path)
    durability = TxnLogDurability(writer, 1000)
    applied: list[object] = []

    async def go() -> None:
        pipeline = CommitPipeline(durability, applied.append, lambda: applied.append("batch done"))
        await _submit_in_turns(pipeline, 1, 3)
        await asyncio.sleep(0.05)  # the log thread is inside the first flush now
        await _submit_in_turns(pipeline, 5, 4, roll_at=2, durability=durability, first_zxid=4)
        assert [a for a in applied if a != "batch done"] == []  # nothing acknowledged before its fsync
        writer.go.set()
        await pipeline.drain()
        assert writer.flushes == 2 and durability.stats.fsync_count == 2  # five turns, one fsync

    asyncio.run(go())
    _check_23_txns_in_two_files(durability, applied, tmp_path)


class OutOfOrderLog:
    """A backend whose syncs finish in reverse order: batches must still apply in order."""

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[None]] = []

    def append(self, hdr: TxnHeader, txn: object, raw: bytes | None = None) -> None:
        pass

    def sync(self) -> asyncio.Future[None]:
        done = asyncio.get_running_loop().create_future()
        self.waiting.append(done)
        return done


def test_batches_apply_in_the_order_they_were_handed_over() -> None:
    applied: list[object] = []

    async def go() -> None:
        log = OutOfOrderLog()
        pipeline = CommitPipeline(log, applied.append, lambda: applied.append("|"))  # type: ignore[arg-type]
        await _submit_in_turns(pipeline, 3, 2)
        await asyncio.sleep(0)
        assert len(log.waiting) == 3
        for done in reversed(log.waiting):
            done.set_result(None)
            await asyncio.sleep(0)
            if done is not log.waiting[0]:
                assert applied == []
        await pipeline.drain()

    asyncio.run(go())
    assert applied == [1, 2, "|", 3, 4, "|", 5, 6, "|"]


def test_an_entry_too_long_for_the_log_fails_the_pipeline_unacknowledged(tmp_path: Path) -> None:
    durability = TxnLogDurability(TxnLogWriter(tmp_path, prealloc_bytes=64 * 1024, max_entry_bytes=200), 1000)
    applied: list[object] = []

    async def go() -> None:
        pipeline = CommitPipeline(durability, applied.append, lambda: None)
        small, big = SetDataTxn("/n", b"v", 1), SetDataTxn("/n", b"x" * 500, 2)
        pipeline.submit(1, TxnHeader(1, 1, 1, 0, 5), small, small.to_bytes())
        pipeline.submit(2, TxnHeader(1, 2, 2, 0, 5), big, big.to_bytes())
        await pipeline.drain()
        assert isinstance(pipeline.failed, ValueError)

    asyncio.run(go())
    durability.close()
    assert applied == []
    assert list(TxnLogIterator(tmp_path, 0)) == []


def test_kernel_aio_fsyncs_files_and_directories_and_reports_a_bad_fd(tmp_path: Path) -> None:
    aio = kernel_aio(tmp_path)
    try:
        fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o644)
        dir_fd = os.open(tmp_path, os.O_RDONLY)
        os.write(fd, b"x")
        aio.submit([fd], [dir_fd])
        assert aio.in_flight == 2
        assert sorted(aio.wait(timeout_s=10)) == [0, 0] and aio.in_flight == 0
        os.close(fd)
        os.close(dir_fd)
        with pytest.raises(OSError):
            aio.submit([fd], [])  # closed: the kernel refuses it at once
        assert aio.in_flight == 0
    finally:
        aio.close()


def test_kernel_aio_batches_handed_over_during_an_fsync_share_the_next_one(tmp_path: Path) -> None:
    aio = HeldAio(kernel_aio(tmp_path))
    durability = TxnLogDurability(TxnLogWriter(tmp_path, prealloc_bytes=64 * 1024), 1000, aio=aio)  # type: ignore[arg-type]
    applied: list[object] = []

    async def go() -> None:
        pipeline = CommitPipeline(durability, applied.append, lambda: applied.append("batch done"))
        await _submit_in_turns(pipeline, 1, 3)
        await asyncio.sleep(0.05)  # the first fsync is done in the kernel, its completion held
        await _submit_in_turns(pipeline, 5, 4, roll_at=2, durability=durability, first_zxid=4)
        assert applied == [] and len(aio.submits) == 1  # nothing acknowledged before its fsync
        aio.release()
        await pipeline.drain()
        assert durability.stats.fsync_count == 2  # five turns, one fsync
        # The second covers the rolled file, the new one and the directory entry of the new one.
        assert aio.submits == [(1, 1), (2, 1)]

    asyncio.run(go())
    _check_23_txns_in_two_files(durability, applied, tmp_path)


def _first_fsync_held(tmp_path: Path, mode: str, fail: bool) -> tuple[TxnLogDurability, Callable[[], None]]:
    """A real log whose first fsync (thread) or its completion (AIO) waits for the release."""
    if mode == "thread":
        writer = SlowFirstFlush(tmp_path, fail=fail)
        return TxnLogDurability(writer, 1000), writer.go.set
    aio = HeldAio(kernel_aio(tmp_path), fail=fail)
    log = TxnLogWriter(tmp_path, prealloc_bytes=64 * 1024)
    return TxnLogDurability(log, 1000, aio=aio), aio.release  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["thread", "aio"])
def test_a_failed_fsync_acknowledges_nothing_of_its_batch_or_later(tmp_path: Path, mode: str) -> None:
    durability, release = _first_fsync_held(tmp_path, mode, fail=True)
    applied: list[object] = []
    failures: list[bool] = []

    async def go() -> None:
        pipeline = CommitPipeline(durability, applied.append, lambda: None)
        pipeline.on_failure = lambda: failures.append(True)
        await _submit_in_turns(pipeline, 1, 2)
        await asyncio.sleep(0.05)
        await _submit_in_turns(pipeline, 2, 2, first_zxid=3)
        release()
        await pipeline.drain()
        assert isinstance(pipeline.failed, OSError) and pipeline.failed.errno == 5
        with pytest.raises(RuntimeError, match="transaction log failed"):
            pipeline.submit(99, TxnHeader(1, 99, 99, 0, 5), None)

    asyncio.run(go())
    durability.close()
    assert applied == [] and failures == [True]


def test_kernel_aio_close_syncs_what_is_under_way_and_what_waits(tmp_path: Path) -> None:
    aio = HeldAio(kernel_aio(tmp_path))
    durability = TxnLogDurability(TxnLogWriter(tmp_path, prealloc_bytes=64 * 1024), 1000, aio=aio)  # type: ignore[arg-type]
    results: list[object] = []

    async def go() -> None:
        futures = []
        for zxid in (1, 2, 3):
            txn = SetDataTxn("/n", b"v", zxid)
            durability.append(TxnHeader(1, zxid, zxid, 0, 5), txn, txn.to_bytes())
            futures.append(durability.sync())  # the first is under way, the others wait for it
        durability.close()  # as Storage.close does in this mode: on the loop
        results.extend(f.exception() if f.done() else "pending" for f in futures)

    asyncio.run(go())
    assert results == [None, None, None]
    assert [e.hdr.zxid for e in TxnLogIterator(tmp_path, 0)] == [1, 2, 3]
