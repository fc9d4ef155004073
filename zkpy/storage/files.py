"""File names and directory layout of ``version-2`` (``Util``, ``FileTxnSnapLog``).

Names are matched strictly: ``log.<hex>`` and ``snapshot.<hex>`` with an
optional ``.gz`` / ``.snappy`` suffix.  Apache matches by prefix only, so it
would also take an operator's ``log.1a.fixed`` (TxnLogToolkit's output) or its
own ``snapshot.1a.tmp`` for data; we ignore such files rather than read them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from zkpy.storage.errors import StorageError

__all__ = [
    "LOG_PREFIX",
    "SNAP_PREFIX",
    "VERSION_DIR",
    "DataDirs",
    "list_logs",
    "list_snapshots",
    "log_name",
    "open_data_dirs",
    "snapshot_name",
]

VERSION_DIR = "version-2"
LOG_PREFIX = "log"
SNAP_PREFIX = "snapshot"
SNAP_SUFFIXES = ("", ".gz", ".snappy")

_LOG_RE = re.compile(r"^log\.([0-9a-fA-F]{1,16})$")
_SNAP_RE = re.compile(r"^snapshot\.([0-9a-fA-F]{1,16})(\.gz|\.snappy)?$")


def _hex(zxid: int) -> str:
    # Long.toHexString: two's complement for negatives, no padding.
    return format(zxid & 0xFFFFFFFFFFFFFFFF, "x")


def log_name(zxid: int) -> str:
    return f"{LOG_PREFIX}.{_hex(zxid)}"


def snapshot_name(zxid: int, compression: str = "") -> str:
    suffix = f".{compression}" if compression else ""
    return f"{SNAP_PREFIX}.{_hex(zxid)}{suffix}"


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def parse_log_name(name: str) -> int | None:
    m = _LOG_RE.match(name)
    return _signed(int(m.group(1), 16)) if m else None


def parse_snapshot_name(name: str) -> int | None:
    m = _SNAP_RE.match(name)
    return _signed(int(m.group(1), 16)) if m else None


def list_logs(log_dir: Path) -> list[tuple[int, Path]]:
    """(start zxid, path) of every log file, oldest first."""
    out = []
    for name in _listdir(log_dir):
        z = parse_log_name(name)
        if z is not None:
            out.append((z, log_dir / name))
    out.sort(key=lambda t: t[0])
    return out


def list_snapshots(snap_dir: Path) -> list[tuple[int, Path]]:
    """(zxid, path) of every snapshot file, newest first."""
    out = []
    for name in _listdir(snap_dir):
        z = parse_snapshot_name(name)
        if z is not None:
            out.append((z, snap_dir / name))
    out.sort(key=lambda t: t[0], reverse=True)
    return out


def _listdir(d: Path) -> list[str]:
    try:
        return os.listdir(d)
    except FileNotFoundError:
        return []


def fsync_dir(d: Path) -> None:
    """Make a create/rename/unlink in ``d`` durable."""
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class DataDirs:
    """The two ``version-2`` directories: snapshots (dataDir) and logs (dataLogDir)."""

    snap_dir: Path
    log_dir: Path


def open_data_dirs(data_dir: str | os.PathLike[str], data_log_dir: str | os.PathLike[str] | None = None,
                   *, autocreate: bool = True) -> DataDirs:
    """Resolve and create ``<dataDir>/version-2`` and ``<dataLogDir>/version-2`` as Apache does.

    Files beside ``version-2`` (``myid``, ``zookeeper_server.pid``, ``initialize``)
    are not ours and are left alone.  When the two directories differ, a
    snapshot in the log directory or a log in the snapshot directory is refused
    (ZOOKEEPER-2967): it means the configuration points at the wrong place.
    """
    snap = Path(data_dir) / VERSION_DIR
    log = Path(data_log_dir if data_log_dir is not None else data_dir) / VERSION_DIR
    for d, what in ((log, "data"), (snap, "snap")):
        if not d.exists():
            if not autocreate:
                raise StorageError(f"Missing {what} directory {d}, automatic data directory creation is "
                                   "disabled (zookeeper.datadir.autocreate is false)")
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(f"Unable to create {what} directory {d}: {e}") from e
        if not os.access(d, os.W_OK):
            raise StorageError(f"Cannot write to {what} directory {d}")
    if snap.resolve() != log.resolve():
        if list_snapshots(log):
            raise StorageError(f"Log directory {log} has snapshot files. "
                               "Check if dataLogDir and dataDir configuration is correct.")
        if list_logs(snap):
            raise StorageError(f"Snapshot directory {snap} has log files. "
                               "Check if dataLogDir and dataDir configuration is correct.")
    return DataDirs(snap, log)
