"""Retention of snapshots and logs (``PurgeTxnLog``, ``DatadirCleanupManager``, zkCleanup.sh).

Keep the ``retain_count`` newest snapshots and every log file needed to
replay from the oldest of them: the file that holds its zxid and all later
ones.  Everything older goes.  Only files named exactly like ours
(``log.<hex>``, ``snapshot.<hex>[.gz|.snappy]``) are ever deleted.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from zkpy.storage.files import list_logs, list_snapshots, open_data_dirs
from zkpy.storage.snapshot import is_valid_snapshot_tail
from zkpy.storage.txnlog import log_files_for

__all__ = ["MIN_SNAP_RETAIN_COUNT", "autopurge", "main", "purge"]

log = logging.getLogger(__name__)

MIN_SNAP_RETAIN_COUNT = 3


def purge(data_dir: str | os.PathLike[str], data_log_dir: str | os.PathLike[str] | None = None,
          retain_count: int = MIN_SNAP_RETAIN_COUNT, *, dry_run: bool = False) -> list[Path]:
    """Delete what the ``retain_count`` newest snapshots do not need; return the files removed."""
    if retain_count < MIN_SNAP_RETAIN_COUNT:
        raise ValueError("count should be greater than or equal to 3")
    dirs = open_data_dirs(data_dir, data_log_dir)
    kept = []
    for zxid, path in list_snapshots(dirs.snap_dir):  # newest first
        if is_valid_snapshot_tail(path):
            kept.append(zxid)
            if len(kept) == retain_count:
                break
    if not kept:
        return []
    least = kept[-1]
    needed_logs = {p for _, p in log_files_for(dirs.log_dir, least)}
    doomed = [p for z, p in list_logs(dirs.log_dir) if z < least and p not in needed_logs]
    doomed += [p for z, p in list_snapshots(dirs.snap_dir) if z < least]
    for p in doomed:
        log.info("Removing file: %s", p)
        if not dry_run:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
    return doomed


def autopurge(data_dir: str | os.PathLike[str], data_log_dir: str | os.PathLike[str] | None,
              snap_retain_count: int) -> list[Path]:
    """The periodic task (every ``autopurge.purgeInterval`` hours): never raises on I/O trouble.

    ``snap_retain_count`` below 3 is raised to 3, as QuorumPeerConfig does.
    """
    count = max(snap_retain_count, MIN_SNAP_RETAIN_COUNT)
    log.info("Purge task started.")
    try:
        removed = purge(data_dir, data_log_dir, count)
    except (OSError, ValueError) as e:
        log.error("Error occurred while purging: %s", e)
        return []
    log.info("Purge task completed.")
    return removed


USAGE = """Usage:
PurgeTxnLog dataLogDir [snapDir] -n count
\tdataLogDir -- path to the txn log directory
\tsnapDir -- path to the snapshot directory
\tcount -- the number of old snaps/logs you want to keep, value should be greater than or equal to 3
"""


def main(argv: Sequence[str]) -> int:
    """``PurgeTxnLog``'s command line: ``dataLogDir [snapDir] -n count`` (zkCleanup.sh passes these)."""
    args = list(argv)
    if len(args) not in (3, 4) or args[-2] != "-n":
        print(USAGE, end="")
        return 1
    log_dir = Path(args[0])
    snap_dir = Path(args[1]) if len(args) == 4 else log_dir
    for p in {log_dir, snap_dir}:
        if not p.exists():
            print(f"Path '{p.absolute()}' does not exist. ", file=sys.stderr)
            print(USAGE, end="")
            return 1
    try:
        count = int(args[-1])
    except ValueError:
        print(f"'{args[-1]}' can not be parsed to integer.", file=sys.stderr)
        print(USAGE, end="")
        return 1
    if count < MIN_SNAP_RETAIN_COUNT:
        print("count should be greater than or equal to 3", file=sys.stderr)
        print(USAGE, end="")
        return 1
    for p in purge(snap_dir, log_dir, count):
        print(f"Removing file: {p}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
