"""The transaction log: Apache's file format, group commit, preallocation, and reading torn or bad files."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkpy.proto.constants import OpCode
from zkpy.proto.records import ACL, CreateTxn, DeleteTxn, Id, SetDataTxn, TxnDigest, TxnHeader
from zkpy.proto.txns import encode_txn
from zkpy.storage.errors import CorruptLogError, StorageError
from zkpy.storage.txnlog import (
    FILE_HEADER_SIZE,
    LogFileReader,
    TxnLogIterator,
    TxnLogWriter,
    frame_txns,
    last_logged_zxid,
    padded_size,
    truncate_log,
)

OPEN = [ACL(31, Id("world", "anyone"))]
PREALLOC = 64 * 1024


def _hdr(zxid: int, op: int = OpCode.setData) -> TxnHeader:
    return TxnHeader(0x55, zxid & 0x7FFF, zxid, 1_700_000_000_000 + zxid, op)


def _write(d: Path, zxids, *, data: bytes = b"v", roll_after: set[int] | None = None, **kw) -> None:
    with TxnLogWriter(d, prealloc_bytes=kw.pop("prealloc_bytes", PREALLOC), **kw) as w:
        for z in zxids:
            w.append(_hdr(z), SetDataTxn("/n", data + str(z).encode(), z & 0xFFFF))
            if roll_after and z in roll_after:
                w.flush()
                w.roll()


def _zxids(d: Path, start: int = 0) -> list[int]:
    return [e.hdr.zxid for e in TxnLogIterator(d, start)]


def test_file_starts_with_zklg_header_version_2_dbid_0(tmp_path: Path) -> None:
    _write(tmp_path, [5])
    head = (tmp_path / "log.5").read_bytes()[:FILE_HEADER_SIZE]
    assert head == b"ZKLG" + struct.pack(">iq", 2, 0)


def test_record_is_adler32_length_entry_and_0x42(tmp_path: Path) -> None:
    _write(tmp_path, [1])
    raw = (tmp_path / "log.1").read_bytes()
    entry = encode_txn(_hdr(1), SetDataTxn("/n", b"v1", 1))
    crc, n = struct.unpack_from(">qi", raw, FILE_HEADER_SIZE)
    start = FILE_HEADER_SIZE + 12
    assert (n, raw[start:start + n], raw[start + n]) == (len(entry), entry, 0x42)
    assert crc == zlib.adler32(entry)


def test_file_is_named_after_its_first_zxid_in_hex(tmp_path: Path) -> None:
    _write(tmp_path, [0x100000001, 0x100000002])
    assert os.listdir(tmp_path) == ["log.100000001"]


def test_file_is_preallocated_in_chunks_of_zeros(tmp_path: Path) -> None:
    _write(tmp_path, range(1, 4))
    raw = (tmp_path / "log.1").read_bytes()
    assert len(raw) == PREALLOC
    end = next(e for e in [LogFileReader(tmp_path / "log.1")] if list(e) or True).end
    assert end is not None and end.kind == "padding"
    assert raw[end.offset:] == bytes(PREALLOC - end.offset)


def test_file_grows_by_another_chunk_near_its_end(tmp_path: Path) -> None:
    _write(tmp_path, range(1, 200), data=b"x" * 1000)
    size = (tmp_path / "log.1").stat().st_size
    assert size % PREALLOC == 0 and size >= 200 * 1000
    assert _zxids(tmp_path) == list(range(1, 200))


def test_padding_rule_matches_file_padding() -> None:
    assert padded_size(0, 0, 100) == 100
    assert padded_size(10, 100, 8192) == 8292  # within 4 KiB of the end: one more chunk
    assert padded_size(10, 100_000, 8192) == 100_000  # far from the end: unchanged
    assert padded_size(20_000, 100, 8192) == 24_576  # past the end: round up
    assert padded_size(10, 100, 0) == 100  # preallocation disabled


def test_append_writes_nothing_until_flush(tmp_path: Path) -> None:
    w = TxnLogWriter(tmp_path, prealloc_bytes=PREALLOC)
    w.append(_hdr(1), SetDataTxn("/n", b"v", 1))
    assert os.listdir(tmp_path) == [] and w.pending_count == 1
    w.flush()
    assert _zxids(tmp_path) == [1] and w.pending_count == 0
    w.close()


def test_many_appends_then_one_flush_are_all_readable(tmp_path: Path) -> None:
    w = TxnLogWriter(tmp_path, prealloc_bytes=PREALLOC)
    for z in range(1, 1001):
        w.append(_hdr(z), SetDataTxn("/n", b"v", z), TxnDigest(2, z))
    w.flush()
    w.close()
    entries = list(TxnLogIterator(tmp_path, 0))
    assert [e.hdr.zxid for e in entries] == list(range(1, 1001))
    assert entries[-1].digest == TxnDigest(2, 1000)


def test_append_raw_writes_a_marshalled_entry(tmp_path: Path) -> None:
    raw = encode_txn(_hdr(9, OpCode.delete), DeleteTxn("/gone"))
    with TxnLogWriter(tmp_path, prealloc_bytes=PREALLOC) as w:
        w.append_raw(raw)
    (e,) = list(TxnLogIterator(tmp_path, 0))
    assert (tmp_path / "log.9").exists() and e.txn == DeleteTxn("/gone")


def test_framed_batch_writes_the_same_bytes_as_appending_one_by_one(tmp_path: Path) -> None:
    # Entries whose record comes already encoded (raw) and entries to encode, interleaved.
    txns = [(_hdr(z), SetDataTxn("/n", b"v" * z, z)) if z % 3 else (_hdr(z, OpCode.delete), DeleteTxn(f"/d{z}"))
            for z in range(1, 40)]
    one_by_one, batched = tmp_path / "a", tmp_path / "b"
    one_by_one.mkdir()
    batched.mkdir()
    with TxnLogWriter(one_by_one, prealloc_bytes=PREALLOC) as w:
        for hdr, txn in txns:
            w.append(hdr, txn)
    with TxnLogWriter(batched, prealloc_bytes=PREALLOC) as w:
        framed = frame_txns([(hdr, txn, txn.to_bytes() if hdr.zxid % 2 else None) for hdr, txn in txns],
                            w.max_entry_bytes)
        assert (framed.first_zxid, framed.last_zxid, framed.count) == (1, 39, 39)
        w.append_framed(framed)
        assert w.last_zxid == 39 and w.pending_count == 39
    assert (batched / "log.1").read_bytes() == (one_by_one / "log.1").read_bytes()
    assert [e.txn for e in TxnLogIterator(batched, 0)] == [txn for _, txn in txns]


def test_a_batch_with_an_oversized_entry_is_refused_whole(tmp_path: Path) -> None:
    w = TxnLogWriter(tmp_path, max_entry_bytes=1000)
    ok, big = SetDataTxn("/n", b"ok", 2), SetDataTxn("/n", b"x" * 2000, 3)
    w.append(_hdr(1), ok)
    with pytest.raises(ValueError, match="over the 1000-byte limit"):
        w.append_framed(frame_txns([(_hdr(2), ok, ok.to_bytes()), (_hdr(3), big, big.to_bytes())], 1000))
    w.close()
    assert _zxids(tmp_path) == [1]


def test_roll_starts_a_new_file_at_the_next_zxid(tmp_path: Path) -> None:
    _write(tmp_path, range(1, 10), roll_after={4})
    assert sorted(os.listdir(tmp_path)) == ["log.1", "log.5"]
    assert _zxids(tmp_path) == list(range(1, 10))


def test_size_limit_rolls_after_flush(tmp_path: Path) -> None:
    with TxnLogWriter(tmp_path, prealloc_bytes=PREALLOC, size_limit_bytes=300) as w:
        for z in range(1, 7):
            w.append(_hdr(z), SetDataTxn("/n", b"x" * 100, z))
            w.flush()
    assert len(os.listdir(tmp_path)) >= 2
    assert _zxids(tmp_path) == list(range(1, 7))


def test_force_sync_off_still_writes(tmp_path: Path) -> None:
    _write(tmp_path, [1, 2], force_sync=False)
    assert _zxids(tmp_path) == [1, 2]


def test_entry_over_the_reader_limit_is_refused(tmp_path: Path) -> None:
    w = TxnLogWriter(tmp_path, max_entry_bytes=1000)
    with pytest.raises(ValueError, match="over the 1000-byte limit"):
        w.append(_hdr(1), SetDataTxn("/n", b"x" * 2000, 1))
    w.append(_hdr(1), SetDataTxn("/n", b"ok", 1))
    w.close()
    assert _zxids(tmp_path) == [1]


def test_reading_from_a_zxid_starts_in_the_file_that_holds_it(tmp_path: Path) -> None:
    _write(tmp_path, range(1, 20), roll_after={5, 10, 15})
    it = TxnLogIterator(tmp_path, 12)
    assert [e.hdr.zxid for e in it] == list(range(12, 20))
    assert [p.name for p in it.files] == ["log.b", "log.10"]


def test_reading_past_the_end_yields_nothing(tmp_path: Path) -> None:
    _write(tmp_path, range(1, 5))
    assert _zxids(tmp_path, 100) == []


def test_bad_checksum_in_the_middle_raises_naming_file_and_offset(tmp_path: Path) -> None:
    _write(tmp_path, range(1, 6))
    path = tmp_path / "log.1"
    offsets = [off for off, _ in LogFileReader(path)]
    _flip_byte(path, offsets[2] + 12 + 20)
    with pytest.raises(CorruptLogError, match=rf"CRC check failed in .*log\.1 at offset {offsets[2]}"):
        list(TxnLogIterator(tmp_path, 0))


def test_bad_checksum_on_the_last_record_also_raises(tmp_path: Path) -> None:
    # Apache checks the 0x42 first and the checksum only on complete records, whatever their place.
    _write(tmp_path, range(1, 4))
    path = tmp_path / "log.1"
    last = [off for off, _ in LogFileReader(path)][-1]
    _flip_byte(path, last + 3)  # inside the stored checksum
    with pytest.raises(CorruptLogError, match="CRC check failed"):
        list(TxnLogIterator(tmp_path, 0))


def test_unreasonable_length_is_corruption(tmp_path: Path) -> None:
    _write(tmp_path, [1])
    with open(tmp_path / "log.1", "r+b") as f:
        f.seek(FILE_HEADER_SIZE + 8)
        f.write(struct.pack(">i", -5))
    with pytest.raises(CorruptLogError, match="Unreasonable length"):
        list(TxnLogIterator(tmp_path, 0))


def test_wrong_magic_is_corruption(tmp_path: Path) -> None:
    _write(tmp_path, [1])
    _flip_byte(tmp_path / "log.1", 0)
    with pytest.raises(CorruptLogError, match="invalid magic number"):
        list(TxnLogIterator(tmp_path, 0))


def test_missing_0x42_ends_the_file_as_torn(tmp_path: Path) -> None:
    _write(tmp_path, range(1, 4))
    path = tmp_path / "log.1"
    offsets = [off for off, _ in LogFileReader(path)]
    raw = path.read_bytes()
    (n,) = struct.unpack_from(">i", raw, offsets[-1] + 8)
    end_of_last = offsets[-1] + 12 + n
    _set_byte(path, end_of_last, 0)
    r = LogFileReader(path)
    assert [e.hdr.zxid for _, e in r] == [1, 2]
    assert r.end is not None and r.end.torn and r.end.offset == offsets[-1]
    assert "partial" in r.end.reason


def test_a_torn_record_in_an_older_file_moves_on_to_the_next_file(tmp_path: Path) -> None:
    # After a crash Apache starts a new file and leaves the torn tail of the old one in place.
    _write(tmp_path, range(1, 4))
    last = [off for off, _ in LogFileReader(tmp_path / "log.1")][-1]
    with open(tmp_path / "log.1", "r+b") as f:
        f.truncate(last + 20)  # cut inside record 3
    _write(tmp_path, range(3, 6))
    it = TxnLogIterator(tmp_path, 0)
    assert [e.hdr.zxid for e in it] == [1, 2, 3, 4, 5]
    assert [t.path.name for t in it.tears] == ["log.1"]


def test_file_without_a_complete_header_is_a_tear(tmp_path: Path) -> None:
    (tmp_path / "log.1").write_bytes(b"ZKL")
    r = LogFileReader(tmp_path / "log.1")
    assert list(r) == [] and r.end is not None and r.end.torn and r.end.offset == 0


def test_truncate_keeps_entries_up_to_the_zxid_and_deletes_later_files(tmp_path: Path) -> None:
    _write(tmp_path, range(1, 20), roll_after={5, 10, 15})
    res = truncate_log(tmp_path, 7)
    assert _zxids(tmp_path) == list(range(1, 8))
    assert sorted(p.name for p in res.deleted) == ["log.10", "log.b"]
    _write(tmp_path, range(8, 10))  # a follower goes on logging after a TRUNC
    assert _zxids(tmp_path) == list(range(1, 10))


def test_truncate_without_logs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="No log files found to truncate"):
        truncate_log(tmp_path, 5)


def test_last_logged_zxid_reads_the_newest_file(tmp_path: Path) -> None:
    assert last_logged_zxid(tmp_path) == -1
    _write(tmp_path, range(1, 9), roll_after={4})
    assert last_logged_zxid(tmp_path) == 8


def test_a_new_writer_never_appends_to_an_existing_file(tmp_path: Path) -> None:
    _write(tmp_path, range(1, 3))
    _write(tmp_path, range(3, 5))
    assert sorted(os.listdir(tmp_path)) == ["log.1", "log.3"]


def _flip_byte(path: Path, off: int) -> None:
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0xFF]))


def _set_byte(path: Path, off: int, value: int) -> None:
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(bytes([value]))


# ------------------------------------------------------------------ properties

_txn = st.one_of(
    st.builds(lambda p, d, v: (OpCode.setData, SetDataTxn(p, d, v)),
              st.text(min_size=1, max_size=20).map(lambda s: "/" + s), st.binary(max_size=300),
              st.integers(-(2 ** 31), 2 ** 31 - 1)),
    st.builds(lambda p, d, e: (OpCode.create, CreateTxn(p, d, OPEN, e, 1)),
              st.text(min_size=1, max_size=20).map(lambda s: "/" + s), st.one_of(st.none(), st.binary(max_size=50)),
              st.booleans()),
    st.builds(lambda p: (OpCode.delete, DeleteTxn(p)), st.text(max_size=30).map(lambda s: "/" + s)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(txns=st.lists(_txn, min_size=1, max_size=40), flush_every=st.integers(1, 10),
       with_digest=st.booleans())
def test_property_whatever_is_flushed_reads_back_in_order(tmp_path_factory, txns, flush_every: int,
                                                          with_digest: bool) -> None:
    d = tmp_path_factory.mktemp("log")
    written = []
    with TxnLogWriter(d, prealloc_bytes=4096) as w:
        for i, (op, txn) in enumerate(txns, start=1):
            dig = TxnDigest(2, i) if with_digest else None
            w.append(_hdr(i, op), txn, dig)
            written.append((_hdr(i, op), txn, dig))
            if i % flush_every == 0:
                w.flush()
    got = [(e.hdr, e.txn, e.digest) for e in TxnLogIterator(d, 0)]
    assert got == written
    shutil.rmtree(d)


def _prepared_log() -> tuple[Path, bytes, int, int]:
    d = Path(tempfile.mkdtemp())
    _write(d, range(1, 6), data=b"payload-", prealloc_bytes=0)
    path = d / "log.1"
    raw = path.read_bytes()
    last = [off for off, _ in LogFileReader(path)][-1]
    return path, raw, last, len(raw)


_LOG = _prepared_log()


@settings(max_examples=200, deadline=None)
@given(data=st.data(), zero_fill=st.booleans())
def test_property_a_log_cut_anywhere_in_its_last_record_reads_the_earlier_records_and_reports_the_tear(
        data, zero_fill: bool) -> None:
    _, raw, last, size = _LOG
    cut = data.draw(st.integers(last, size - 1))
    d = Path(tempfile.mkdtemp())
    try:
        # Without preallocation a crash leaves a short file; with it, the rest stays zeros.
        body = raw[:cut] + (bytes(size - cut + 64) if zero_fill else b"")
        (d / "log.1").write_bytes(body)
        r = LogFileReader(d / "log.1")
        assert [e.hdr.zxid for _, e in r] == [1, 2, 3, 4]
        assert r.end is not None
        if zero_fill and not any(raw[last:cut]):
            # the high half of the stored checksum is always zero: such a cut looks like padding
            assert r.end.kind == "padding"
        elif cut == last:
            assert r.end.kind == "eof"
        else:
            assert r.end.torn and r.end.offset == last
    finally:
        shutil.rmtree(d)


def test_every_cut_of_the_last_record_is_detected() -> None:
    _, raw, last, size = _LOG
    d = Path(tempfile.mkdtemp())
    try:
        for cut in range(last, size):  # bounded by one record's length
            (d / "log.1").write_bytes(raw[:cut])
            r = LogFileReader(d / "log.1")
            assert [e.hdr.zxid for _, e in r] == [1, 2, 3, 4], cut
            assert r.end is not None and (r.end.torn or cut == last), cut
            assert r.end.offset == last
    finally:
        shutil.rmtree(d)
