"""Start-up recovery: newest valid snapshot, log replay after it, torn tails, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zkpy.proto.constants import OpCode
from zkpy.proto.records import SetDataTxn, StatPersisted, TxnHeader
from zkpy.storage.errors import CorruptLogError, StorageError, UnrecoverableError
from zkpy.storage.recovery import check_data_dir, recover
from zkpy.storage.snapshot import SnapshotReader, write_snapshot
from zkpy.storage.txnlog import LogFileReader, TxnLogWriter

E = 1 << 32  # epoch 1


def _snap(vdir: Path, zxid: int, marker: bytes = b"") -> Path:
    st = StatPersisted(0, zxid, 0, 0, 0, 0, 0, 0, 0)
    return write_snapshot(vdir, zxid, {7: 5000}, {}, [("/", marker, -1, st)])


def _log(vdir: Path, zxids, *, roll_after: set[int] | None = None) -> None:
    with TxnLogWriter(vdir, prealloc_bytes=8192) as w:
        for z in zxids:
            w.append(TxnHeader(7, 1, z, 0, OpCode.setData), SetDataTxn("/", str(z).encode(), 1))
            if roll_after and z in roll_after:
                w.flush()
                w.roll()


def _vdir(tmp_path: Path) -> Path:
    v = tmp_path / "data" / "version-2"
    v.mkdir(parents=True)
    return v


def _replay(tmp_path: Path, **kw) -> tuple[object, list[int]]:
    rec = recover(tmp_path / "data", **kw)
    return rec, [e.hdr.zxid for e in rec.entries()]


def test_fresh_directory_is_an_empty_database_and_version_2_is_created(tmp_path: Path) -> None:
    rec, zxids = _replay(tmp_path)
    assert (tmp_path / "data" / "version-2").is_dir()
    assert rec.snapshot is None and zxids == [] and rec.report.empty_database


def test_loads_newest_snapshot_and_replays_only_later_entries(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _log(v, range(E + 1, E + 11), roll_after={E + 4})
    _snap(v, E + 3)
    _snap(v, E + 6, b"newest")
    rec, zxids = _replay(tmp_path)
    assert rec.snapshot.nodes[0][1] == b"newest" and rec.snapshot.sessions == {7: 5000}
    assert zxids == list(range(E + 7, E + 11))
    assert rec.report.last_zxid == E + 10 and rec.report.entries_replayed == 4


def test_corrupt_newest_snapshot_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _log(v, range(E + 1, E + 11))
    _snap(v, E + 3)
    bad = _snap(v, E + 6)
    raw = bytearray(bad.read_bytes())
    raw[20] ^= 0xFF  # inside the sessions: checksum fails, the tail still looks fine
    bad.write_bytes(bytes(raw))
    rec, zxids = _replay(tmp_path)
    assert rec.report.snapshot.name == "snapshot.100000003"
    assert [p.name for p, _ in rec.report.skipped_snapshots] == ["snapshot.100000006"]
    assert zxids == list(range(E + 4, E + 11))


def test_truncated_newest_snapshot_falls_back(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _log(v, range(E + 1, E + 5))
    _snap(v, E + 1)
    p = _snap(v, E + 3)
    p.write_bytes(p.read_bytes()[:30])
    rec, zxids = _replay(tmp_path)
    assert rec.report.snapshot_zxid == E + 1 and zxids == [E + 2, E + 3, E + 4]


def test_custom_loader_gets_a_streaming_reader(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _snap(v, E + 1, b"root")
    rec = recover(tmp_path / "data", load=lambda r: [n[0] for n in r.iter_nodes()])
    assert rec.snapshot == ["/"]


def test_loader_that_stops_early_still_gets_the_checksum_verified(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _snap(v, E + 1)
    p = _snap(v, E + 2)
    raw = bytearray(p.read_bytes())
    raw[-14] ^= 0xFF  # inside the digest: only the second seal notices
    p.write_bytes(bytes(raw))

    def first_node_only(r: SnapshotReader) -> str:
        return next(iter(r.iter_nodes()))[0]

    rec = recover(tmp_path / "data", load=first_node_only)
    assert rec.report.snapshot_zxid == E + 1


def test_no_valid_snapshot_at_all_is_refused_naming_the_directory(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    p = _snap(v, E + 1)
    p.write_bytes(p.read_bytes()[:-20] + b"\x00" * 15 + p.read_bytes()[-5:])
    with pytest.raises(UnrecoverableError, match=r"Not able to find valid snapshots in .*version-2"):
        recover(tmp_path / "data")


def test_logs_without_any_snapshot_are_refused(tmp_path: Path) -> None:
    _log(_vdir(tmp_path), [E + 1])
    with pytest.raises(UnrecoverableError, match="No snapshot found, but there are log entries"):
        recover(tmp_path / "data")


def test_trust_empty_snapshot_replays_logs_without_a_snapshot(tmp_path: Path) -> None:
    _log(_vdir(tmp_path), [E + 1, E + 2])
    _, zxids = _replay(tmp_path, trust_empty_snapshot=True)
    assert zxids == [E + 1, E + 2]


def test_gap_after_the_snapshot_is_refused_naming_the_log_file(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _snap(v, E + 2)
    _log(v, [E + 1, E + 2, E + 3])
    _log(v, [E + 6, E + 7])
    rec = recover(tmp_path / "data")
    with pytest.raises(UnrecoverableError, match=r"gap in the transaction log: .*log\.100000006 .*100000004"):
        list(rec.entries())


def test_gap_between_snapshot_and_first_log_is_refused(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _snap(v, E + 2)
    _log(v, [E + 5, E + 6])
    with pytest.raises(UnrecoverableError, match="gap"):
        list(recover(tmp_path / "data").entries())


def test_new_epoch_after_the_snapshot_is_not_a_gap(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _snap(v, E + 2)
    _log(v, [E + 3, 3 * E + 1, 3 * E + 2])
    _, zxids = _replay(tmp_path)
    assert zxids == [E + 3, 3 * E + 1, 3 * E + 2]


def test_crc_error_in_the_log_is_refused_naming_file_and_offset(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _snap(v, E + 1)
    _log(v, range(E + 1, E + 6))
    log = v / "log.100000001"
    off = [o for o, _ in LogFileReader(log)][2]
    raw = bytearray(log.read_bytes())
    raw[off + 30] ^= 0x01
    log.write_bytes(bytes(raw))
    with pytest.raises(CorruptLogError, match=rf"CRC check failed in .*log\.100000001 at offset {off}"):
        list(recover(tmp_path / "data").entries())


def test_torn_tail_is_reported_and_cut_off(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _snap(v, E + 1)
    _log(v, range(E + 1, E + 6))
    log = v / "log.100000001"
    last = [o for o, _ in LogFileReader(log)][-1]
    with open(log, "r+b") as f:
        f.seek(last + 20)
        f.write(bytes(200))  # the last record's tail never reached the disk
    rec, zxids = _replay(tmp_path)
    assert zxids == [E + 2, E + 3, E + 4]
    tear = rec.report.torn_tail
    assert tear is not None and tear.path == log and tear.offset == last and rec.report.torn_tail_removed
    assert log.stat().st_size == last
    assert "torn record at the end of log.100000001" in rec.report.summary()
    # the next writer starts a new file at the next zxid, and all of it replays
    _log(v, [E + 5, E + 6])
    _, zxids = _replay(tmp_path)
    assert zxids == [E + 2, E + 3, E + 4, E + 5, E + 6]


def test_dry_run_check_leaves_the_torn_tail_in_place(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _snap(v, E + 1)
    _log(v, range(E + 1, E + 4))
    log = v / "log.100000001"
    size = log.stat().st_size
    last = [o for o, _ in LogFileReader(log)][-1]
    with open(log, "r+b") as f:
        f.seek(last + 12)
        f.write(bytes(200))
    report = check_data_dir(tmp_path / "data")
    assert report.torn_tail is not None and not report.torn_tail_removed and log.stat().st_size == size


def test_empty_newest_log_file_without_header_is_removed(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _snap(v, E + 1)
    _log(v, [E + 1, E + 2])
    (v / "log.100000003").write_bytes(b"")  # created just before a crash
    _, zxids = _replay(tmp_path)
    assert zxids == [E + 2] and not (v / "log.100000003").exists()


def test_stray_files_are_tolerated(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    (tmp_path / "data" / "myid").write_text("1\n")
    (tmp_path / "data" / "zookeeper_server.pid").write_text("123")
    (v / "currentEpoch").write_text("1")
    (v / "acceptedEpoch.tmp").write_text("1")
    (v / "snapshot.100000002.tmp").write_bytes(b"Apache's own unfinished snapshot")
    (v / ".snapshot.100000003.99.tmp").write_bytes(b"ours")
    (v / "log.100000001.fixed").write_bytes(b"TxnLogToolkit output")
    _snap(v, E + 1)
    _log(v, [E + 1, E + 2])
    rec, zxids = _replay(tmp_path)
    assert zxids == [E + 2]
    assert [p.name for p in rec.report.removed_temp_files] == [".snapshot.100000003.99.tmp"]
    assert (tmp_path / "data" / "myid").read_text() == "1\n"


def test_separate_data_log_dir_is_honoured(tmp_path: Path) -> None:
    snap_v = _vdir(tmp_path)
    log_v = tmp_path / "logs" / "version-2"
    log_v.mkdir(parents=True)
    _snap(snap_v, E + 1)
    _log(log_v, [E + 1, E + 2, E + 3])
    rec = recover(tmp_path / "data", tmp_path / "logs")
    assert [e.hdr.zxid for e in rec.entries()] == [E + 2, E + 3]


def test_snapshot_in_the_log_dir_is_refused(tmp_path: Path) -> None:
    _vdir(tmp_path)
    log_v = tmp_path / "logs" / "version-2"
    log_v.mkdir(parents=True)
    _snap(log_v, E + 1)
    with pytest.raises(StorageError, match=r"Log directory .* has snapshot files"):
        recover(tmp_path / "data", tmp_path / "logs")


def test_duplicate_entries_are_skipped_and_reported(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _snap(v, E + 1)
    _log(v, [E + 2, E + 3, E + 3, E + 4])
    rec, zxids = _replay(tmp_path)
    assert zxids == [E + 2, E + 3, E + 4] and rec.report.duplicates_skipped == 1


def test_entries_can_only_be_consumed_once(tmp_path: Path) -> None:
    rec = recover(tmp_path / "data")
    list(rec.entries())
    with pytest.raises(RuntimeError):
        list(rec.entries())


def test_report_lines_name_what_was_done(tmp_path: Path) -> None:
    v = _vdir(tmp_path)
    _snap(v, E + 1)
    _log(v, [E + 1, E + 2])
    rec = recover(tmp_path / "data")
    list(rec.entries())
    text = "\n".join(rec.report.lines())
    assert "loaded snapshot snapshot.100000001" in text and "1 txns replayed from 1 log file(s)" in text
    assert os.fspath(v) in text
