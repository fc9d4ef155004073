"""A whole bench run: each workload in alternating rounds over the servers (A B A B ...).

With one endpoint this is a plain measurement; with two (``--vs``: zkpy and Apache ZooKeeper)
it also works out the ratios zkpy / ZooKeeper.  The servers it starts are stopped by the
caller (``servers.stop_all`` in a ``finally``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zkpy.bench.aggregate import TARGET_WORKLOADS, Summary, ratio, summarize, targets
from zkpy.bench.cpu import wait_until_quiet
from zkpy.bench.memory import MemoryResult, populate_and_measure, time_recovery
from zkpy.bench.profile import Profiler
from zkpy.bench.runner import LoadConfig, ProgressFn, RunResult, run_workload
from zkpy.bench.servers import Ensemble, ServerProcess
from zkpy.bench.workloads import THROUGHPUT_WORKLOADS, cleanup, prepare
from zkpy.client.loop import run as run_async

__all__ = ["Endpoint", "SuiteConfig", "run_suite"]


@dataclass(slots=True)
class Endpoint:
    kind: str  # "zkpy" or "apache": its key in the report
    hosts: str
    server: ServerProcess | Ensemble | None = None  # None: a server we connect to but did not start
    label: str = ""  # its name for people, when not the key ("zkpy baseline" in the "apache" slot)

    @property
    def name(self) -> str:
        return self.label or self.kind


@dataclass(slots=True)
class SuiteConfig:
    workloads: list[str]
    load: LoadConfig
    rounds: int = 2
    same_load_fraction: float = 0.0  # > 0: re-run at this share of the slower server's throughput
    memory_znodes: int = 1_000_000
    memory_load: LoadConfig = field(default_factory=LoadConfig)
    # > 0: before each round, wait (bounded) until other work on the machine uses less CPU than
    # this (% of one core): on a shared 2-core machine other people's tests move results a lot.
    quiet_below_pct: float = 0.0
    quiet_max_wait_s: float = 120.0
    profile_dir: Path | None = None  # py-spy the zkpy server we started, every round, into here


class UI:
    """What the suite tells the person watching: a progress bar per round and one-line notes."""

    def note(self, text: str) -> None: ...

    def round(self, label: str) -> ProgressFn | None:
        return None

    def done(self) -> None: ...


def _run_round(ep: Endpoint, wl: str, load: LoadConfig, ui: UI, label: str, cfg: SuiteConfig) -> RunResult:
    if cfg.quiet_below_pct > 0:
        waited, busy = wait_until_quiet(cfg.quiet_below_pct, cfg.quiet_max_wait_s)
        if waited > 1.5:
            ui.note(f"{label}: waited {waited:.0f} s for a quieter machine (busy {busy:.0f}% of a core)")
    profiler = None
    # The server to profile; an ensemble's leader.
    pid = ep.server.pid if ep.server and cfg.profile_dir is not None and ep.kind == "zkpy" else None
    if cfg.profile_dir is not None and ep.kind == "zkpy" and pid is not None:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")
        profiler = Profiler(pid, cfg.profile_dir / f"{slug}.txt", load.warmup_s + load.duration_s + 1.0)
        profiler.start()
    progress = ui.round(label)
    try:
        r = run_workload(ep.hosts, wl, load, ep.kind, progress, server_pid=ep.server.pids if ep.server else None)
    finally:
        ui.done()
        if profiler is not None:
            prof = profiler.finish()
    if profiler is not None:
        r.profile = prof
        top = ", ".join(f"{n} {p}%" for n, p in prof.get("self_pct", [])[:5])
        ui.note(f"{label}: profile ({prof.get('samples', 0)} samples), top self time: {top}")
    lat = r.latency_ms
    ui.note(f"{label}: {r.throughput:,.0f}/s  p50 {lat['p50']:.2f} ms  p99 {lat['p99']:.2f} ms  "
            f"client CPU {sum(r.client_cpu_pct):.0f}%"
            + (f"  server CPU {r.server_cpu_pct:.0f}%" if r.server_cpu_pct is not None else "")
            + (f"  other CPU {r.other_cpu_pct:.0f}%" if r.other_cpu_pct is not None else "")
            + (f"  sent late p99 {r.send_late_ms['p99']:.2f} ms" if r.send_late_ms else "")
            + ("  fell behind the offered load" if r.fell_behind else "")
            + (f"  errors {r.errors}" if r.errors else ""))
    return r


def _alternate(eps: list[Endpoint], wl: str, load: LoadConfig, cfg: SuiteConfig, ui: UI, tag: str = ""
               ) -> dict[str, Summary]:
    rounds = cfg.rounds
    got: dict[str, list[RunResult]] = {ep.kind: [] for ep in eps}
    for rnd in range(rounds):
        for ep in eps:
            got[ep.kind].append(_run_round(ep, wl, load, ui, f"{ep.name} {wl}{tag} round {rnd + 1}/{rounds}", cfg))
    return {k: summarize(v) for k, v in got.items()}


def _throughput_workload(eps: list[Endpoint], wl: str, cfg: SuiteConfig, ui: UI) -> dict[str, Any]:
    for ep in eps:
        run_async(prepare(ep.hosts, wl, cfg.load.params))
    sums = _alternate(eps, wl, cfg.load, cfg, ui)
    out: dict[str, Any] = {k: s.to_json() for k, s in sums.items()}
    if len(eps) == 2:
        z, a = sums["zkpy"], sums["apache"]
        rat: dict[str, float | None] = {
            "throughput": ratio(z.throughput, a.throughput),
            "p99": ratio(z.latency_ms["p99"], a.latency_ms["p99"]),
        }
        if z.server_cpu_us_per_req and a.server_cpu_us_per_req:
            rat["server_cpu_per_req"] = ratio(z.server_cpu_us_per_req, a.server_cpu_us_per_req)
        if wl == "watch":
            rat["events_per_s"] = ratio(z.events_per_s, a.events_per_s)
        if cfg.same_load_fraction > 0 and wl in TARGET_WORKLOADS and z.throughput and a.throughput:
            rate = round(cfg.same_load_fraction * min(z.throughput, a.throughput))
            ui.note(f"{wl}: same offered load for both, {rate:,} requests/s")
            fixed = _alternate(eps, wl, replace(cfg.load, rate=float(rate)), cfg, ui, f" @{rate}/s")
            out["same_load"] = {"rate": rate, **{k: s.to_json() for k, s in fixed.items()}}
            rat["p99_same_load"] = ratio(fixed["zkpy"].latency_ms["p99"], fixed["apache"].latency_ms["p99"])
        out["ratio"] = rat
    return out


def _memory_run(eps: list[Endpoint], cfg: SuiteConfig, ui: UI) -> dict[str, Any]:
    servers = [ep.server for ep in eps]
    if any(not isinstance(s, ServerProcess) for s in servers):
        raise ValueError("the memory run needs standalone servers the bench starts itself "
                         "(not --hosts/--zkpy/--apache, not --ensemble)")
    results: dict[str, MemoryResult] = {}
    for ep in eps:
        assert isinstance(ep.server, ServerProcess)
        ui.note(f"{ep.kind} memory: populating {cfg.memory_znodes:,} znodes of {cfg.memory_load.params.value_size} B")
        progress = ui.round(f"{ep.kind} populate")
        try:
            res = populate_and_measure(ep.server, cfg.memory_znodes, cfg.memory_load, progress)
        finally:
            ui.done()
        results[ep.kind] = res
        ui.note(f"{ep.kind} memory: {res.per_znode:,.0f} B/znode ({res.rss_per_znode:,.0f} B RSS), "
                f"{res.populate_per_s:,.0f} creates/s")
    for rnd in range(cfg.rounds):
        for case in ("snapshot", "log"):
            for ep in eps:
                assert isinstance(ep.server, ServerProcess)
                s = time_recovery(ep.server, case, results[ep.kind])
                ui.note(f"{ep.kind} recovery from the {case} round {rnd + 1}/{cfg.rounds}: {s:.2f} s")
    out: dict[str, Any] = {k: r.to_json() for k, r in results.items()}
    if len(eps) == 2:
        z, a = results["zkpy"], results["apache"]
        out["ratio"] = {
            "per_znode": ratio(z.per_znode, a.per_znode),
            "rss_per_znode": ratio(z.rss_per_znode, a.rss_per_znode),
            "recovery_snapshot": ratio(min(z.recovery_snapshot_s), min(a.recovery_snapshot_s)),
            "recovery_log": ratio(min(z.recovery_log_s), min(a.recovery_log_s)),
        }
    return out


def run_suite(eps: list[Endpoint], cfg: SuiteConfig, ui: UI,
              save_partial: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {"workloads": {}}
    for wl in cfg.workloads:
        if wl in THROUGHPUT_WORKLOADS:
            report["workloads"][wl] = _throughput_workload(eps, wl, cfg, ui)
            if save_partial is not None:
                save_partial(report)
    for ep in eps:
        if ep.server is None:  # a server we started is stopped and its directory removed instead
            run_async(cleanup(ep.hosts, cfg.load.params))
    if "memory" in cfg.workloads:
        report["memory"] = _memory_run(eps, cfg, ui)
    if len(eps) == 2 and not any(isinstance(ep.server, Ensemble) for ep in eps):
        # The targets are stated for standalone servers.
        report["targets"] = [t.to_json() for t in targets(report)]
    return report
