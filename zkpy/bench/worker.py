"""One load-generator process: many sessions, many requests in flight on each, on uvloop.

The parent starts N of these (spawn, so no locks or threads are inherited), each with a
:class:`WorkerSpec`.  A worker connects its sessions, says ``ready``, waits for the shared
start time, runs warm-up then the measured window, and sends back one :class:`WorkerResult`:
the requests completed in the window, its latency histogram (HdrHistogram, encoded), at a
fixed rate a second one of how late each request was sent, and the CPU it used itself during
the window (getrusage), so a saturated client is visible.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from zkpy.bench.histogram import LatencyHistogram
from zkpy.bench.workloads import EventCounter, Op, Params, make_ops, watch_all
from zkpy.client import ZooKeeperClient
from zkpy.client.loop import run as run_on_uvloop
from zkpy.proto.errors import ZooKeeperError

__all__ = ["WorkerResult", "WorkerSpec", "worker_main"]

PROGRESS_EVERY_S = 0.25
CONNECT_TIMEOUT_S = 30.0
# A window for the client: at least the slots it runs, so the session never queues requests.
_WINDOW_SLACK = 16


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    hosts: str
    workload: str
    params: Params
    sessions: int
    depth: int
    warmup_s: float
    duration_s: float
    max_ops: int  # bound on requests this worker sends, whatever the duration
    rate: float = 0.0  # requests/s for this worker; 0 = closed loop (as fast as answers come)
    cpus: frozenset[int] | None = None
    seed: int = 0
    populate_offset: int = 0
    first_session: int = 0  # this worker's first session among all workers' (ensemble placement)


@dataclass(slots=True)
class WorkerResult:
    index: int
    ops: int = 0
    errors: int = 0
    first_error: str = ""
    window_start_ns: int = 0
    last_done_ns: int = 0
    hist: bytes = b""
    late_hist: bytes = b""  # fixed rate: how late each request left against when it was due
    cpu_s: float = 0.0
    wall_s: float = 0.0
    events: int = 0
    watches: int = 0
    cpus: list[int] = field(default_factory=list)


class _State:
    """Counters shared by a worker's slots (one event loop: no locks)."""

    __slots__ = ("claimed", "errors", "first_error", "last_done_ns", "max_ops", "ops", "sent")

    def __init__(self, max_ops: int) -> None:
        self.max_ops = max_ops
        self.claimed = 0
        self.sent = 0
        self.ops = 0
        self.errors = 0
        self.first_error = ""
        self.last_done_ns = 0


