"""The metrics registry and the Prometheus endpoint (ZooKeeper 3.8's PrometheusMetricsProvider).

Apache's Prometheus provider jar is not in Debian's package, so the names and types are checked
against ZooKeeper's catalog (the names mntr prints, compared with a running 3.8.0 in
test_fourlw.py and test_admin.py) and against what simpleclient 0.9.0 - the client ZooKeeper 3.8
uses - writes: counters without ``_total``, summaries with quantiles, ``_count`` and ``_sum``.
"""

from __future__ import annotations

import random
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support.servers import ServerProcess, free_port, make_server
from zkpy.server import metrics as m

PROMETHEUS = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"


def prometheus_cfg(port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"metricsProvider.className": PROMETHEUS, "metricsProvider.httpHost": "127.0.0.1",
            "metricsProvider.httpPort": str(port), **(extra or {})}


def scrape(port: int, path: str = "/metrics") -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def types(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def four_letter(srv: ServerProcess, cmd: str) -> dict[str, str]:
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(cmd.encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return dict(line.split("\t", 1) for line in b"".join(chunks).decode().splitlines())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    """A zkpy server with the Prometheus provider, after a workload whose client has left."""
    kazoo = pytest.importorskip("kazoo.client")
    port = free_port()
    srv = make_server("zkpy", tmp_path_factory.mktemp("prom"), extra_cfg=prometheus_cfg(port))
    srv.start(timeout_s=60)
    try:
        client = kazoo.KazooClient(hosts=srv.hosts)
        client.start(timeout=30)
        client.create("/app", b"hello")
        for i in range(10):
            client.create(f"/app/n{i}", b"x" * i)
            client.get(f"/app/n{i}")
        client.get_children("/app", watch=lambda event: None)
        client.stop()
        client.close()
        yield srv, port
    finally:
        srv.stop()


# ---------------------------------------------------------------------- the endpoint


def test_metrics_are_served_in_text_format_0_0_4(served: tuple[ServerProcess, int]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    status, content_type, text = scrape(served[1])
    assert status == 200
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    families = list(text_string_to_metric_families(text))  # Prometheus' own parser takes it
    assert len(families) > 150


def test_every_zookeeper_metric_is_exported_with_its_type(served: tuple[ServerProcess, int]) -> None:
    found = types(scrape(served[1])[2])
    expected = {**dict.fromkeys(m.GAUGES + m.QUOTA_GAUGE_SETS, "gauge"),
                **dict.fromkeys(m.COUNTERS + m.COUNTER_SETS, "counter"),
                **dict.fromkeys(m.BASIC_SUMMARIES + m.SUMMARIES + m.BASIC_SUMMARY_SETS + m.SUMMARY_SETS, "summary")}
    assert {name: found.get(name) for name in expected} == expected


def test_counters_keep_zookeepers_names(served: tuple[ServerProcess, int]) -> None:
    text = scrape(served[1])[2]
    values = samples(text)
    assert values["proposal_count"] == 0.0
    assert values["connection_request_count"] >= 1.0
    assert "proposal_count_total" not in text  # simpleclient 0.9.0 adds no suffix
    assert not re.search(r"^\w+_created ", text, re.M)  # ... and no _created samples


def test_summaries_have_quantiles_count_and_sum(served: tuple[ServerProcess, int]) -> None:
    values = samples(scrape(served[1])[2])
    for q in ("0.5", "0.9", "0.99"):
        assert f'readlatency{{quantile="{q}"}}' in values
    assert 'fsynctime{quantile="0.5"}' in values  # a BASIC summary: the median only
    assert 'fsynctime{quantile="0.9"}' not in values
    assert values['quorum_ack_latency{quantile="0.5"}'] != values['quorum_ack_latency{quantile="0.5"}']  # NaN
    assert values["quorum_ack_latency_count"] == 0.0


def test_the_workload_shows(served: tuple[ServerProcess, int]) -> None:
    srv, port = served
    values = samples(scrape(port)[2])
    mntr = four_letter(srv, "mntr")
    assert values["readlatency_count"] >= 11  # ten getData and a getChildren
    assert values["updatelatency_count"] >= 12  # createSession, eleven creates, closeSession
    assert values["fsynctime_count"] >= 1
    assert values["snapshottime_count"] >= 1  # the snapshot every start takes
    assert values["dbinittime_count"] == 1
    assert values["startup_txns_loaded_count"] == 1
    for gauge in ("znode_count", "watch_count", "global_sessions", "ephemerals_count", "approximate_data_size",
                  "outstanding_requests"):
        assert values[gauge] == float(mntr[f"zk_{gauge}"]), gauge
    assert values["num_alive_connections"] == float(mntr["zk_num_alive_connections"]) - 1  # mntr's own
    assert values["znode_count"] == 16  # /, /zookeeper, quota, config, /app and ten children; / twice


def test_mntr_and_prometheus_read_the_same_registry(served: tuple[ServerProcess, int]) -> None:
    srv, port = served
    values = samples(scrape(port)[2])
    mntr = four_letter(srv, "mntr")
    for name in ("readlatency", "updatelatency", "fsynctime", "snapshottime"):
        assert float(mntr[f"zk_cnt_{name}"]) == values[f"{name}_count"], name
        assert float(mntr[f"zk_sum_{name}"]) == values[f"{name}_sum"], name
    assert float(mntr["zk_bytes_received_count"]) == values["bytes_received_count"] + 4  # the word "mntr"


def test_a_name_filter_selects_families(served: tuple[ServerProcess, int]) -> None:
    text = scrape(served[1], "/metrics?name[]=znode_count&name[]=readlatency_count")[2]
    assert set(types(text)) == {"znode_count", "readlatency"}


def test_process_metrics_are_exported(served: tuple[ServerProcess, int]) -> None:
    found = types(scrape(served[1])[2])
    for name in ("process_cpu_seconds_total", "process_open_fds", "process_max_fds", "process_resident_memory_bytes",
                 "process_start_time_seconds"):
        assert name in found, name


def test_other_paths_are_not_found(served: tuple[ServerProcess, int]) -> None:
    assert scrape(served[1], "/")[0] == 404
    assert scrape(served[1], "/metricsx")[0] == 404


def test_admin_monitor_dumps_prometheus_samples_with_the_prometheus_provider(tmp_path: Path) -> None:
    import json

    port, admin = free_port(), free_port()
    srv = make_server("zkpy", tmp_path, extra_cfg=prometheus_cfg(port, {
        "admin.enableServer": "true", "admin.serverAddress": "127.0.0.1", "admin.serverPort": str(admin),
        "metricsProvider.exportJvmInfo": "false"}))
    srv.start(timeout_s=60)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/commands/monitor", timeout=10) as r:
            monitor = json.load(r)
        assert list(monitor)[:2] == ["version", "server_state"]
        assert 'readlatency{quantile="0.5"}' in monitor and "readlatency_count" in monitor
        assert monitor["znode_count"] == 5.0
        assert "process_open_fds" not in types(scrape(port)[2])  # exportJvmInfo=false
    finally:
        srv.stop()


def test_the_server_exits_1_when_the_metrics_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        srv = make_server("zkpy", tmp_path, extra_cfg=prometheus_cfg(blocker.getsockname()[1]))
        srv.write_cfg()
        proc = subprocess.run([sys.executable, "-m", "zkpy", "server", str(srv.cfg_path)], capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 1
    assert "Cannot boot MetricsProvider" in proc.stderr


# ---------------------------------------------------------------------- the registry


def test_the_catalog_is_mntrs() -> None:
    from zkpy.server import fourlw

    assert m.GAUGES == fourlw._GAUGES
    assert m.COUNTERS == fourlw._COUNTERS
    assert m.BASIC_SUMMARIES == fourlw._BASIC_SUMMARIES
    assert m.SUMMARIES == fourlw._SUMMARIES
    assert m.BASIC_SUMMARY_SETS == fourlw._BASIC_SUMMARY_SETS
    assert m.SUMMARY_SETS == fourlw._SUMMARY_SETS
    assert m.QUOTA_GAUGE_SETS == fourlw._QUOTA_GAUGE_SETS
    assert m.COUNTER_SETS == fourlw._COUNTER_SETS


def test_percentiles_follow_dropwizards_uniform_snapshot() -> None:
    s = m.Summary("x")
    for v in range(1, 11):
        s.add(v)
    assert s.percentile(0.5) == 5.5  # pos 5.5 between the 5th and 6th values
    assert s.percentile(0.95) == 10.0  # past the last position: the largest value
    assert s.percentile(0.0) == 1.0
    assert (s.count, s.total, s.min, s.max) == (10, 55, 1, 10)
    assert m.Summary("empty").percentile(0.99) == 0.0


def test_the_reservoir_stays_bounded_and_uniform() -> None:
    random.seed(7)
    s = m.Summary("x")
    n = 100_000
    for v in range(n):
        s.add(v)
    assert len(s._values) == m.RESERVOIR_SIZE
    assert (s.count, s.min, s.max) == (n, 0, n - 1)
    assert 0.45 * n < s.percentile(0.5) < 0.55 * n  # a uniform sample of 0..n-1
    assert s.percentile(0.99) > 0.97 * n


def test_reset_clears_counters_and_summaries() -> None:
    metrics = m.ServerMetrics(None)
    metrics.read_latency.add(5)
    metrics.count("response_bytes", 10)
    metrics.ack_latency.add("2", 3)
    metrics.reset()
    assert metrics.read_latency.count == 0 and metrics.read_latency.percentile(0.5) == 0.0
    assert metrics.counters["response_bytes"] == 0
    assert metrics.summary_sets["ack_latency"] == {}


def test_registered_gauges_are_read_on_demand() -> None:
    metrics = m.ServerMetrics(None)
    value = [3]
    metrics.register_gauge("quorum_size", lambda: value[0])
    value[0] = 5
    assert metrics.gauges == {"quorum_size": 5}
    text = m.PrometheusCollector(metrics, export_process_info=False).render().decode()
    assert "\nquorum_size 5.0\n" in text
    metrics.unregister_gauge("quorum_size")
    assert metrics.gauges == {}


def test_only_zookeepers_counters_lose_the_total_suffix() -> None:
    text = ("# HELP proposal_count_total proposal_count\n# TYPE proposal_count_total counter\nproposal_count 0.0\n"
            "# HELP process_cpu_seconds_total cpu\n# TYPE process_cpu_seconds_total counter\n")
    out = m._legacy_counters(text, {"proposal_count"})
    assert out.splitlines() == ["# HELP proposal_count proposal_count", "# TYPE proposal_count counter",
                                "proposal_count 0.0", "# HELP process_cpu_seconds_total cpu",
                                "# TYPE process_cpu_seconds_total counter"]


def _in_process_server() -> object:
    from zkpy.server.fourlw import FourLetterWords
    from zkpy.server.server import ZooKeeperServer

    cfg = SimpleNamespace(tick_time_ms=2000, min_session_timeout_ms=4000, max_session_timeout_ms=40000,
                          extended_types_enabled=False, super_digest=None, jute_max_buffer=0xFFFFF,
                          max_client_cnxns=60, four_letter_words=frozenset({"*"}), data_dir=None)
    server = ZooKeeperServer(cfg)
    server.running = True
    server.four_letter_words = FourLetterWords(cfg)
    return server


def test_monitor_values_are_mntrs_lines() -> None:
    server = _in_process_server()
    server.metrics.read_latency.add(4)
    server.metrics.update_latency.add(9)
    server.metrics.count("bytes_received_count", 123)
    text = server.four_letter_words.run(server, "mntr")
    mntr = [tuple(line[3:].split("\t", 1)) for line in text.splitlines()]
    monitor = [(k, str(v) if not isinstance(v, float) else v) for k, v in server.metrics.monitor_values()]
    assert [k for k, _ in monitor] == [k for k, _ in mntr]
    from zkpy.server.fourlw import java_double

    changing = {"uptime", "packets_sent", "open_file_descriptor_count"}
    rendered = {k: java_double(v) if isinstance(v, float) else v for k, v in monitor if k not in changing}
    assert rendered == {k: v for k, v in mntr if k not in changing}


def test_folding_a_buffer_equals_adding_one_by_one() -> None:
    random.seed(11)
    data = [random.randrange(1000) for _ in range(20_000)]
    one, batched = m.Summary("one"), m.Summary("batched")
    for v in data:
        one.add(v)
    for i in range(0, len(data), 333):
        batched.pending.extend(data[i:i + 333])
        batched.fold()
    assert (batched.count, batched.total, batched.min, batched.max) == (one.count, one.total, one.min, one.max)
    assert len(batched._values) == m.RESERVOIR_SIZE
    assert abs(batched.percentile(0.5) - one.percentile(0.5)) < 50  # two uniform samples of one stream


def test_buffered_latencies_are_folded_before_anything_reads_them() -> None:
    metrics = m.ServerMetrics(None)
    metrics.record_read_latency(7)
    metrics.tick()  # below FOLD_AT: stays buffered
    assert metrics.read_latency.count == 0
    assert metrics.summaries["readlatency"].count == 1  # a reader folds first
    for _ in range(m.FOLD_AT):
        metrics.record_update_latency(1)
    metrics.tick()
    assert metrics.update_latency.count == m.FOLD_AT and not metrics.update_latency.pending
