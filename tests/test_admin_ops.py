"""Operating a zkpy server: `--check`, clean shutdown on SIGTERM, level-controlled and JSON logging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.servers import free_port, make_server


def zkpy_server(*args: str, env: dict[str, str] | None = None, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zkpy", "server", *args], capture_output=True, text=True,
                          timeout=timeout_s, env={**os.environ, **(env or {})})


def write_cfg(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------------- --check


def test_check_accepts_a_valid_config_and_exits(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path / "zoo.cfg", f"tickTime=2000\ndataDir={tmp_path}/data\nclientPort={free_port()}\n")
    out = zkpy_server("--check", str(cfg))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{cfg}: OK"


def test_check_names_the_bad_key_and_line(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path / "zoo.cfg", f"dataDir={tmp_path}/data\ntickTime=often\n")
    out = zkpy_server("--check", str(cfg))
    assert out.returncode == 2
    assert "invalid configuration" in out.stderr
    assert "tickTime" in out.stderr and "2" in out.stderr  # the key and its line


def test_check_warns_about_unknown_keys_but_passes(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path / "zoo.cfg", f"dataDir={tmp_path}/data\nclientPort={free_port()}\nnoSuchSetting=1\n")
    out = zkpy_server("--check", str(cfg))
    assert out.returncode == 0
    assert "noSuchSetting" in out.stderr


def test_check_reports_a_missing_file(tmp_path: Path) -> None:
    out = zkpy_server("--check", str(tmp_path / "absent.cfg"))
    assert out.returncode == 2
    assert "cannot read the configuration file" in out.stderr


def test_check_does_not_start_a_server(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_cfg(tmp_path / "zoo.cfg", f"dataDir={tmp_path}/data\nclientPort={port}\nadmin.enableServer=false\n")
    started = time.monotonic()
    out = zkpy_server("--check", str(cfg), timeout_s=30)
    assert out.returncode == 0
    assert time.monotonic() - started < 30  # it returned: nothing was left serving
    assert not (tmp_path / "data" / "version-2").exists()


# ---------------------------------------------------------------------- SIGTERM


def test_sigterm_finishes_pending_writes_and_exits_0(tmp_path: Path) -> None:
    """Writes in flight when SIGTERM arrives: every acknowledged one is on disk after a restart,
    the log ends cleanly (no torn record), and the process says it stopped."""
    kazoo = pytest.importorskip("kazoo.client")
    srv = make_server("zkpy", tmp_path)
    srv.start(timeout_s=60)
    acked: list[str] = []
    lock = threading.Lock()
    client = kazoo.KazooClient(hosts=srv.hosts, connection_retry={"max_tries": 0})
    client.start(timeout=30)
    stop_writing = threading.Event()

    def writer() -> None:
        i = 0
        while not stop_writing.is_set() and i < 100_000:  # bounded
            batch = [(f"/w{i + k}", client.create_async(f"/w{i + k}", b"v")) for k in range(50)]
            i += 50
            for path, result in batch:
                try:
                    result.get(timeout=10)
                except Exception:
                    return  # the server went away: later writes are not acknowledged
                with lock:
                    acked.append(path)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < 500 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    try:
        assert srv.proc.wait(30) == 0
    finally:
        stop_writing.set()
        thread.join(30)
        client.stop()
        client.close()
    srv.proc = None
    log = srv.log_tail(20)
    assert "shutting down" in log and "stopped" in log, log
    with lock:
        written = list(acked)
    assert len(written) >= 500

    srv.start(timeout_s=60)
    try:
        assert "torn record" not in srv.log_tail(40)
        check = kazoo.KazooClient(hosts=srv.hosts)
        check.start(timeout=30)
        try:
            present = set(check.get_children("/"))
        finally:
            check.stop()
            check.close()
        missing = [p for p in written if p[1:] not in present]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    finally:
        srv.stop()


# ---------------------------------------------------------------------- logging


def _run_briefly(tmp_path: Path, env: dict[str, str], *args: str) -> str:
    """Start a server, wait until it serves, SIGTERM it; its stderr."""
    port = free_port()
    cfg = write_cfg(tmp_path / "zoo.cfg",
                    f"dataDir={tmp_path}/data\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\n")
    log_path = tmp_path / "stderr.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "zkpy", "server", *args, str(cfg)], stdout=log, stderr=log,
                                env={**os.environ, **env})
    try:
        srv = make_server("zkpy", tmp_path / "unused", port=port)
        srv.proc = proc
        srv.log_path = log_path
        srv.wait_serving(60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return log_path.read_text()


def test_json_logging_writes_one_object_a_line(tmp_path: Path) -> None:
    text = _run_briefly(tmp_path, {"ZKPY_LOG_FORMAT": "json"})
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert entries
    assert all({"ts", "level", "logger", "msg"} <= e.keys() for e in entries)
    assert any(e["msg"].startswith("zkpy serving on") and e["level"] == "INFO" for e in entries)
    assert entries[-1]["msg"] == "stopped"


def test_the_log_level_hides_lower_levels(tmp_path: Path) -> None:
    text = _run_briefly(tmp_path, {}, "--log-level", "WARNING")
    assert "[INFO]" not in text
    assert "zkpy serving on" not in text


def test_zkpy_log_level_sets_the_default_level(tmp_path: Path) -> None:
    text = _run_briefly(tmp_path, {"ZKPY_LOG_LEVEL": "WARNING"})
    assert "[INFO]" not in text


def test_the_log_level_flag_wins_over_the_environment(tmp_path: Path) -> None:
    text = _run_briefly(tmp_path, {"ZKPY_LOG_LEVEL": "ERROR"}, "--log-level", "INFO")
    assert "[INFO] zkpy.server: zkpy serving on" in text


# ---------------------------------------------------------------------- docs/operations.md's examples

OPERATIONS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def _blocks(language: str) -> list[str]:
    import re

    return re.findall(rf"```{language}\n(.*?)```", OPERATIONS.read_text(), re.S)


def _local(cfg_text: str, tmp_path: Path) -> str:
    """A documented zoo.cfg with its directories and ports moved somewhere harmless."""
    import re

    text = re.sub(r"^dataDir=.*$", f"dataDir={tmp_path}/data", cfg_text, flags=re.M)
    return re.sub(r"^clientPort=.*$", f"clientPort={free_port()}", text, flags=re.M)


def test_the_documented_standalone_config_passes_check(tmp_path: Path) -> None:
    standalone, _ensemble = [b for b in _blocks("properties") if "clientPort" in b]
    cfg = write_cfg(tmp_path / "zoo.cfg", _local(standalone, tmp_path))
    out = zkpy_server("--check", str(cfg))
    assert out.returncode == 0, out.stderr


def test_the_documented_prometheus_settings_pass_check(tmp_path: Path) -> None:
    [prometheus] = [b for b in _blocks("properties") if "metricsProvider.httpPort" in b]
    cfg = write_cfg(tmp_path / "zoo.cfg", f"dataDir={tmp_path}/data\nclientPort={free_port()}\n{prometheus}")
    out = zkpy_server("--check", str(cfg))
    assert out.returncode == 0, out.stderr
    from zkpy.server.config import load_config

    loaded = load_config(cfg, env={})
    assert loaded.metrics_provider_class.endswith("PrometheusMetricsProvider")
    assert (loaded.metrics_http_host, loaded.metrics_http_port, loaded.metrics_export_jvm_info) == \
        ("0.0.0.0", 7000, True)


def test_the_documented_ensemble_config_is_a_valid_three_member_ensemble(tmp_path: Path) -> None:
    from zkpy.server.config import load_config

    [ensemble] = [b for b in _blocks("properties") if "server.3=" in b]
    cfg = write_cfg(tmp_path / "zoo.cfg", _local(ensemble, tmp_path))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myid").write_text("1\n")
    out = zkpy_server("--check", str(cfg))
    assert out.returncode == 0, out.stderr
    loaded = load_config(cfg, env={})
    assert loaded.is_quorum and sorted(loaded.servers) == [1, 2, 3] and loaded.my_id == 1


def test_the_documented_systemd_unit_stops_with_sigterm_and_checks_first() -> None:
    import configparser

    [unit] = _blocks("ini")
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(unit)
    service = parser["Service"]
    assert service["ExecStartPre"].endswith("zkpy server --check /etc/zkpy/zoo.cfg")
    assert service["ExecStart"].endswith("zkpy server /etc/zkpy/zoo.cfg")
    assert service["KillSignal"] == "SIGTERM"
    assert service["RestartPreventExitStatus"].split() == ["2", "3"]
