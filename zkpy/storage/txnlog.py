"""The transaction log in Apache ZooKeeper 3.8's format (``FileTxnLog``).

A log file ``log.<hex zxid of its first txn>`` is::

    FileHeader {int magic "ZKLG", int version 2, long dbid 0}
    record*:  long adler32(entry) | int len(entry) | entry | byte 0x42 ('B')
    zeros (preallocation) up to the file size

Writing is group commit: :meth:`TxnLogWriter.append` only encodes into an
in-memory buffer (checksum computed over the very bytes that will be
written); :meth:`TxnLogWriter.flush` issues one ``pwrite`` and one
``fdatasync`` for the whole batch.

Reading follows ``FileTxnIterator``.  A record that stops short (end of file
inside it, zero length, no 0x42 after it) ends its file: that is how a write cut
by a crash looks in a zero-filled, preallocated file, and Apache treats it as
the end of that file and moves on to the next one.  A record that is complete
but whose checksum does not match is corruption and raises ``CRC check
failed``, wherever it is, the last record included: Apache makes no
exception for the tail (its EOR check comes before the checksum, so only
complete records are checksummed), and a complete record with a wrong sum
means the bytes on disk are not what was written, not an interrupted write.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zkpy.proto.jute import MAX_BUFFER_DEFAULT
from zkpy.proto.records import FileHeader, TxnDigest, TxnHeader
from zkpy.proto.txns import TXN_HEADER, LogEntry, TxnDecodeError, decode_txn, encode_txn
from zkpy.storage.errors import CorruptLogError, StorageError
from zkpy.storage.files import fsync_dir, list_logs, log_name

__all__ = [
    "PREALLOC_DEFAULT_BYTES",
    "TXNLOG_MAGIC",
    "FramedTxns",
    "LogEnd",
    "LogFileReader",
    "TxnLogIterator",
    "TxnLogWriter",
    "frame_txns",
    "last_logged_zxid",
    "log_files_for",
    "read_log",
    "truncate_log",
]

log = logging.getLogger(__name__)

TXNLOG_MAGIC = int.from_bytes(b"ZKLG", "big")
TXNLOG_VERSION = 2
FILE_HEADER_SIZE = 16
PREALLOC_DEFAULT_BYTES = 64 * 1024 * 1024  # FilePadding: zookeeper.preAllocSize default 65536 KiB
# FilePadding grows the file once the write position is within this of its end.
_PAD_MARGIN_BYTES = 4096
# BinaryInputArchive refuses buffers over jute.maxbuffer + extrasize (both 0xfffff by default).
MAX_ENTRY_BYTES_DEFAULT = 2 * MAX_BUFFER_DEFAULT
EOR = 0x42

_CRC_LEN = struct.Struct(">qi")  # the checksum is a Java long holding an unsigned 32-bit value
_ZXID_IN_HDR = struct.Struct(">q")  # TxnHeader: clientId long, cxid int, zxid long ...
_ZXID_OFFSET = 12
_TXN_HEADER_SIZE = TXN_HEADER.size

_fdatasync = getattr(os, "fdatasync", os.fsync)


def padded_size(position: int, file_size: int, prealloc_bytes: int) -> int:
    """FilePadding.calculateFileSizeWithPadding: the file size to grow to (or the same)."""
    if prealloc_bytes > 0 and position + _PAD_MARGIN_BYTES >= file_size:
        if position > file_size:
            file_size = position + prealloc_bytes
            file_size -= file_size % prealloc_bytes
        else:
            file_size += prealloc_bytes
    return file_size


def _frame_into(buf: bytearray, entry: bytes | bytearray | memoryview, zxid: int, max_entry_bytes: int) -> None:
    """One record: adler32(entry), len(entry), entry, 'B'."""
    n = len(entry)
    if n > max_entry_bytes:
        raise ValueError(f"log entry for zxid {zxid:#x} is {n} bytes, over the "
                         f"{max_entry_bytes}-byte limit readers accept")
    buf += _CRC_LEN.pack(zlib.adler32(entry), n)
    buf += entry
    buf.append(EOR)


@dataclass(slots=True)
class FramedTxns:
    """Log records ready to be written: framed and checksummed, in zxid order."""

    data: bytearray
    first_zxid: int
    last_zxid: int
    count: int


def frame_txns(batch: Iterable[tuple[TxnHeader, object, bytes | None]], max_entry_bytes: int) -> FramedTxns:
    """Frame ``(header, txn, raw)`` entries, in zxid order, as :meth:`TxnLogWriter.append`
    would each.

    ``raw`` is the txn record already encoded (the standalone server cuts it from the
    request), else the txn is encoded here.  Raises ValueError, and frames nothing, when an
    entry is over ``max_entry_bytes``."""
    buf = bytearray()
    pack_head = TXN_HEADER.pack
    first = zxid = -1
    count = 0
    for hdr, txn, raw in batch:
        zxid = hdr.zxid
        if raw is None:
            entry = encode_txn(hdr, txn)  # type: ignore[arg-type]
        else:
            entry = pack_head(hdr.clientId, hdr.cxid, zxid, hdr.time, hdr.type) + raw
        _frame_into(buf, entry, zxid, max_entry_bytes)
        if count == 0:
            first = zxid
        count += 1
    return FramedTxns(buf, first, zxid, count)


def frame_entries(entries: Iterable[bytes], max_entry_bytes: int) -> FramedTxns:
    """Frame entries already marshalled (TxnHeader + txn, e.g. PROPOSALs' data), in zxid order,
    as :meth:`TxnLogWriter.append_raw` would each; raises ValueError, framing nothing, on an
    entry shorter than a TxnHeader or over ``max_entry_bytes``."""
    buf = bytearray()
    first = zxid = -1
    count = 0
    for entry in entries:
        if len(entry) < _TXN_HEADER_SIZE:
            raise ValueError(f"log entry of {len(entry)} bytes is shorter than a TxnHeader")
        (zxid,) = _ZXID_IN_HDR.unpack_from(entry, _ZXID_OFFSET)
        _frame_into(buf, entry, zxid, max_entry_bytes)
        if count == 0:
            first = zxid
        count += 1
    return FramedTxns(buf, first, zxid, count)


@dataclass(slots=True)
class PendingSync:
    """What one flush must sync: files to fdatasync, the log directory to fsync (its fd, opened
    for this), and the rolled files to close once that is done."""

    data_fds: list[int]
    dir_fds: list[int]
    rolled: list[int]


class TxnLogWriter:
    """Appends entries to ``log_dir``; one instance owns the log while the server runs.

    Not thread-safe: the server calls it from one worker thread.  A writer
    always starts a new file on its first flush (as Apache does after a
    restart), so it never appends behind a torn tail left by a crash.
    """

    def __init__(self, log_dir: str | os.PathLike[str], *, prealloc_bytes: int = PREALLOC_DEFAULT_BYTES,
                 force_sync: bool = True, dbid: int = 0, size_limit_bytes: int = -1,
                 max_entry_bytes: int = MAX_ENTRY_BYTES_DEFAULT) -> None:
        self.log_dir = Path(log_dir)
        self.prealloc_bytes = prealloc_bytes
        self.force_sync = force_sync
        self.dbid = dbid
        self.size_limit_bytes = size_limit_bytes  # zookeeper.txnLogSizeLimitInKb * 1024; <= 0 disables
        self.max_entry_bytes = max_entry_bytes
        self.last_zxid = -1
        self._buf = bytearray()
        self._buf_count = 0
        self._buf_first_zxid = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._pos = 0  # next write offset in the current file
        self._alloc = 0  # current (preallocated) size of the current file
        self._to_sync: list[int] = []  # rolled files written but not yet fsync'ed
        self._dir_dirty = False
        self._closed = False

    # ------------------------------------------------------------------ appending

    @property
    def current_path(self) -> Path | None:
        return self._path

    @property
    def pending_count(self) -> int:
        return self._buf_count

    def append(self, hdr: TxnHeader, txn: object, digest: TxnDigest | None = None) -> None:
        """Buffer one entry (encoded and checksummed now, written at the next flush)."""
        self.append_raw(encode_txn(hdr, txn, digest))  # type: ignore[arg-type]

    def append_raw(self, entry: bytes | bytearray | memoryview) -> None:
        """Buffer an already marshalled entry (TxnHeader + txn [+ digest]), e.g. a PROPOSAL's data."""
        self.append_framed(frame_entries((entry,), self.max_entry_bytes))

    def append_framed(self, framed: FramedTxns) -> None:
        """Buffer records :func:`frame_txns` made (elsewhere: the event loop, while the log
        thread holds on to nothing but the write and the fsync)."""
        if not framed.count:
            return
        self._buf += framed.data
        if framed.first_zxid <= self.last_zxid:
            # Apache only warns here; refusing would stop the server for a harmless duplicate.
            log.warning("zxid %#x appended after %#x", framed.first_zxid, self.last_zxid)
        self.last_zxid = max(self.last_zxid, framed.last_zxid)
        if self._buf_count == 0:
            self._buf_first_zxid = framed.first_zxid
        self._buf_count += framed.count

    # ------------------------------------------------------------------ writing

    def _open_new(self, zxid: int) -> None:
        path = self.log_dir / log_name(zxid)
        log.info("Creating new log file: %s", path.name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._fd, self._path = fd, path
        self._pos = 0
        self._alloc = 0
        self._dir_dirty = True

    def _write_pending(self) -> None:
        if not self._buf:
            return
        if self._fd is None:
            self._open_new(self._buf_first_zxid)
            self._buf[0:0] = FileHeader(TXNLOG_MAGIC, TXNLOG_VERSION, self.dbid).to_bytes()
        assert self._fd is not None
        data = self._buf
        end = self._pos + len(data)
        new_size = padded_size(end, self._alloc, self.prealloc_bytes)
        if new_size != self._alloc:
            # Grow first so the write below does not change the file size: fdatasync then
            # has no size metadata to flush on most appends (FilePadding's reason to exist).
            if new_size > self._alloc:
                os.ftruncate(self._fd, new_size)
            self._alloc = new_size
        written = os.pwrite(self._fd, data, self._pos)
        while written < len(data):  # bounded: each pass writes at least one byte or raises
            with memoryview(data) as mv:
                n = os.pwrite(self._fd, mv[written:], self._pos + written)
            if n <= 0:
                raise OSError(f"short write to {self._path}")
            written += n
        self._pos = end
        self._alloc = max(self._alloc, end)
        self._buf = bytearray()
        self._buf_count = 0

    def flush(self, sync: bool = True) -> None:
        """Write every buffered entry with one write; with ``sync``, make them durable.

        ``force_sync=False`` (zoo.cfg ``forceSync=no``) skips the fsync as Apache does.
        """
        if not sync:
            self._check_open()
            self._write_pending()
            self._roll_if_over_limit()
            return
        pending = self.begin_flush()
        try:
            for fd in pending.data_fds:
                _fdatasync(fd)
            for fd in pending.dir_fds:
                os.fsync(fd)
        except BaseException:
            self.abort_flush(pending)
            raise
        self.end_flush(pending)

    def begin_flush(self) -> PendingSync:
        """Write every buffered entry and say what must be synced for them to be durable; the
        caller syncs it (here or through the kernel's AIO) and then calls :meth:`end_flush`."""
        self._check_open()
        self._write_pending()
        rolled, self._to_sync = self._to_sync, []
        if not self.force_sync:
            return PendingSync([], [], rolled)
        data_fds = list(rolled)
        if self._fd is not None:
            data_fds.append(self._fd)
        dir_fds = []
        if self._dir_dirty:
            # A new file's directory entry: without it the synced data cannot be found after a crash.
            dir_fds.append(os.open(self.log_dir, os.O_RDONLY))
            self._dir_dirty = False
        return PendingSync(data_fds, dir_fds, rolled)

    def end_flush(self, pending: PendingSync) -> None:
        """After the syncs of :meth:`begin_flush` succeeded: close the files they finished."""
        for fd in pending.rolled + pending.dir_fds:
            os.close(fd)
        self._roll_if_over_limit()

    def abort_flush(self, pending: PendingSync) -> None:
        """A sync of :meth:`begin_flush` failed: nothing is known durable, the rolled files stay
        to be synced (and closed by :meth:`close`)."""
        self._to_sync[:0] = pending.rolled
        self._dir_dirty = self._dir_dirty or bool(pending.dir_fds)
        for fd in pending.dir_fds:
            os.close(fd)

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("transaction log writer is closed")

    def _roll_if_over_limit(self) -> None:
        if self.size_limit_bytes > 0 and self._fd is not None and self._pos > self.size_limit_bytes:
            self.roll()

    def roll(self) -> None:
        """Finish the current file: entries appended from now on go to a new file.

        Buffered entries are written to the current file first; it is fsync'ed and
        closed by the next ``flush(sync=True)`` (FileTxnLog.rollLog + commit).
        """
        self._write_pending()
        if self._fd is not None:
            self._to_sync.append(self._fd)
            self._fd = None
            self._path = None

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush(sync=True)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            for fd in self._to_sync:
                os.close(fd)
            self._to_sync.clear()
            self._closed = True

    def __enter__(self) -> TxnLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- reading


@dataclass(slots=True)
class LogEnd:
    """Where and why reading a log file stopped.

    ``kind``: ``"eof"`` (end of file on a record boundary), ``"padding"`` (zero
    length: the preallocated zeros) or ``"torn"`` (a record cut short).
    """

    path: Path
    offset: int
    kind: str
    reason: str = ""

    @property
    def torn(self) -> bool:
        return self.kind == "torn"


class LogFileReader:
    """Iterate ``(offset, LogEntry)`` over one log file; afterwards ``end`` says why it stopped."""

    def __init__(self, path: str | os.PathLike[str], *, max_entry_bytes: int = MAX_ENTRY_BYTES_DEFAULT,
                 verify_crc: bool = True) -> None:
        self.path = Path(path)
        self.max_entry_bytes = max_entry_bytes
        self.verify_crc = verify_crc
        self.header: FileHeader | None = None
        self.end: LogEnd | None = None
        self.crc_errors: list[int] = []  # offsets, only when verify_crc is False

    def __iter__(self) -> Iterator[tuple[int, LogEntry]]:
        path = self.path
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < FILE_HEADER_SIZE:
                # A file created just before a crash can lack even its header.  Apache fails on
                # it (EOF reading the header); nothing acknowledged can be in it, so it is a tear.
                self.end = LogEnd(path, 0, "torn", f"file of {size} bytes has no complete header")
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                yield from self._scan(mm, size)

    def _scan(self, mm: mmap.mmap, size: int) -> Iterator[tuple[int, LogEntry]]:
        path = self.path
        hdr = FileHeader.from_bytes(mm[:FILE_HEADER_SIZE])
        if hdr.magic != TXNLOG_MAGIC:
            if hdr.magic == 0 and hdr.version == 0 and hdr.dbid == 0:
                self.end = LogEnd(path, 0, "torn", "file header is all zeros")
                return
            raise CorruptLogError(path, 0, f"Transaction log has invalid magic number {hdr.magic} "
                                            f"!= {TXNLOG_MAGIC}")
        self.header = hdr
        unpack = _CRC_LEN.unpack_from
        frame = _CRC_LEN.size
        limit = self.max_entry_bytes
        mv = memoryview(mm)
        try:
            pos = FILE_HEADER_SIZE
            while True:
                if pos == size:
                    self.end = LogEnd(path, pos, "eof")
                    return
                if pos + frame > size:
                    self.end = LogEnd(path, pos, "torn", "end of file inside a record header")
                    return
                crc, n = unpack(mm, pos)
                if n == 0:
                    if crc == 0:
                        self.end = LogEnd(path, pos, "padding")
                    else:
                        self.end = LogEnd(path, pos, "torn", "zero-length record after a checksum")
                    return
                if n < 0 or n > limit:
                    raise CorruptLogError(path, pos, f"Unreasonable length = {n}")
                start = pos + frame
                stop = start + n
                if stop + 1 > size:
                    self.end = LogEnd(path, pos, "torn", "end of file inside a record")
                    return
                if mm[stop] != EOR:
                    self.end = LogEnd(path, pos, "torn", "Last transaction was partial")
                    return
                with mv[start:stop] as payload:
                    if zlib.adler32(payload) != crc:
                        if self.verify_crc:
                            raise CorruptLogError(path, pos, "CRC check failed")
                        self.crc_errors.append(pos)
                    try:
                        entry = decode_txn(payload)
                    except TxnDecodeError as e:
                        raise CorruptLogError(path, pos, str(e)) from None
                yield pos, entry
                pos = stop + 1
        finally:
            mv.release()


def log_files_for(log_dir: Path, zxid: int) -> list[tuple[int, Path]]:
    """FileTxnLog.getLogFiles: the file that may hold ``zxid`` (last one starting at or before
    it) and every later file, oldest first."""
    files = list_logs(log_dir)
    first = 0
    for i, (fz, _) in enumerate(files):
        if fz <= zxid:
            first = i
        else:
            break
    return files[first:]


class TxnLogIterator:
    """Entries with zxid >= ``from_zxid`` across all log files, in file order.

    Attributes filled while iterating: ``files`` (read, in order), ``ends`` (one
    ``LogEnd`` per file read) and ``last_position`` (file, offset after the last
    entry yielded).
    """

    def __init__(self, log_dir: str | os.PathLike[str], from_zxid: int = 0, *,
                 max_entry_bytes: int = MAX_ENTRY_BYTES_DEFAULT) -> None:
        self.log_dir = Path(log_dir)
        self.from_zxid = from_zxid
        self.max_entry_bytes = max_entry_bytes
        self.files: list[Path] = []
        self.ends: list[LogEnd] = []

    @property
    def tears(self) -> list[LogEnd]:
        return [e for e in self.ends if e.torn]

    def __iter__(self) -> Iterator[LogEntry]:
        yield from (entry for _, _, entry in self.positions())

    def positions(self) -> Iterator[tuple[Path, int, LogEntry]]:
        """Like iteration, with the file and offset of each entry."""
        started = False
        for _, path in log_files_for(self.log_dir, self.from_zxid):
            self.files.append(path)
            reader = LogFileReader(path, max_entry_bytes=self.max_entry_bytes)
            for off, entry in reader:
                if not started:
                    # FileTxnIterator fast-forwards to the first entry at or past the zxid.
                    if entry.hdr.zxid < self.from_zxid:
                        continue
                    started = True
                yield path, off, entry
            assert reader.end is not None
            self.ends.append(reader.end)


def read_log(log_dir: str | os.PathLike[str], from_zxid: int = 0) -> Iterator[LogEntry]:
    """Shorthand for ``iter(TxnLogIterator(log_dir, from_zxid))``."""
    return iter(TxnLogIterator(log_dir, from_zxid))


def last_logged_zxid(log_dir: str | os.PathLike[str]) -> int:
    """The zxid of the last readable entry in the newest log file that has one; -1 if none."""
    for _, path in reversed(list_logs(Path(log_dir))):
        last = -1
        for _, entry in LogFileReader(path):
            last = entry.hdr.zxid
        if last != -1:
            return last
    return -1


@dataclass(slots=True)
class TruncateResult:
    cut_file: Path | None = None
    cut_offset: int = 0
    deleted: list[Path] = field(default_factory=list)


def truncate_log(log_dir: str | os.PathLike[str], zxid: int) -> TruncateResult:
    """Drop every logged entry after ``zxid`` (FileTxnLog.truncate, for a quorum TRUNC).

    The file holding ``zxid`` is cut right after it; later files are deleted.
    The writer must be closed while this runs.
    """
    d = Path(log_dir)
    files = log_files_for(d, zxid)
    if not files:
        raise StorageError(f"No log files found to truncate in {d}! This could happen if you still have "
                           "snapshots from an old setup or log files were deleted accidentally or "
                           "dataLogDir was changed in zoo.cfg.")
    result = TruncateResult()
    cut_path = files[0][1]
    reader = LogFileReader(cut_path)
    cut_at: int | None = None
    it = iter(reader)
    try:
        for off, entry in it:
            if entry.hdr.zxid > zxid:
                cut_at = off
                break
    finally:
        it.close()  # unmaps the file before it is cut
    if cut_at is None:
        assert reader.end is not None
        cut_at = reader.end.offset
    with open(cut_path, "r+b") as f:
        f.truncate(max(cut_at, FILE_HEADER_SIZE) if reader.header is not None else cut_at)
        os.fsync(f.fileno())
    result.cut_file, result.cut_offset = cut_path, cut_at
    for _, path in files[1:]:
        path.unlink()
        result.deleted.append(path)
    fsync_dir(d)
    return result
