"""CPU accounting from /proc: the server's own CPU, and what the rest of the machine did.

The machine may be shared (other people's tests), and on 2 cores that decides a result:
each round reports the server's CPU and the CPU used by processes that are neither the
server nor the load generator, so a disturbed round is visible in the report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuSample", "load_average", "sample", "wait_until_quiet"]

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_CPUS = max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class CpuSample:
    at_s: float  # the wall clock times the CPUs: CPU-seconds elapsed
    busy_s: float  # all CPUs, all processes
    server_s: float  # the server processes (every thread of each); 0 when unknown

    def server_pct(self, later: CpuSample) -> float:
        """The server's CPU between two samples, in % of one core."""
        return 100.0 * (later.server_s - self.server_s) / max(self.wall_s(later), 1e-9)

    def busy_pct(self, later: CpuSample) -> float:
        return 100.0 * (later.busy_s - self.busy_s) / max(self.wall_s(later), 1e-9)

    def wall_s(self, later: CpuSample) -> float:
        return (later.at_s - self.at_s) / _CPUS


def machine_times(proc_stat: str, now_s: float, cpus: int) -> tuple[float, float]:
    """(CPU-seconds as a clock, busy CPU-seconds) from /proc/stat's first line at ``now_s``.

    Busy is the wall clock on every CPU less the idle and iowait time, not the sum of the busy
    fields: those count scheduler ticks, each charging its whole period to whatever it lands on,
    while a tickless kernel measures idle time exactly.  A pinned 3-member ensemble at 500
    requests/s read as 91% of its core busy by ticks, 60% by idle time."""
    fields = proc_stat.split("\n", 1)[0].split()[1:]
    idle = (int(fields[3]) + int(fields[4])) / _TICKS_PER_S  # idle, iowait
    total = now_s * cpus
    return total, total - idle


def _machine() -> tuple[float, float]:
    return machine_times(Path("/proc/stat").read_text(), time.monotonic(), _CPUS)


def _process_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the command name (which may hold spaces) start at ")".
    rest = stat.rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / _TICKS_PER_S  # utime, stime


def sample(server_pids: int | Sequence[int] | None) -> CpuSample:
    """The machine's CPU and the server's: one PID, or every member of an ensemble."""
    at, busy = _machine()
    pids = [server_pids] if isinstance(server_pids, int) else list(server_pids or ())
    return CpuSample(at_s=at, busy_s=busy, server_s=sum(_process_s(pid) for pid in pids))


def load_average() -> float:
    return os.getloadavg()[0]


def wait_until_quiet(busy_below_pct: float, max_wait_s: float, step_s: float = 1.0) -> tuple[float, float]:
    """Wait (at most ``max_wait_s``) until the machine's busy CPU over ``step_s`` is below the
    threshold (% of one core); the seconds waited and the last busy figure."""
    start = time.monotonic()
    while True:
        a = sample(None)
        time.sleep(step_s)
        busy = a.busy_pct(sample(None))
        waited = time.monotonic() - start
        if busy < busy_below_pct or waited >= max_wait_s:
            return waited, busy