async def _slot(op: Op, st: _State, record: Any, record_late: Any, measure_ns: int, end_ns: int,
                interval_ns: int, first_ns: int) -> None:
    clock = time.monotonic_ns
    next_ns = first_ns
    while st.claimed < st.max_ops:
        if interval_ns:
            # Fixed rate: latency counts from when the request was due, not when it was sent,
            # so a slow server is not excused by the client waiting for it (coordinated omission).
            now = clock()
            if next_ns > now:
                await asyncio.sleep((next_ns - now) / 1e9)
            t0 = next_ns
            next_ns += interval_ns
        else:
            t0 = clock()
        if t0 >= end_ns:
            return
        i = st.claimed
        st.claimed = i + 1
        sent = clock() if interval_ns else t0
        try:
            await op(i)
        except (ZooKeeperError, OSError, TimeoutError) as e:
            st.errors += 1
            if not st.first_error:
                st.first_error = f"{type(e).__name__}: {e}"
            continue
        t1 = clock()
        st.sent += 1
        if t0 >= measure_ns:
            record((t1 - t0) // 1000)
            if interval_ns:
                # The part of that latency the load generator itself added: a busy client sends
                # late, and the server is charged for it (rightly, from a user's seat), so the
                # report shows it apart.
                record_late((sent - t0) // 1000)
            st.ops += 1
            st.last_done_ns = t1


def session_hosts(hosts: str, session: int) -> str:
    """The connect string for session number ``session`` (over all workers): with several servers
    (an ensemble), one of them in turn, so sessions spread evenly over the members (reads are then
    served by each member, writes forwarded to the leader) instead of where a random pick puts them."""
    slash = hosts.find("/")
    servers, chroot = (hosts, "") if slash < 0 else (hosts[:slash], hosts[slash:])
    members = [h.strip() for h in servers.split(",") if h.strip()]
    if len(members) < 2:
        return hosts
    return members[session % len(members)] + chroot


async def _connect_all(spec: WorkerSpec) -> list[ZooKeeperClient]:
    if spec.workload == "connect":
        return []
    window = spec.depth + _WINDOW_SLACK
    clients = [ZooKeeperClient(session_hosts(spec.hosts, spec.first_session + k), spec.params.session_timeout_ms,
                               max_in_flight=window)
               for k in range(spec.sessions)]
    await asyncio.gather(*(c.start(CONNECT_TIMEOUT_S) for c in clients))
    if "," in spec.hosts:
        # A member may still be applying what the bench prepared through another: catch up first.
        await asyncio.gather(*(c.sync(spec.params.base) for c in clients))
    return clients


async def _report_progress(queue: Any, index: int, st: _State) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        queue.put(("progress", index, st.sent))


async def _wait_go(go: Any, start_at: Any, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    parent = multiprocessing.parent_process()
    while not go.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError("the parent never said go")
        if parent is not None and not parent.is_alive():
            raise RuntimeError("the bench process is gone")
        await asyncio.sleep(0.005)
    return int(start_at.value * 1e9)


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _run(spec: WorkerSpec, queue: Any, go: Any, start_at: Any) -> WorkerResult:
    res = WorkerResult(index=spec.index, cpus=sorted(os.sched_getaffinity(0)))
    clients = await _connect_all(spec)
    counter = EventCounter()
    try:
        if spec.workload == "watch":
            for zk in clients:
                res.watches += await watch_all(zk, spec.params, counter)
        ops = make_ops(spec.workload, clients, spec.depth, spec.params, spec.hosts, spec.seed,
                       sessions=spec.sessions, populate_offset=spec.populate_offset)
        queue.put(("ready", spec.index, None))
        start_ns = await _wait_go(go, start_at, timeout_s=600.0)
        measure_ns = start_ns + int(spec.warmup_s * 1e9)
        end_ns = measure_ns + int(spec.duration_s * 1e9)
        st = _State(spec.max_ops)
        hist, late = LatencyHistogram(), LatencyHistogram()
        loop = asyncio.get_running_loop()
        marks: dict[str, tuple[float, float, int]] = {}

        def mark(name: str) -> None:
            marks[name] = (_cpu_s(), time.monotonic(), counter.count)

        # Client CPU and events are read at the window's edges, so warm-up is not counted.
        loop.call_at(loop.time() + max(0.0, (measure_ns - time.monotonic_ns()) / 1e9), mark, "start")
        now = time.monotonic_ns()
        if start_ns > now:
            await asyncio.sleep((start_ns - now) / 1e9)
        interval_ns = int(len(ops) / spec.rate * 1e9) if spec.rate > 0 else 0
        progress = loop.create_task(_report_progress(queue, spec.index, st))
        try:
            await asyncio.gather(*(
                _slot(op, st, hist.record, late.record, measure_ns, end_ns, interval_ns,
                      start_ns + (k * interval_ns) // max(1, len(ops)))
                for k, op in enumerate(ops)))
        finally:
            progress.cancel()
        mark("end")
        c0, w0, e0 = marks.get("start", marks["end"])
        c1, w1, e1 = marks["end"]
        res.ops, res.errors, res.first_error = st.ops, st.errors, st.first_error
        res.window_start_ns, res.last_done_ns = measure_ns, st.last_done_ns
        res.hist = hist.encode()
        res.late_hist = late.encode() if interval_ns else b""
        res.cpu_s, res.wall_s = c1 - c0, w1 - w0
        res.events = e1 - e0
        queue.put(("progress", spec.index, st.sent))
    finally:
        await asyncio.gather(*(c.close(5.0) for c in clients), return_exceptions=True)
    return res


def worker_main(spec: WorkerSpec, queue: Any, go: Any, start_at: Any) -> None:
    """Process entry point: run, then put ("result", index, WorkerResult) or ("error", index, text)."""
    import signal

    # Ctrl-C is the parent's to handle: it stops us by PID, never leaving a half-told result.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if spec.cpus:
        os.sched_setaffinity(0, spec.cpus)
    try:
        res = run_on_uvloop(_run(spec, queue, go, start_at))
    except BaseException:
        queue.put(("error", spec.index, traceback.format_exc()))
        return
    queue.put(("result", spec.index, res))
