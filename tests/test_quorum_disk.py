"""The data directory in quorum mode: persist items carried out in Apache ZooKeeper's formats."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from tests.support.aio import HeldAio, kernel_aio
from zkpy.proto.constants import OpCode
from zkpy.proto.records import CreateTxn, TxnHeader
from zkpy.quorum.disk import QuorumDisk
from zkpy.quorum.driver import DiskAio, DiskThread
from zkpy.quorum.effects import AppendEntries, InstallSnapshot, SetAcceptedEpoch, SetCurrentEpoch, TruncateLog
from zkpy.quorum.snapwire import encode_database
from zkpy.quorum.zxid import make_zxid
from zkpy.server.database import Database
from zkpy.storage import encode_txn
from zkpy.storage.files import list_snapshots
from zkpy.storage.txnlog import TxnLogIterator
from zkpy.tree.acl import OPEN_ACL_UNSAFE


def create(zxid: int, path: str) -> bytes:
    return encode_txn(TxnHeader(1, 1, zxid, 0, OpCode.create),
                      CreateTxn(path, b"d", list(OPEN_ACL_UNSAFE), False, -1))


def appends(*zxids: int) -> AppendEntries:
    return AppendEntries(list(zxids), [create(z, f"/n{z:x}") for z in zxids])


def open_disk(path: Path) -> QuorumDisk:
    return QuorumDisk(path, prealloc_bytes=4096)


def logged(disk: QuorumDisk) -> list[int]:
    return [e.hdr.zxid for e in TxnLogIterator(disk.dirs.log_dir)]


def test_a_fresh_directory_starts_at_zero_with_a_snapshot_and_epoch_files(tmp_path: Path):
    disk = open_disk(tmp_path)
    db, state = disk.load()
    assert db.last_zxid == 0 and (state.accepted_epoch, state.current_epoch, state.floor_zxid) == (0, 0, 0)
    assert [z for z, _ in list_snapshots(disk.dirs.snap_dir)] == [0]
    assert (disk.dirs.snap_dir / "acceptedEpoch").read_text() == "0"
    disk.close()


def test_epochs_are_decimal_files_replaced_atomically(tmp_path: Path):
    disk = open_disk(tmp_path)
    disk.load()
    disk.persist([SetAcceptedEpoch(7), SetCurrentEpoch(6)], 0)
    v2 = disk.dirs.snap_dir
    assert (v2 / "acceptedEpoch").read_text() == "7" and (v2 / "currentEpoch").read_text() == "6"
    assert not (v2 / "currentEpoch.tmp").exists()
    disk.close()


def test_appended_entries_come_back_after_a_restart(tmp_path: Path):
    disk = open_disk(tmp_path)
    disk.load()
    disk.persist([SetAcceptedEpoch(1), appends(make_zxid(1, 1), make_zxid(1, 2)), SetCurrentEpoch(1)], 0)
    disk.close()
    again = open_disk(tmp_path)
    db, state = again.load()
    assert [z for z, _ in state.entries] == [make_zxid(1, 1), make_zxid(1, 2)]
    assert state.entries[0][1] == create(make_zxid(1, 1), "/n100000001")
    assert db.last_zxid == make_zxid(1, 2) and db.tree.get_node("/n100000002") is not None
    assert state.current_epoch == 1
    again.close()


def test_truncation_drops_the_tail_and_reloads_a_database_past_it(tmp_path: Path):
    disk = open_disk(tmp_path)
    disk.load()
    disk.persist([appends(*(make_zxid(1, i) for i in range(1, 5)))], 0)
    result = disk.persist([TruncateLog(make_zxid(1, 2))], applied_zxid=make_zxid(1, 4))
    assert logged(disk) == [make_zxid(1, 1), make_zxid(1, 2)]
    assert result.database is not None and result.database.last_zxid == make_zxid(1, 2)
    assert result.database.tree.get_node("/n100000003") is None
    disk.persist([appends(make_zxid(2, 1))], make_zxid(1, 2))
    assert logged(disk)[-1] == make_zxid(2, 1)
    disk.close()


def test_a_snapshot_from_the_leader_replaces_the_history(tmp_path: Path):
    disk = open_disk(tmp_path)
    disk.load()
    disk.persist([appends(make_zxid(1, 1), make_zxid(1, 2), make_zxid(1, 3))], 0)
    leader_db = Database()
    for z in (make_zxid(1, 1), make_zxid(2, 1)):
        leader_db.apply(TxnHeader(1, 1, z, 0, OpCode.create), CreateTxn(f"/L{z:x}", b"", list(OPEN_ACL_UNSAFE),
                                                                           False, -1))
    z = make_zxid(2, 1)
    result = disk.persist([InstallSnapshot(z, encode_database(leader_db))], make_zxid(1, 3))
    assert result.database is not None and result.database.tree.get_node("/L200000001") is not None
    assert max(zx for zx, _ in list_snapshots(disk.dirs.snap_dir)) == z
    assert all(zx <= z for zx in logged(disk))
    disk.close()
    db, state = open_disk(tmp_path).load()
    assert db.last_zxid == z and state.floor_zxid == z and list(state.entries) == []
    assert db.tree.get_node("/L100000001") is not None and db.tree.get_node("/n100000002") is None


def run_disk_thread(disk: QuorumDisk, batches: list[list], hold_first: bool = True) -> list[tuple]:
    """Hand ``batches`` (tokens 1, 2, ...) to a DiskThread, the later ones while the first is being
    written; returns what the loop was told, in order."""

    async def main() -> list[tuple]:
        loop = asyncio.get_running_loop()
        reports: list[tuple] = []
        all_done = asyncio.Event()
        writing, release = threading.Event(), threading.Event()
        real = disk.persist

        def persist(items, applied, sync=True):
            if hold_first and not writing.is_set():
                writing.set()
                release.wait(10)
            return real(items, applied, sync)

        disk.persist = persist  # type: ignore[method-assign]

        def done(token, database, error):
            reports.append((token, database, error))
            if token == len(batches) or error is not None:
                all_done.set()

        worker = DiskThread(disk, loop, done, "test-disk")
        worker.hand_over(1, disk.frame(batches[0]), 0)
        if hold_first:
            await loop.run_in_executor(None, writing.wait, 10)
        for token, items in enumerate(batches[1:], 2):
            worker.hand_over(token, disk.frame(items), 0)
        release.set()
        await asyncio.wait_for(all_done.wait(), 10)
        await loop.run_in_executor(None, worker.stop)
        return reports

    return asyncio.run(main())


def test_batches_handed_over_while_the_disk_is_busy_share_one_fsync(tmp_path: Path):
    disk = open_disk(tmp_path)
    disk.load()
    syncs = []
    real_flush = disk.writer.flush
    disk.writer.flush = lambda sync=True: (syncs.append(sync), real_flush(sync))  # type: ignore[method-assign]
    batches = [[appends(make_zxid(1, 1))], [appends(make_zxid(1, 2))], [appends(make_zxid(1, 3), make_zxid(1, 4))]]
    reports = run_disk_thread(disk, batches)
    assert [token for token, _, _ in reports] == [1, 3]  # the second group reports its last token only
    assert syncs.count(True) == 2
    assert logged(disk) == [make_zxid(1, i) for i in (1, 2, 3, 4)]
    disk.close()


def test_after_a_failed_batch_the_disk_thread_makes_nothing_later_durable(tmp_path: Path):
    disk = open_disk(tmp_path)
    disk.load()
    real = disk.persist

    def failing(items, applied, sync=True):
        if any(isinstance(i, SetCurrentEpoch) for i in items):
            raise OSError("disk full")
        return real(items, applied, sync)

    disk.persist = failing  # type: ignore[method-assign]
    batches = [[appends(make_zxid(1, 1))], [SetCurrentEpoch(1)], [appends(make_zxid(1, 2))]]
    reports = run_disk_thread(disk, batches, hold_first=False)
    (token, _, error), = [r for r in reports if r[2] is not None]
    assert isinstance(error, OSError) and token >= 2
    assert make_zxid(1, 2) not in logged(disk)
    disk.close()


def test_framed_entries_are_logged_as_appended_ones(tmp_path: Path):
    a, b = open_disk(tmp_path / "a"), open_disk(tmp_path / "b")
    a.load()
    b.load()
    batch = appends(make_zxid(1, 1), make_zxid(1, 2))
    a.persist([batch], 0)
    b.persist(b.frame([batch]), 0)
    assert a.writer.current_path is not None and b.writer.current_path is not None
    assert a.writer.current_path.read_bytes() == b.writer.current_path.read_bytes()
    a.close()
    b.close()


def run_disk_aio(disk: QuorumDisk, batches: list[list], fail: bool = False) -> tuple[list[tuple], HeldAio]:
    """Hand ``batches`` (tokens 1, 2, ...) to a DiskAio, the later ones while the first one's
    fsync completion is held back; returns what the loop was told, in order."""
    aio = HeldAio(kernel_aio(disk.dirs.log_dir), fail=fail)

    async def main() -> list[tuple]:
        loop = asyncio.get_running_loop()
        reports: list[tuple] = []
        all_done = asyncio.Event()

        def done(token, database, error):
            reports.append((token, database, error))
            if token == len(batches) or error is not None:
                all_done.set()

        worker = DiskAio(disk, loop, done, aio)  # type: ignore[arg-type]
        worker.hand_over(1, disk.frame(batches[0]), 0)
        await asyncio.sleep(0.05)  # the first fsync is done in the kernel, its completion held
        for token, items in enumerate(batches[1:], 2):
            worker.hand_over(token, disk.frame(items), 0)
        assert reports == []
        aio.release()
        await asyncio.wait_for(all_done.wait(), 10)
        if not fail:
            worker.hand_over(len(batches) + 1, [], 0)  # an empty batch still reports its token
            await asyncio.sleep(0.05)
        await worker.close()
        return reports

    return asyncio.run(main()), aio


def test_disk_aio_batches_handed_over_during_an_fsync_share_the_next_one(tmp_path: Path):
    disk = open_disk(tmp_path)
    disk.load()
    batches = [[appends(make_zxid(1, 1))], [appends(make_zxid(1, 2))], [appends(make_zxid(1, 3), make_zxid(1, 4))]]
    reports, aio = run_disk_aio(disk, batches)
    assert [token for token, _, _ in reports] == [1, 3, 4]  # the second group reports its last token only
    assert len(aio.submits) == 3  # 1, then 2 and 3 together, then the empty 4
    assert logged(disk) == [make_zxid(1, i) for i in (1, 2, 3, 4)]
    disk.close()


def test_disk_aio_runs_other_items_on_a_thread_in_turn_with_the_fsyncs(tmp_path: Path):
    disk = open_disk(tmp_path)
    disk.load()
    batches = [[appends(make_zxid(1, 1))], [SetCurrentEpoch(7), appends(make_zxid(7, 1))], [appends(make_zxid(7, 2))]]
    reports, aio = run_disk_aio(disk, batches)
    # Batches 2 and 3 (one group, with the epoch) went to the executor; 1 and 4 to the kernel.
    assert [token for token, _, error in reports if error is None] == [1, 3, 4]
    assert len(aio.submits) == 2
    assert disk.read_epoch("currentEpoch") == 7
    assert logged(disk) == [make_zxid(1, 1), make_zxid(7, 1), make_zxid(7, 2)]
    disk.close()


def test_disk_aio_after_a_failed_fsync_nothing_later_is_reported_or_written(tmp_path: Path):
    disk = open_disk(tmp_path)
    disk.load()
    batches = [[appends(make_zxid(1, 1))], [appends(make_zxid(1, 2))]]
    reports, _aio = run_disk_aio(disk, batches, fail=True)
    (token, _, error), = reports
    assert token == 1 and isinstance(error, OSError) and error.errno == 5
    assert make_zxid(1, 2) not in logged(disk)
    disk.close()
