"""`zkpy bench` end to end, briefly: it runs, reports sane numbers, and leaves no process behind.

No timing thresholds: these check the tool, not the servers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zkpy.bench.aggregate import summarize
from zkpy.bench.cpu import machine_times
from zkpy.bench.histogram import LatencyHistogram
from zkpy.bench.report import render
from zkpy.bench.runner import RunResult
from zkpy.bench.servers import apache_available

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--duration", "0.3", "--warmup", "0.1", "--workers", "1", "--sessions", "2", "--depth", "4",
        "--znodes", "20"]
PERCENTILE_ORDER = ["p50", "p90", "p99", "p99.9", "max"]


def bench(*args: str, timeout_s: float = 120.0) -> dict:
    out = subprocess.run([sys.executable, "-m", "zkpy", "bench", *args, "--json", "-q"], cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout_s)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def assert_sane(summary: dict) -> None:
    assert summary["throughput"] > 0
    assert summary["errors"] == 0
    lat = [summary["latency_ms"][k] for k in PERCENTILE_ORDER]
    assert lat == sorted(lat) and lat[0] > 0
    for r in summary["rounds"]:
        assert r["ops"] > 0 and r["window_s"] > 0
        assert len(r["client_cpu_pct"]) == 1 and r["client_cpu_pct"][0] > 0


def test_histogram_merges_workers_and_orders_percentiles() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    for us in range(1, 1001):
        a.record(us)
        b.record(us * 10)
    merged = LatencyHistogram()
    merged.add_encoded(a.encode())
    merged.add_encoded(b.encode())
    s = merged.summary_ms()
    assert merged.count == 2000
    assert [s[k] for k in PERCENTILE_ORDER] == sorted(s[k] for k in PERCENTILE_ORDER)
    assert s["p50"] == pytest.approx(0.91, rel=0.01)  # 1,100 of the 2,000 values are <= 1 ms
    assert s["max"] == pytest.approx(10.0, rel=0.01)


def test_machine_busy_is_the_wall_clock_less_idle_time_not_the_busy_tick_counts() -> None:
    hz = os.sysconf("SC_CLK_TCK")
    # user, nice, system, idle, iowait, irq, softirq, steal: the busy fields say 18 s, idle 4 s.
    stat = f"cpu  {9 * hz} 0 {9 * hz} {3 * hz} {hz} 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n"
    at, busy = machine_times(stat, now_s=10.0, cpus=2)
    assert (at, busy) == (20.0, 16.0)


def test_bench_against_zkpy_reports_every_workload_and_memory() -> None:
    rep = bench(*TINY, "--rounds", "1", "--workload", "read,write,create-delete,mixed,watch,connect,memory",
                "--memory-znodes", "300")
    assert rep["command"].startswith("zkpy bench ")
    assert {"nproc", "cpu_model", "kernel", "python", "java"} <= set(rep["machine"])
    assert set(rep["workloads"]) == {"read", "write", "create-delete", "mixed", "watch", "connect"}
    for wl, d in rep["workloads"].items():
        assert set(d) == {"zkpy"}, wl
        assert_sane(d["zkpy"])
        assert "send_late_ms" not in d["zkpy"], wl  # a closed loop is never late
    assert rep["workloads"]["watch"]["zkpy"]["events_per_s"] > 0
    mem = rep["memory"]["zkpy"]
    assert mem["znodes"] == 300 and mem["node_count"] >= 300
    assert mem["rss_after"] > 0 and mem["empty_start_s"] > 0
    assert len(mem["recovery_log_s"]) == 1 and len(mem["recovery_snapshot_s"]) == 1
    assert "targets" not in rep


def test_vs_a_zkpy_baseline_measures_two_zkpy_servers_and_names_the_second_so() -> None:
    rep = bench(*TINY, "--vs", "--baseline", "zkpy", "--rounds", "1", "--workload", "write", "--same-load", "0.5")
    assert rep["setup"]["baseline"] == "zkpy"
    d = rep["workloads"]["write"]
    for slot in ("zkpy", "apache"):  # the second slot keeps its key
        assert_sane(d[slot])
    assert d["ratio"]["throughput"] > 0 and d["ratio"]["p99_same_load"] > 0
    assert "targets" not in rep  # they are stated against Apache ZooKeeper
    text = render(rep, rounds=True)
    assert "| zkpy baseline |" in text and "**zkpy/baseline**" in text
    assert "apache" not in text.lower() and "zkpy/ZK" not in text


def test_baseline_needs_vs_and_refuses_the_memory_run() -> None:
    for args, why in ((["--baseline", "zkpy"], "--vs"), (["--vs", "--baseline", "zkpy", "-w", "memory"], "heap")):
        out = subprocess.run([sys.executable, "-m", "zkpy", "bench", *args], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 2 and why in out.stderr


@pytest.mark.apache
@pytest.mark.skipif(not apache_available(), reason="Apache ZooKeeper 3.8 is not installed")
def test_bench_vs_apache_alternates_rounds_and_gives_ratios() -> None:
    rep = bench(*TINY, "--vs", "--rounds", "2", "--workload", "read", "--same-load", "0.5")
    d = rep["workloads"]["read"]
    for kind in ("zkpy", "apache"):
        assert_sane(d[kind])
        assert len(d[kind]["rounds"]) == 2
        assert d["same_load"][kind]["offered_rate"] == d["same_load"]["rate"] > 0
        late = d["same_load"][kind]["send_late_ms"]
        assert [late[k] for k in PERCENTILE_ORDER] == sorted(late[k] for k in PERCENTILE_ORDER)
    assert d["ratio"]["throughput"] > 0 and d["ratio"]["p99"] > 0 and d["ratio"]["p99_same_load"] > 0
    names = [t["name"] for t in rep["targets"]]
    assert names == ["read throughput", "read p99 at the same offered load"]
    assert all(t["met"] in (True, False) for t in rep["targets"])


def test_fixed_rate_reports_how_late_the_load_generator_sent() -> None:
    rep = bench(*TINY, "--rounds", "2", "--workload", "write", "--rate", "200")
    s = rep["workloads"]["write"]["zkpy"]
    assert_sane(s)
    assert s["offered_rate"] == 200
    for late in [s["send_late_ms"], *(r["send_late_ms"] for r in s["rounds"])]:
        assert [late[k] for k in PERCENTILE_ORDER] == sorted(late[k] for k in PERCENTILE_ORDER)
        assert late["p50"] > 0
        # Sending late is part of each request's latency (measured from when it was due).
        assert late["max"] <= s["latency_ms"]["max"]


def test_same_load_table_counts_the_rounds_that_fell_behind_the_offered_load() -> None:
    def fixed_rate_round(server: str, done_per_s: float) -> RunResult:
        hist = LatencyHistogram()
        hist.record(1000)
        return RunResult(server=server, workload="write", ops=int(done_per_s), errors=0, window_s=1.0,
                         throughput=done_per_s, latency_ms=hist.summary_ms(), offered_rate=1000.0, hist=hist)

    # zkpy answered 2% less than offered in its second round; Apache's 0.5% is measurement noise.
    sums = {"zkpy": summarize([fixed_rate_round("zkpy", 999.0), fixed_rate_round("zkpy", 980.0)]),
            "apache": summarize([fixed_rate_round("apache", 995.0), fixed_rate_round("apache", 1000.0)])}
    assert [sums[k].rounds_behind for k in ("zkpy", "apache")] == [1, 0]
    same_load = {"rate": 1000, **{k: s.to_json() for k, s in sums.items()}}
    ratios = {"throughput": 1.0, "p99": 1.0, "p99_same_load": 1.0}
    report = {"workloads": {"write": {**same_load, "same_load": same_load, "ratio": ratios}}}
    rows = [line for line in render(report).splitlines() if line.startswith("| write | 1,000 |")]
    assert [row.split(" | ")[4] for row in rows] == ["1 of 2", "0 of 2"]
    # Closed-loop rounds never fall behind: there is no offered load to fall behind.
    closed = RunResult(server="zkpy", workload="write", ops=5, errors=0, window_s=1.0, throughput=5.0, latency_ms={})
    assert not closed.fell_behind and "rounds_behind" not in summarize([closed]).to_json()


def _bench_with_notes(tmp_path: Path, *args: str, timeout_s: float = 300.0) -> tuple[dict, str]:
    """The JSON report, and the notes on stderr (which name the processes started)."""
    report = tmp_path / "report.json"
    out = subprocess.run([sys.executable, "-m", "zkpy", "bench", *args, "--output", str(report)], cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout_s)
    assert out.returncode == 0, out.stderr
    return json.loads(report.read_text()), out.stderr


def _assert_gone(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


ENSEMBLE_TINY = ["--ensemble", "--duration", "0.5", "--warmup", "0.2", "--workers", "1", "--sessions", "6",
                 "--depth", "4", "--znodes", "20", "--rounds", "1"]


def test_ensemble_bench_spreads_sessions_over_three_members_and_stops_them(tmp_path: Path) -> None:
    rep, notes = _bench_with_notes(tmp_path, *ENSEMBLE_TINY)
    assert rep["setup"]["mode"] == "ensembles of 3"
    assert set(rep["workloads"]) == {"read", "write"}  # the default with --ensemble
    for d in rep["workloads"].values():
        assert_sane(d["zkpy"])
        assert d["zkpy"]["rounds"][0]["server_cpu_pct"] is not None
    hosts = rep["setup"]["servers"].removeprefix("zkpy ").split(",")
    addresses = {h.rsplit(":", 1)[0] for h in hosts}
    assert len(hosts) == 3 and len(addresses) == 3 and all(a.startswith("127.0.0.") for a in addresses)
    m = re.search(r"started zkpy ensemble in [0-9.]+ s: (.*)", notes)
    assert m, notes
    roles = re.findall(r"(127\.0\.0\.\d+) pid (\d+) (\w+)", m.group(1))
    assert sorted(r[2] for r in roles) == ["follower", "follower", "leader"]
    _assert_gone([int(r[1]) for r in roles])


@pytest.mark.apache
@pytest.mark.skipif(not apache_available(), reason="Apache ZooKeeper 3.8 is not installed")
def test_ensemble_bench_vs_apache_gives_read_and_write_ratios(tmp_path: Path) -> None:
    rep, notes = _bench_with_notes(tmp_path, *ENSEMBLE_TINY, "--vs")
    for wl in ("read", "write"):
        d = rep["workloads"][wl]
        assert_sane(d["zkpy"])
        assert_sane(d["apache"])
        assert d["ratio"]["throughput"] > 0
    assert "targets" not in rep  # the targets are for standalone servers
    pids = [int(p) for p in re.findall(r"127\.0\.0\.\d+ pid (\d+)", notes)]
    assert len(pids) == 6
    _assert_gone(pids)


def test_ensemble_refuses_the_memory_run() -> None:
    out = subprocess.run([sys.executable, "-m", "zkpy", "bench", "--ensemble", "-w", "memory"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "standalone" in out.stderr


def test_sessions_take_the_members_in_turn() -> None:
    from zkpy.bench.worker import session_hosts

    hosts = "127.0.0.71:1,127.0.0.72:2,127.0.0.73:3"
    assert [session_hosts(hosts, i) for i in range(4)] == ["127.0.0.71:1", "127.0.0.72:2", "127.0.0.73:3",
                                                           "127.0.0.71:1"]
    assert session_hosts("127.0.0.1:5", 7) == "127.0.0.1:5"
    assert session_hosts("a:1,b:2/app", 1) == "b:2/app"


def test_interrupted_bench_stops_the_server_it_started() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "zkpy", "bench", *TINY, "--duration", "60", "-w", "read"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = None
        deadline = time.monotonic() + 60
        while pid is None and time.monotonic() < deadline:
            line = proc.stderr.readline()  # type: ignore[union-attr]
            m = re.search(r"server pid (\d+)", line)
            if m:
                pid = int(m.group(1))
            elif not line and proc.poll() is not None:
                break
        assert pid is not None, "the bench never said which server it started"
        time.sleep(1.0)  # into the run: workers started
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_profile_summary_counts_self_and_total_time(tmp_path: Path) -> None:
    from zkpy.bench.profile import summarize

    stacks = tmp_path / "stacks.txt"
    stacks.write_text(
        "main (zkpy/__main__.py:5);run (asyncio/runners.py:118);read (zkpy/server/requests.py:10) 3\n"
        "main (zkpy/__main__.py:5);run (asyncio/runners.py:118);read (zkpy/server/requests.py:12);"
        "get_node (zkpy/tree/datatree.py:130) 1\n")
    s = summarize(stacks)
    assert s["samples"] == 4
    assert s["self_pct"][0] == ["server/requests.py:read", 75.0]
    assert ["tree/datatree.py:get_node", 25.0] in s["self_pct"]
    assert s["total_pct"][0] == ["server/requests.py:read", 100.0]
    assert not any(name.startswith("zkpy/__main__.py") for name, _ in s["total_pct"])


G1_HEAP_INFO = """\
 garbage-first heap   total 24576K, used 4755K [0x0000000080000000, 0x0000000100000000)
  region size 1024K, 0 young (0K), 0 survivors (0K)
 Metaspace       used 6181K, committed 6336K, reserved 1114112K
  class space    used 701K, committed 768K, reserved 1048576K
