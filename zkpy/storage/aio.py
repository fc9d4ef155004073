"""fsync completions from the kernel: Linux AIO (``IOCB_CMD_FDSYNC``) signalling an eventfd.

The standalone log's fsync used to finish in a Python thread, which then had to take the GIL
back from the event loop several times per batch (after its queue wait, its write and its
fsync): at small batches that ping-pong cost more than the fsync (16 sessions with one write
in flight each, pinned to one core: 12,000 writes/s with the thread, 13,000-15,000 with this;
unpinned 5,800-7,500 against 9,300-9,900).  Here the event loop writes the batch itself and
asks the kernel to fsync it: a kernel worker runs the fsync and bumps an eventfd the loop
watches, so no Python thread wakes at all.

Four system calls through ctypes, on the architectures whose numbers are known here (x86_64,
aarch64, little-endian ``struct iocb``).  ``IOCB_CMD_FDSYNC`` needs Linux 4.18; :meth:`open`
probes it with a real fsync and returns None wherever it does not work (another OS or
architecture, a kernel without AIO or this command, a seccomp filter), and the caller keeps its
thread.  No library is used because the one binding there is needs the libaio shared library,
which a fresh machine does not have.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import platform
import struct
import sys
import time
from collections.abc import Callable

from zkpy.storage.txnlog import PendingSync, TxnLogWriter

log = logging.getLogger(__name__)

# (io_setup, io_destroy, io_getevents, io_submit)
_SYSCALLS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2)}
IOCB_CMD_FSYNC = 2
IOCB_CMD_FDSYNC = 3
IOCB_FLAG_RESFD = 1
MAX_IN_FLIGHT = 16  # a flush syncs the current file, rolled files and the directory


class _Iocb(ctypes.Structure):
    # linux/aio_abi.h, little-endian (aio_key before aio_rw_flags)
    _fields_ = [("aio_data", ctypes.c_uint64), ("aio_key", ctypes.c_uint32), ("aio_rw_flags", ctypes.c_int32),
                ("aio_lio_opcode", ctypes.c_uint16), ("aio_reqprio", ctypes.c_int16),
                ("aio_fildes", ctypes.c_uint32), ("aio_buf", ctypes.c_uint64), ("aio_nbytes", ctypes.c_uint64),
                ("aio_offset", ctypes.c_int64), ("aio_reserved2", ctypes.c_uint64), ("aio_flags", ctypes.c_uint32),
                ("aio_resfd", ctypes.c_uint32)]


# struct io_event: data, obj, res, res2
_EVENT = struct.Struct("=QQqq")


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class AioFsync:
    """Kernel-run fsyncs whose completions bump :attr:`eventfd` (watch it with add_reader)."""

    def __init__(self, libc: ctypes.CDLL, numbers: tuple[int, int, int, int]) -> None:
        self._syscall = libc.syscall
        self._setup, self._destroy, self._getevents, self._submit = numbers
        self._ctx = ctypes.c_ulong(0)
        if self._syscall(self._setup, MAX_IN_FLIGHT, ctypes.byref(self._ctx)) < 0:
            raise OSError(ctypes.get_errno(), f"io_setup: {os.strerror(ctypes.get_errno())}")
        try:
            self.eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        except OSError:
            self._syscall(self._destroy, self._ctx)
            raise
        self._iocbs = (_Iocb * MAX_IN_FLIGHT)()
        self._pointers = (ctypes.POINTER(_Iocb) * MAX_IN_FLIGHT)(*(ctypes.pointer(cb) for cb in self._iocbs))
        # The completions, read with struct from a buffer of our own: indexing a ctypes array
        # builds an object per event, dear at one call per fsync.
        self._events = bytearray(_EVENT.size * MAX_IN_FLIGHT)
        self._events_ref = (ctypes.c_char * len(self._events)).from_buffer(self._events)
        self._no_wait = _Timespec(0, 0)
        self._no_wait_ref = ctypes.byref(self._no_wait)
        # The iocbs of the last submit stay as they were (the kernel only reads them): the same
        # files to sync again need no rebuilding.
        self._prepared: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())
        self.in_flight = 0
        self._closed = False

    @classmethod
    def open(cls, probe_dir: str | os.PathLike[str]) -> AioFsync | None:
        """An instance whose fsyncs are known to work (one is run on ``probe_dir``), or None."""
        numbers = _SYSCALLS.get(platform.machine())
        if not sys.platform.startswith("linux") or numbers is None or sys.byteorder != "little":
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            aio = cls(libc, numbers)
        except (OSError, AttributeError) as e:
            log.info("kernel AIO unavailable (%s): the log's fsyncs run on a thread", e)
            return None
        fd = os.open(probe_dir, os.O_RDONLY)
        try:
            aio.submit([], [fd])
            results = aio.wait(timeout_s=30.0)
            if len(results) != 1 or results[0] < 0:
                raise OSError(-results[0] if results else 0, "fsync through AIO failed")
        except OSError as e:
            log.info("kernel AIO fsync unavailable (%s): the log's fsyncs run on a thread", e)
            aio.close()
            return None
        finally:
            os.close(fd)
        return aio

    def submit(self, data_fds: list[int], dir_fds: list[int]) -> None:
        """Start an fdatasync of each of ``data_fds`` and an fsync of each of ``dir_fds``."""
        n = len(data_fds) + len(dir_fds)
        if n == 0:
            return
        if self.in_flight + n > MAX_IN_FLIGHT:
            raise OSError(0, f"more than {MAX_IN_FLIGHT} fsyncs in flight")
        wanted = (tuple(data_fds), tuple(dir_fds))
        if wanted != self._prepared:
            self._prepare(*wanted)
        done = self._syscall(self._submit, self._ctx, n, self._pointers)
        if done < 0:
            raise OSError(ctypes.get_errno(), f"io_submit: {os.strerror(ctypes.get_errno())}")
        self.in_flight += done
        if done != n:
            # The kernel took only the first ones: what it did not take never started.
            raise OSError(0, f"io_submit took {done} of {n} fsyncs")

    def _prepare(self, data_fds: tuple[int, ...], dir_fds: tuple[int, ...]) -> None:
        self._prepared = ((), ())  # until the iocbs below are complete
        for i, fd in enumerate(data_fds + dir_fds):
            cb = self._iocbs[i]
            ctypes.memset(ctypes.byref(cb), 0, ctypes.sizeof(cb))
            cb.aio_lio_opcode = IOCB_CMD_FDSYNC if i < len(data_fds) else IOCB_CMD_FSYNC
            cb.aio_fildes = fd
            cb.aio_flags = IOCB_FLAG_RESFD
            cb.aio_resfd = self.eventfd
        self._prepared = (data_fds, dir_fds)

    def reap(self) -> list[int]:
        """Results (0 or -errno) of the fsyncs finished since the last call; never blocks."""
        try:
            os.eventfd_read(self.eventfd)
        except BlockingIOError:
            return []
        return self._collect(0, None)

    def wait(self, timeout_s: float) -> list[int]:
        """Block until every fsync in flight has finished (or ``timeout_s``); their results."""
        results: list[int] = []
        if self.in_flight:
            whole = int(timeout_s)
            results = self._collect(self.in_flight, _Timespec(whole, int((timeout_s - whole) * 1e9)))
        try:
            os.eventfd_read(self.eventfd)
        except BlockingIOError:
            pass
        return results

    def _collect(self, min_nr: int, timeout: _Timespec | None) -> list[int]:
        n = self._syscall(self._getevents, self._ctx, min_nr, MAX_IN_FLIGHT, self._events_ref,
                          self._no_wait_ref if timeout is None else ctypes.byref(timeout))
        if n < 0:
            raise OSError(ctypes.get_errno(), f"io_getevents: {os.strerror(ctypes.get_errno())}")
        self.in_flight -= n
        return [_EVENT.unpack_from(self._events, i * _EVENT.size)[2] for i in range(n)]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # io_destroy waits for what is still in flight.
        self._syscall(self._destroy, self._ctx)
        os.close(self.eventfd)


class AioLogFlush:
    """One flush of a transaction log writer at a time, its syncs run by the kernel, its end
    reported on the event loop: what the standalone log and a quorum member's disk share.

    :meth:`start` writes what the writer has buffered and submits the syncs its flush needs;
    ``on_end(error)`` is called on the loop once they are all done (``error`` None: durable),
    after the writer's ``end_flush`` (or ``abort_flush``)."""

    def __init__(self, aio: AioFsync, loop: asyncio.AbstractEventLoop,
                 on_end: Callable[[BaseException | None], None]) -> None:
        self.aio = aio
        self._loop = loop
        self._on_end = on_end
        self._writer: TxnLogWriter | None = None
        self._pending: PendingSync | None = None
        self._error = 0
        self.started = 0.0  # time.monotonic() of the flush under way
        loop.add_reader(aio.eventfd, self._on_completions)

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def start(self, writer: TxnLogWriter) -> None:
        """Raises, with nothing under way, if the write or the submit fails."""
        pending = writer.begin_flush()
        try:
            self.aio.submit(pending.data_fds, pending.dir_fds)
        except BaseException:
            writer.abort_flush(pending)
            raise
        self._writer, self._pending, self.started = writer, pending, time.monotonic()
        if self.aio.in_flight == 0:  # forceSync=no: written is all there is to do
            self._end(None)

    def _on_completions(self) -> None:
        try:
            results = self.aio.reap()
        except OSError as e:
            if self._pending is not None:
                self._end(e)
            return
        self._note(results)

    def _note(self, results: list[int]) -> None:
        for res in results:
            if res < 0 and not self._error:
                self._error = -res
        if self._pending is not None and self.aio.in_flight == 0:
            errno = self._error
            self._end(OSError(errno, f"fsync of the transaction log: {os.strerror(errno)}") if errno else None)

    def _end(self, error: BaseException | None) -> None:
        writer, pending = self._writer, self._pending
        assert writer is not None and pending is not None
        self._pending, self._error = None, 0
        if error is None:
            writer.end_flush(pending)
        else:
            writer.abort_flush(pending)
        self._on_end(error)

    def wait(self, timeout_s: float) -> None:
        """Block until the flush under way has ended (on_end called), for shutting down."""
        pending = self._pending
        if pending is None:
            return
        self._note(self.aio.wait(timeout_s))
        if self._pending is pending:  # (its end may have started the next one)
            self._end(TimeoutError(f"the log's fsync did not end in {timeout_s:.0f} s"))

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.remove_reader(self.aio.eventfd)
        self.aio.close()
