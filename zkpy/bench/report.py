"""The report as Markdown tables (pasteable into docs/performance.md) and the machine it ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from zkpy.bench.servers import java_version

__all__ = ["machine_info", "render"]

UNITS = {"connect": "sessions/s", "watch": "writes/s"}


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(), "java": java_version()}


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(head), _row(["---"] * len(head)), *(_row(r) for r in rows)]


def _lat_cells(lat: dict[str, float]) -> list[str]:
    return [_f(lat.get(k)) for k in ("p50", "p90", "p99", "p99.9", "max")]


CPU_HEAD = ["client CPU", "server CPU", "other CPU", "server CPU us/req"]


def _ratio_cell(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}x"


def _pct(x: float | list[float] | None) -> str:
    if isinstance(x, list):  # a round's figure is per worker: the load generator is their sum
        x = sum(x)
    return "-" if x is None else f"{x:.0f}%"


def _cpu_cells(s: dict[str, Any]) -> list[str]:
    us = s.get("server_cpu_us_per_req")
    return [_pct(s.get("client_cpu_pct")), _pct(s.get("server_cpu_pct")), _pct(s.get("other_cpu_pct")),
            "-" if us is None else f"{us:.1f}"]


def _names(report: dict[str, Any]) -> tuple[dict[str, str], str]:
    """The servers' names in the tables and the ratio's: the second slot of --vs may hold a zkpy
    baseline (an A/A run) under its key "apache"."""
    if report.get("setup", {}).get("baseline") == "zkpy":
        return {"zkpy": "zkpy", "apache": "zkpy baseline"}, "**zkpy/baseline**"
    return {"zkpy": "zkpy", "apache": "apache"}, "**zkpy/ZK**"


def _throughput_table(workloads: dict[str, Any], names: dict[str, str], ratio_name: str) -> list[str]:
    rows = []
    for wl, d in workloads.items():
        for server in ("zkpy", "apache"):
            s = d.get(server)
            if s is None:
                continue
            tp = f"{s['throughput']:,.0f} ({s['throughput_min']:,.0f}-{s['throughput_max']:,.0f})"
            extra = f"{s['events_per_s']:,.0f} events/s" if wl == "watch" else ""
            rows.append([wl, names[server], tp, *_lat_cells(s["latency_ms"]), *_cpu_cells(s), str(s["errors"]), extra])
        r = d.get("ratio")
        if r:
            notes = []
            if "events_per_s" in r:
                notes.append(f"events {_f(r.get('events_per_s'))}x")
            best_a = d.get("apache", {}).get("throughput_max")
            if best_a:
                notes.append(f"best round vs best round {d['zkpy']['throughput_max'] / best_a:.2f}x")
            extra = "; ".join(notes)
            rows.append([wl, ratio_name, f"**{_f(r['throughput'])}x**", "", "", f"**{_f(r['p99'])}x**",
                         "", "", "", "", "", _ratio_cell(r.get("server_cpu_per_req")), "", extra])
    head = ["workload", "server", "req/s mean (min-max)", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
            *CPU_HEAD, "errors", "note"]
    return _table(head, rows)


def _rounds_table(workloads: dict[str, Any], names: dict[str, str]) -> list[str]:
    rows = []
    for wl, d in workloads.items():
        for tag, src in (("", d), (" same load", d.get("same_load") or {})):
            for server in ("zkpy", "apache"):
                s = src.get(server)
                if s is None:
                    continue
                for i, r in enumerate(s["rounds"], 1):
                    rows.append([wl + tag, names[server], str(i), f"{r['throughput']:,.0f}", _f(r["latency_ms"]["p99"]),
                                 *_cpu_cells(r)[:3]])
    head = ["workload", "server", "round", "req/s", "p99 ms", "client CPU", "server CPU", "other CPU"]
    return _table(head, rows)


def _same_load_table(workloads: dict[str, Any], names: dict[str, str], ratio_name: str) -> list[str]:
    rows = []
    for wl, d in workloads.items():
        sl = d.get("same_load")
        if not sl:
            continue
        for server in ("zkpy", "apache"):
            s = sl[server]
            late = s.get("send_late_ms") or {}
            behind = f"{s['rounds_behind']} of {len(s['rounds'])}" if "rounds_behind" in s else "-"
            rows.append([wl, f"{sl['rate']:,}", names[server], f"{s['throughput']:,.0f}", behind,
                         *_lat_cells(s["latency_ms"]), _f(late.get("p99")), *_cpu_cells(s)])
        rows.append([wl, "", ratio_name, "", "", "", "", f"**{_f(d['ratio'].get('p99_same_load'))}x**", "", "",
                     "", "", "", "", "", ""])
    if not rows:
        return []
    head = ["workload", "offered req/s", "server", "done req/s", "rounds behind", "p50 ms", "p90 ms", "p99 ms",
            "p99.9 ms", "max ms", "sent late p99 ms", *CPU_HEAD]
    return _table(head, rows)


def _memory_table(mem: dict[str, Any]) -> list[str]:
    rows = []
    for server in ("zkpy", "apache"):
        m = mem.get(server)
        if m is None:
            continue
        what = "live heap after full GC" if server == "apache" else "RSS"
        rows.append([server, f"{m['znodes']:,} x {m['value_size']} B", f"{m['per_znode']:,.0f} ({what})",
                     f"{m['rss_per_znode']:,.0f}", f"{m['populate_per_s']:,.0f}", _f(m["empty_start_s"]),
                     " / ".join(_f(x) for x in m["recovery_snapshot_s"]),
                     " / ".join(_f(x) for x in m["recovery_log_s"])])
    r = mem.get("ratio")
    if r:
        rows.append(["**zkpy/ZK**", "", f"**{_f(r['per_znode'])}x**", f"{_f(r['rss_per_znode'])}x", "", "",
                     f"**{_f(r['recovery_snapshot'])}x** (best)", f"**{_f(r['recovery_log'])}x** (best)"])
    head = ["server", "data set", "bytes per znode", "RSS per znode", "creates/s", "empty start s",
            "start from snapshot s", "start from log alone s"]
    return _table(head, rows)


def render(report: dict[str, Any], rounds: bool = False) -> str:
    out = []
    m = report.get("machine", {})
    if m:
        out.append(f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, Python {m['python']}, "
                   f"{m['java']}")
    setup = report.get("setup", {})
    if setup:
        out.append("Setup: " + ", ".join(f"{k}={v}" for k, v in setup.items()))
    out.append("")
    names, ratio_name = _names(report)
    if report.get("workloads"):
        out += _throughput_table(report["workloads"], names, ratio_name)
        out.append("")
        same = _same_load_table(report["workloads"], names, ratio_name)
        if same:
            out += ["At the same offered load (fixed rate, latency from the intended send time):", "", *same, ""]
        if rounds:
            out += [f"Every round (round i of zkpy ran just before round i of {names['apache']}; other CPU: "
                    "processes that are neither server nor load generator):", "",
                    *_rounds_table(report["workloads"], names), ""]
    if report.get("memory"):
        out += _memory_table(report["memory"])
        out.append("")
    if report.get("targets"):
        rows = [[t["name"], _f(t["ratio"]), t["goal"], {True: "yes", False: "**no**", None: "-"}[t["met"]]]
                for t in report["targets"]]
        out += _table(["target (zkpy / ZooKeeper)", "ratio", "goal", "met"], rows)
    return "\n".join(out).rstrip() + "\n"
