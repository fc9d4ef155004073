"""Retention: keep N snapshots and the logs needed to replay from the oldest kept one."""

from __future__ import annotations

from pathlib import Path

import pytest

from zkpy.proto.constants import OpCode
from zkpy.proto.records import SetDataTxn, StatPersisted, TxnHeader
from zkpy.storage import purge as purge_mod
from zkpy.storage.purge import autopurge, purge
from zkpy.storage.recovery import recover
from zkpy.storage.snapshot import write_snapshot
from zkpy.storage.txnlog import TxnLogWriter


def _populate(v: Path) -> None:
    """Logs starting at 1, 11, 21, 31, 41; snapshots at 5, 15, 25, 35, 45."""
    for start in (1, 11, 21, 31, 41):
        with TxnLogWriter(v, prealloc_bytes=4096) as w:
            for z in range(start, start + 10):
                w.append(TxnHeader(1, 1, z, 0, OpCode.setData), SetDataTxn("/", b"", 1))
    for z in (5, 15, 25, 35, 45):
        write_snapshot(v, z, {}, {}, [("/", b"", -1, StatPersisted(0, 0, 0, 0, 0, 0, 0, 0, 0))])


def _names(v: Path) -> list[str]:
    return sorted((p.name for p in v.iterdir()), key=lambda n: (n.split(".")[0], int(n.split(".")[1], 16)))


def test_keeps_n_snapshots_and_the_log_holding_the_oldest_kept_zxid(tmp_path: Path) -> None:
    v = tmp_path / "version-2"
    v.mkdir()
    _populate(v)
    removed = purge(tmp_path, retain_count=3)
    assert sorted(p.name for p in removed) == ["log.1", "log.b", "snapshot.5", "snapshot.f"]
    assert _names(v) == ["log.15", "log.1f", "log.29", "snapshot.19", "snapshot.23", "snapshot.2d"]
    rec = recover(tmp_path)  # what is kept still recovers
    assert [e.hdr.zxid for e in rec.entries()] == list(range(46, 51))


def test_fewer_snapshots_than_the_count_removes_nothing(tmp_path: Path) -> None:
    v = tmp_path / "version-2"
    v.mkdir()
    _populate(v)
    assert purge(tmp_path, retain_count=10) == []


def test_count_below_three_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="greater than or equal to 3"):
        purge(tmp_path, retain_count=2)


def test_autopurge_raises_a_small_count_to_three(tmp_path: Path) -> None:
    v = tmp_path / "version-2"
    v.mkdir()
    _populate(v)
    autopurge(tmp_path, None, 1)
    assert len(list(v.glob("snapshot.*"))) == 3


def test_incomplete_snapshots_do_not_count_as_retained(tmp_path: Path) -> None:
    v = tmp_path / "version-2"
    v.mkdir()
    _populate(v)
    (v / "snapshot.2d").write_bytes(b"half written")
    purge(tmp_path, retain_count=3)
    assert "snapshot.f" in _names(v)  # kept in place of the broken newest one


def test_other_files_are_never_touched(tmp_path: Path) -> None:
    v = tmp_path / "version-2"
    v.mkdir()
    _populate(v)
    for name in ("log.1.fixed", "currentEpoch", "acceptedEpoch"):
        (v / name).write_text("x")
    (tmp_path / "myid").write_text("1")
    purge(tmp_path, retain_count=3)
    assert {"log.1.fixed", "currentEpoch", "acceptedEpoch"} <= set(_names_safe(v))
    assert (tmp_path / "myid").exists()


def _names_safe(v: Path) -> list[str]:
    return [p.name for p in v.iterdir()]


def test_command_line_like_purge_txn_log(tmp_path: Path, capsys) -> None:
    v = tmp_path / "version-2"
    v.mkdir()
    _populate(v)
    assert purge_mod.main([str(tmp_path), "-n", "3"]) == 0
    assert capsys.readouterr().out.count("Removing file: ") == 4
    assert purge_mod.main([str(tmp_path), "-n", "2"]) == 1
    assert purge_mod.main([str(tmp_path)]) == 1