"""
# What the JVM picks on one CPU (--pin): Serial, one line per generation.
SERIAL_HEAP_INFO = """\
 def new generation   total 116224K, used 10K [0x0000000080000000, 0x0000000087e10000, 0x00000000aaaa0000)
  eden space 103360K,   0% used [0x0000000080000000, 0x0000000080000000, 0x00000000864f0000)
  from space 12864K,   0% used [0x00000000864f0000, 0x00000000864f0000, 0x0000000087180000)
  to   space 12864K,   0% used [0x0000000087180000, 0x0000000087180000, 0x0000000087e10000)
 tenured generation   total 258048K, used 4438K [0x00000000aaaa0000, 0x00000000ba6a0000, 0x0000000100000000)
   the space 258048K,   1% used [0x00000000aaaa0000, 0x00000000aaef58a8, 0x00000000aaef5a00, 0x00000000ba6a0000)
 Metaspace       used 6188K, committed 6336K, reserved 1114112K
  class space    used 699K, committed 768K, reserved 1048576K
"""


def test_apache_heap_is_read_for_g1_and_for_every_generation_of_serial() -> None:
    from zkpy.bench.servers import heap_used_from_heap_info

    assert heap_used_from_heap_info(G1_HEAP_INFO) == 4755 * 1024
    assert heap_used_from_heap_info(SERIAL_HEAP_INFO) == (10 + 4438) * 1024
