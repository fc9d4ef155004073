"""Run one workload against one server with N worker processes, and merge what they report."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue as queue_mod
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zkpy.bench.cpu import CpuSample, sample
from zkpy.bench.histogram import LatencyHistogram
from zkpy.bench.worker import WorkerResult, WorkerSpec, worker_main
from zkpy.bench.workloads import Params

__all__ = ["BenchError", "LoadConfig", "RunResult", "run_workload"]

# At a fixed rate a round in which the server answered less than this share of the offered load
# fell behind it: its latencies then grow with the queue, not with the server's answer time.
KEPT_UP_SHARE = 0.99

# Time allowed for workers to start and connect their sessions, beyond the run itself.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0

# progress(done, total, text): ``total`` seconds for timed runs, requests for counted ones.
ProgressFn = Callable[[float, float, str], None]


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """How much load: the same for both servers in a ``--vs`` run."""

    workers: int = 2
    sessions: int = 16  # in all, spread over the workers
    depth: int = 32  # requests in flight per session
    warmup_s: float = 2.0
    duration_s: float = 10.0
    rate: float = 0.0  # requests/s in all; 0 = closed loop
    max_ops: int = 50_000_000  # per worker: a bound, whatever the duration
    client_cpus: frozenset[int] | None = None
    params: Params = field(default_factory=Params)

    def sessions_of(self, worker: int) -> int:
        n, extra = divmod(self.sessions, self.workers)
        return max(1, n + (1 if worker < extra else 0))


@dataclass(slots=True)
class RunResult:
    server: str
    workload: str
    ops: int
    errors: int
    window_s: float
    throughput: float  # requests (sessions for "connect") per second
    latency_ms: dict[str, float]
    events_per_s: float = 0.0
    watches: int = 0
    client_cpu_pct: list[float] = field(default_factory=list)  # per worker, % of one core
    client_cpus: list[list[int]] = field(default_factory=list)
    offered_rate: float = 0.0
    first_error: str = ""
    server_cpu_pct: float | None = None  # the server process, % of one core (servers we started)
    other_cpu_pct: float | None = None  # the rest of the machine: neither server nor load generator
    profile: dict[str, Any] | None = None  # py-spy summary of the server (--profile)
    hist: LatencyHistogram | None = None
    # Fixed rate only: how late the load generator sent requests against when they were due.
    late_hist: LatencyHistogram | None = None

    @property
    def fell_behind(self) -> bool:
        """At a fixed rate: fewer answers than the offered load (see KEPT_UP_SHARE)."""
        return bool(self.offered_rate) and self.throughput < KEPT_UP_SHARE * self.offered_rate

    @property
    def send_late_ms(self) -> dict[str, float]:
        return self.late_hist.summary_ms() if self.late_hist is not None else {}

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server, "workload": self.workload, "ops": self.ops, "errors": self.errors,
            "window_s": round(self.window_s, 3), "throughput": round(self.throughput, 1),
            "latency_ms": self.latency_ms, "events_per_s": round(self.events_per_s, 1),
            "watches": self.watches, "client_cpu_pct": [round(c, 1) for c in self.client_cpu_pct],
            "client_cpus": self.client_cpus, "offered_rate": self.offered_rate,
            "first_error": self.first_error,
            "server_cpu_pct": None if self.server_cpu_pct is None else round(self.server_cpu_pct, 1),
            "other_cpu_pct": None if self.other_cpu_pct is None else round(self.other_cpu_pct, 1),
            **({"profile": self.profile} if self.profile else {}),
            **({"send_late_ms": self.send_late_ms} if self.send_late_ms else {}),
        }


def _merge(server: str, workload: str, results: list[WorkerResult], offered: float) -> RunResult:
    hist = LatencyHistogram()
    for r in results:
        hist.add_encoded(r.hist)
    late = LatencyHistogram()
    for r in results:
        if r.late_hist:  # (empty in a closed loop)
            late.add_encoded(r.late_hist)
    ops = sum(r.ops for r in results)
    start = min(r.window_start_ns for r in results)
    last = max(r.last_done_ns for r in results)
    window_s = max(1e-9, (last - start) / 1e9) if ops else 0.0
    wall = [r.wall_s for r in results]
    return RunResult(
        server=server, workload=workload, ops=ops, errors=sum(r.errors for r in results),
        window_s=window_s, throughput=ops / window_s if ops else 0.0, latency_ms=hist.summary_ms(),
        events_per_s=sum(r.events for r in results) / max(max(wall), 1e-9),
        watches=sum(r.watches for r in results),
        client_cpu_pct=[100.0 * r.cpu_s / max(r.wall_s, 1e-9) for r in results],
        client_cpus=[r.cpus for r in results], offered_rate=offered,
        first_error=next((r.first_error for r in results if r.first_error), ""), hist=hist,
        late_hist=late if late.count else None)


def run_workload(hosts: str, workload: str, load: LoadConfig, server: str = "",
                 progress: ProgressFn | None = None, total_ops: int = 0,
                 server_pid: int | Sequence[int] | None = None) -> RunResult:
    """Run ``workload`` with ``load.workers`` processes; ``total_ops`` > 0 makes a counted run
    (the memory run's populate: each worker creates its share, then stops).  ``server_pid``: the
    server's PID, or its members' for an ensemble (their CPU is added up)."""
    # forkserver: workers fork from a clean single-threaded process with the client preloaded
    # (no threads or locks inherited from us, and no per-worker interpreter start-up).
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["zkpy.bench.worker"])
    q: Any = ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    specs = []
    share, extra = divmod(total_ops, load.workers)
    offset = first_session = 0
    for w in range(load.workers):
        n_ops = share + (1 if w < extra else 0) if total_ops else load.max_ops
        specs.append(WorkerSpec(
            index=w, hosts=hosts, workload=workload, params=load.params, sessions=load.sessions_of(w),
            depth=load.depth, warmup_s=0.0 if total_ops else load.warmup_s, duration_s=load.duration_s,
            max_ops=n_ops, rate=load.rate / load.workers, cpus=load.client_cpus, seed=w * 7919 + 1,
            populate_offset=offset, first_session=first_session))
        offset += n_ops if total_ops else 0
        first_session += load.sessions_of(w)
    procs = [ctx.Process(target=worker_main, args=(s, q, go, start_at), name=f"zkpy-bench-{s.index}",
                         daemon=True) for s in specs]
    finished = False
    started: list[Any] = []
    try:
        for p in procs:
            p.start()
            started.append(p)
        results, cpu = _collect(q, go, start_at, procs, load, progress, total_ops, server_pid)
        finished = True
    finally:
        # A worker interrupted half-way through start() has no PID here: it sees us gone and exits.
        _stop(started, finished)
    res = _merge(server, workload, results, load.rate)
    if cpu is not None:
        s0, s1 = cpu
        if server_pid is not None:
            res.server_cpu_pct = s0.server_pct(s1)
        server_pct = res.server_cpu_pct or 0.0
        res.other_cpu_pct = max(0.0, s0.busy_pct(s1) - server_pct - sum(res.client_cpu_pct))
    return res


def _collect(q: Any, go: Any, start_at: Any, procs: list[Any], load: LoadConfig,
             progress: ProgressFn | None, total_ops: int, server_pid: int | Sequence[int] | None
             ) -> tuple[list[WorkerResult], tuple[CpuSample, CpuSample] | None]:
    """Wait for the workers; also sample CPU over (about) the measured window."""
    n = len(procs)
    ready: set[int] = set()
    results: dict[int, WorkerResult] = {}
    sent: dict[int, int] = {}
    deadline = time.monotonic() + START_TIMEOUT_S
    run_s = load.warmup_s + load.duration_s
    t_go = 0.0
    s0: CpuSample | None = None
    s1: CpuSample | None = None
    while len(results) < n:
        if t_go and s0 is None and time.monotonic() >= t_go + (0.0 if total_ops else load.warmup_s):
            s0 = sample(server_pid)
        if time.monotonic() > deadline:
            raise BenchError(f"workers did not finish in time ({len(ready)}/{n} ready, {len(results)} done)")
        try:
            kind, idx, payload = q.get(timeout=0.1)
        except queue_mod.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise BenchError(f"worker {dead[0].name} died with exit code {dead[0].exitcode}") from None
            kind = ""
        if kind == "error":
            raise BenchError(f"worker {idx} failed:\n{payload}")
        if kind == "ready":
            ready.add(idx)
            if len(ready) == n:
                t_go = time.monotonic() + 0.05
                start_at.value = t_go
                go.set()
                deadline = t_go + (run_s if not total_ops else load.duration_s) + STOP_TIMEOUT_S
        elif kind == "progress":
            sent[idx] = payload
        elif kind == "result":
            if s1 is None:
                s1 = sample(server_pid)
            results[idx] = payload
        if progress is not None and t_go:
            done_ops = sum(sent.values())
            if total_ops:
                progress(done_ops, total_ops, f"{done_ops:,} created")
            else:
                el = max(0.0, time.monotonic() - t_go)
                progress(min(el, run_s), run_s, f"{done_ops / max(el, 1e-3):,.0f} req/s")
    cpu = (s0, s1) if s0 is not None and s1 is not None else None
    return [results[i] for i in range(n)], cpu


def _stop(procs: list[Any], finished: bool) -> None:
    """Stop the workers we started, by their own process handle (PID); reap every one.

    Finished workers are exiting by themselves; after an error or Ctrl-C they are told at once.
    """
    for p in procs:
        if finished:
            p.join(timeout=5.0)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5.0)
        if p.is_alive():
            with contextlib.suppress(Exception):
                p.kill()
            p.join(timeout=5.0)
