"""Summaries across rounds, and the zkpy / ZooKeeper ratios the issue's targets are stated in."""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from zkpy.bench.histogram import LatencyHistogram
from zkpy.bench.runner import RunResult

__all__ = ["Summary", "Target", "summarize", "targets"]


@dataclass(slots=True)
class Summary:
    """One server, one workload, all its rounds: mean throughput, latencies of every round merged."""

    server: str
    workload: str
    rounds: list[RunResult]
    throughput: float = 0.0
    throughput_min: float = 0.0
    throughput_max: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    events_per_s: float = 0.0
    client_cpu_pct: float = 0.0  # mean over rounds of the workers' sum, % of one core
    errors: int = 0
    offered_rate: float = 0.0
    server_cpu_pct: float | None = None
    other_cpu_pct: float | None = None
    send_late_ms: dict[str, float] = field(default_factory=dict)  # fixed rate: see RunResult

    @property
    def server_cpu_us_per_req(self) -> float | None:
        """Server CPU per request: what a request costs the server, however busy the machine was."""
        if self.server_cpu_pct is None or not self.throughput:
            return None
        return self.server_cpu_pct / 100.0 / self.throughput * 1e6

    @property
    def rounds_behind(self) -> int:
        """At a fixed rate: the rounds that fell behind the offered load."""
        return sum(r.fell_behind for r in self.rounds)

    def to_json(self) -> dict[str, Any]:
        return {
            "throughput": round(self.throughput, 1), "throughput_min": round(self.throughput_min, 1),
            "throughput_max": round(self.throughput_max, 1), "latency_ms": self.latency_ms,
            "events_per_s": round(self.events_per_s, 1), "client_cpu_pct": round(self.client_cpu_pct, 1),
            "errors": self.errors, "offered_rate": round(self.offered_rate, 1),
            "server_cpu_pct": _round(self.server_cpu_pct), "other_cpu_pct": _round(self.other_cpu_pct),
            "server_cpu_us_per_req": _round(self.server_cpu_us_per_req),
            **({"send_late_ms": self.send_late_ms} if self.send_late_ms else {}),
            **({"rounds_behind": self.rounds_behind} if self.offered_rate else {}),
            "rounds": [r.to_json() for r in self.rounds],
        }


def summarize(rounds: list[RunResult]) -> Summary:
    first = rounds[0]
    hist, late = LatencyHistogram(), LatencyHistogram()
    for r in rounds:
        if r.hist is not None:
            hist.add(r.hist)
        if r.late_hist is not None:
            late.add(r.late_hist)
    tps = [r.throughput for r in rounds]
    return Summary(
        server=first.server, workload=first.workload, rounds=rounds, throughput=mean(tps),
        throughput_min=min(tps), throughput_max=max(tps), latency_ms=hist.summary_ms(),
        events_per_s=mean(r.events_per_s for r in rounds),
        client_cpu_pct=mean(sum(r.client_cpu_pct) for r in rounds),
        errors=sum(r.errors for r in rounds), offered_rate=first.offered_rate,
        server_cpu_pct=_mean_known([r.server_cpu_pct for r in rounds]),
        other_cpu_pct=_mean_known([r.other_cpu_pct for r in rounds]),
        send_late_ms=late.summary_ms() if late.count else {})


def _mean_known(xs: list[float | None]) -> float | None:
    known = [x for x in xs if x is not None]
    return mean(known) if known else None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    ratio: float | None
    goal: str  # ">= 1.0" or "<= 1.0"

    @property
    def met(self) -> bool | None:
        if self.ratio is None:
            return None
        return self.ratio >= 1.0 if self.goal.startswith(">=") else self.ratio <= 1.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ratio": None if self.ratio is None else round(self.ratio, 3),
                "goal": self.goal, "met": self.met}


TARGET_WORKLOADS = ("read", "write", "create-delete", "mixed")


def targets(report: dict[str, Any]) -> list[Target]:
    """The issue's targets, from a ``--vs`` report's ratios (missing figures are left out)."""
    out: list[Target] = []
    for wl in TARGET_WORKLOADS:
        r = report.get("workloads", {}).get(wl, {}).get("ratio")
        if not r:
            continue
        out.append(Target(f"{wl} throughput", r.get("throughput"), ">= 1.0"))
        p99 = r.get("p99_same_load", r.get("p99"))
        label = "p99 at the same offered load" if "p99_same_load" in r else "p99 at the same concurrency"
        out.append(Target(f"{wl} {label}", p99, "<= 1.0"))
    mem = report.get("memory", {}).get("ratio")
    if mem:
        out.append(Target("memory per znode (zkpy RSS / Apache live heap)", mem.get("per_znode"), "<= 1.0"))
        out.append(Target("recovery from a snapshot (time)", mem.get("recovery_snapshot"), "<= 1.0"))
        out.append(Target("recovery from the log alone (time)", mem.get("recovery_log"), "<= 1.0"))
    return out
