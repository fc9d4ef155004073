"""zkpy inspect: SnapshotFormatter / TxnLogToolkit style output and --check."""

from __future__ import annotations

import io
from pathlib import Path

from zkpy.proto.constants import OpCode
from zkpy.proto.records import ACL, CreateTxn, DeleteTxn, Id, SetDataTxn, StatPersisted, TxnHeader
from zkpy.storage.inspect import jute_to_string, main
from zkpy.storage.snapshot import write_snapshot
from zkpy.storage.txnlog import LogFileReader, TxnLogWriter

OPEN = [ACL(31, Id("world", "anyone"))]


def _run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = main(list(args), out=out)
    return rc, out.getvalue()


def _log(d: Path) -> Path:
    with TxnLogWriter(d, prealloc_bytes=4096) as w:
        w.append(TxnHeader(0x10, 1, 1, 0, OpCode.create), CreateTxn("/a", b"hi", OPEN, False, 1))
        w.append(TxnHeader(0x10, 2, 2, 0, OpCode.setData), SetDataTxn("/a", b"yo", 1))
        w.append(TxnHeader(0x10, 3, 3, 0, OpCode.delete), DeleteTxn("/a"))
    return d / "log.1"


def test_log_dump_prints_one_txn_per_line_like_txn_log_toolkit(tmp_path: Path) -> None:
    rc, text = _run(str(_log(tmp_path)))
    lines = text.splitlines()
    assert rc == 0
    assert lines[0] == "ZooKeeper Transactional Log File with dbid 0 txnlog format version 2"
    assert lines[1].endswith("session 0x10 cxid 0x1 zxid 0x1 create /a,hi,[31,s{'world,'anyone}")
    assert lines[2] == "],false,1"
    assert lines[3].endswith("zxid 0x2 setData /a,yo,1")
    assert lines[4].endswith("zxid 0x3 delete '/a")
    assert lines[-1] == "EOF reached after 3 txns."


def test_snapshot_dump_prints_stats_data_and_sessions(tmp_path: Path) -> None:
    st = StatPersisted(1, 2, 0, 0, 3, 4, 5, 0x77, 6)
    p = write_snapshot(tmp_path, 9, {0x77: 4000}, {}, [("/", b"", -1, st), ("/e", b"abc", -1, st)])
    rc, text = _run("-d", str(p))
    assert rc == 0
    assert text.startswith("ZNode Details (count=3):\n----\n/\n  cZxid = 0x00000000000001\n")
    assert "\n/e\n" in text and "  data = YWJj\n" in text and "  dataVersion = 3\n" in text
    assert "Session Details (sid, timeout, ephemeralCount):\n0x00000000000077, 4000, 2\n" in text
    assert text.endswith("----\nLast zxid: 0x9\n")


def test_check_passes_on_good_files_and_fails_on_a_bad_checksum(tmp_path: Path) -> None:
    log = _log(tmp_path)
    write_snapshot(tmp_path, 3, {}, {}, [("/", b"", -1, StatPersisted(0, 0, 0, 0, 0, 0, 0, 0, 0))])
    rc, text = _run("--check", str(tmp_path))
    assert rc == 0 and "snapshot OK" in text and "log OK, 3 txns" in text
    off = [o for o, _ in LogFileReader(log)][1]
    raw = bytearray(log.read_bytes())
    raw[off + 20] ^= 0xFF
    log.write_bytes(bytes(raw))
    rc, text = _run("--check", str(log))
    assert rc == 1 and f"CRC check failed for 1 of 3 txns at offsets {off}" in text
    rc, text = _run(str(log))
    assert rc == 1 and "CRC ERROR - " in text


def test_jute_to_string_matches_java_to_string() -> None:
    assert jute_to_string(ACL(31, Id("world", "anyone"))) == "31,s{'world,'anyone}\n"
    assert jute_to_string(SetDataTxn("/a,b", b"\x01\xff", 2)) == "'/a%2Cb,#1ffffffff,2\n"
