"""The memory run: N znodes of S bytes; memory per znode, and start-up time to recover them.

For one server kind, in a data directory of its own:

1. start empty (snapCount so high that no snapshot is taken while populating), read the
   baseline memory, populate N znodes with the worker processes, read memory again;
2. stop; keep a copy of the data directory as it is: the log alone (plus the empty snapshot
   taken at the first start) -> the *log* recovery case;
3. start once more: the server recovers from the log and snapshots the result; stop; drop
   the log files the new snapshot covers -> the *snapshot* recovery case;
4. recovery rounds (:func:`time_recovery`): restore a case's copy, start, time spawn ->
   serving, check the node count, stop.

Memory: zkpy's resident set (VmRSS) after minus before; Apache's live heap after a full GC
(jcmd GC.run + GC.heap_info) after minus before, and its RSS likewise.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zkpy.bench.runner import LoadConfig, ProgressFn, run_workload
from zkpy.bench.servers import ServerProcess, apache_heap_used_bytes, four_letter, rss_bytes
from zkpy.bench.workloads import Params, prepare

__all__ = ["MemoryResult", "populate_and_measure", "time_recovery"]

# No snapshot while populating: the log alone must hold the data set for the log case.
SNAP_COUNT_NO_SNAPSHOT = "100000000"
SNAPSHOT_WAIT_S = 600.0
_LOG_FILE = re.compile(r"^log\.([0-9a-f]+)$")


@dataclass(slots=True)
class MemoryResult:
    server: str
    znodes: int
    value_size: int
    empty_start_s: float = 0.0
    populate_per_s: float = 0.0
    rss_before: int = 0
    rss_after: int = 0
    heap_before: int = 0  # Apache: live heap after a full GC
    heap_after: int = 0
    node_count: int = 0
    rss_after_snapshot_recovery: int = 0
    recovery_log_s: list[float] = field(default_factory=list)
    recovery_snapshot_s: list[float] = field(default_factory=list)

    @property
    def rss_per_znode(self) -> float:
        return (self.rss_after - self.rss_before) / max(1, self.znodes)

    @property
    def heap_per_znode(self) -> float:
        return (self.heap_after - self.heap_before) / max(1, self.znodes)

    @property
    def per_znode(self) -> float:
        """The figure the target compares: zkpy's RSS, Apache's live heap, per znode."""
        return self.heap_per_znode if self.server == "apache" else self.rss_per_znode

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(rss_per_znode=round(self.rss_per_znode, 1), heap_per_znode=round(self.heap_per_znode, 1),
                 per_znode=round(self.per_znode, 1))
        return d


def _memory(srv: ServerProcess) -> tuple[int, int]:
    assert srv.pid is not None
    heap = apache_heap_used_bytes(srv.pid) if srv.kind == "apache" else 0
    return rss_bytes(srv.pid), heap


def srvr_field(srv: ServerProcess, name: str) -> str:
    for line in four_letter(srv.host, srv.port, "srvr").splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"{srv.kind}: no {name!r} in srvr")


def _case_dir(srv: ServerProcess, case: str) -> Path:
    return srv.base / f"recovery-{case}"


def populate_and_measure(srv: ServerProcess, znodes: int, load: LoadConfig,
                         progress: ProgressFn | None = None) -> MemoryResult:
    """Steps 1-3 of the module docstring; leaves the two recovery cases' copies beside the data."""
    p: Params = load.params
    res = MemoryResult(server=srv.kind, znodes=znodes, value_size=p.value_size)
    srv.stop()
    srv.wipe()
    srv.extra_cfg["snapCount"] = SNAP_COUNT_NO_SNAPSHOT
    res.empty_start_s = srv.start()
    from zkpy.client.loop import run

    run(prepare(srv.hosts, "memory", p, memory_znodes=znodes))
    res.rss_before, res.heap_before = _memory(srv)
    t0 = time.monotonic()
    pop = run_workload(srv.hosts, "populate", load, srv.kind, progress, total_ops=znodes)
    if pop.errors:
        raise RuntimeError(f"{srv.kind}: {pop.errors} creates failed while populating: {pop.first_error}")
    res.populate_per_s = znodes / (time.monotonic() - t0)
    res.rss_after, res.heap_after = _memory(srv)
    res.node_count = int(srvr_field(srv, "Node count"))
    srv.stop()
    _copy_data(srv, "log")
    # One recovery from the log: the server snapshots what it recovered (Apache before it
    # serves, zkpy in the background: wait for the file, renamed into place when complete).
    srv.start(timeout_s=SNAPSHOT_WAIT_S)
    last_zxid = int(srvr_field(srv, "Zxid"), 16)
    _wait_snapshot(srv, last_zxid)
    srv.stop()
    _drop_covered_logs(srv.data_dir / "version-2", last_zxid)
    _copy_data(srv, "snapshot")
    return res


def time_recovery(srv: ServerProcess, case: str, res: MemoryResult) -> float:
    """Restore ``case``'s copy ("log" or "snapshot"), start, and time spawn -> serving."""
    srv.stop()
    srv.wipe()
    shutil.copytree(_case_dir(srv, case), srv.data_dir)
    seconds = srv.start(timeout_s=SNAPSHOT_WAIT_S)
    count = int(srvr_field(srv, "Node count"))
    if count != res.node_count:
        raise RuntimeError(f"{srv.kind} recovered {count} znodes from the {case}, expected {res.node_count}")
    if case == "snapshot" and srv.pid is not None:
        res.rss_after_snapshot_recovery = rss_bytes(srv.pid)
    (res.recovery_log_s if case == "log" else res.recovery_snapshot_s).append(seconds)
    srv.stop()
    return seconds


def _copy_data(srv: ServerProcess, case: str) -> None:
    dst = _case_dir(srv, case)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(srv.data_dir, dst)


def _wait_snapshot(srv: ServerProcess, zxid: int) -> None:
    want = srv.data_dir / "version-2" / f"snapshot.{zxid:x}"
    deadline = time.monotonic() + SNAPSHOT_WAIT_S
    while not want.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{srv.kind} wrote no {want.name} in {SNAPSHOT_WAIT_S}s")
        time.sleep(0.1)


def _drop_covered_logs(version2: Path, snap_zxid: int) -> None:
    """Remove the log files whose every txn the snapshot holds (nothing was written after it)."""
    for f in version2.iterdir():
        m = _LOG_FILE.match(f.name)
        if m and int(m.group(1), 16) <= snap_zxid:
            f.unlink()
