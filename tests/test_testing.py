"""zkpy.testing: throw-away servers, their fixtures, restarts, session expiry, teardown."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from zkpy.testing import EnsembleUnavailable, ServerStartError, ZkEnsemble, ZkServer, zk_server
from zkpy.testing.server import free_ports

_PLUGIN = any(ep.name == "zkpy" for ep in metadata.entry_points(group="pytest11"))
needs_plugin = pytest.mark.skipif(not _PLUGIN, reason="zkpy's pytest11 entry point is not installed "
                                                      "(pip install -e . registers it)")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


# ---------------------------------------------------------------------- the fixtures, used here


@needs_plugin
def test_zk_server_fixture_serves(zk_server: ZkServer) -> None:
    assert "Mode: standalone" in zk_server.four_letter_word("srvr")


@needs_plugin
def test_zk_client_fixture_is_connected_to_zk_server(zk_server: ZkServer, zk_client) -> None:
    zk_client.create("/fixture", b"x")
    assert zk_client.get("/fixture")[0] == b"x"
    assert zk_client.connected
    assert f"sid=0x{zk_client.client_id[0]:x}" in zk_server.four_letter_word("cons")


@needs_plugin
@pytest.mark.zkpy_server(tick_time_ms=100, config={"maxClientCnxns": "7"})
def test_the_marker_configures_the_server(zk_server: ZkServer) -> None:
    conf = dict(line.split("=", 1) for line in zk_server.four_letter_word("conf").splitlines() if "=" in line)
    assert conf["tickTime"] == "100"
    assert conf["maxClientCnxns"] == "7"


@needs_plugin
def test_the_factory_starts_independent_servers(zk_server_factory) -> None:
    a, b = zk_server_factory(), zk_server_factory()
    assert a.port != b.port and a.data_dir != b.data_dir
    assert a.is_running and b.is_running


@needs_plugin
@pytest.mark.zkpy_ensemble(size=3, tick_time_ms=200)
def test_the_ensemble_fixture_replicates_writes(zk_ensemble: ZkEnsemble) -> None:
    kazoo = pytest.importorskip("kazoo.client")
    assert zk_ensemble.wait_leader() in zk_ensemble.members
    writer = kazoo.KazooClient(hosts=zk_ensemble.hosts)
    writer.start(timeout=30)
    try:
        writer.create("/replicated", b"v")
    finally:
        writer.stop()
        writer.close()
    for member in zk_ensemble.members:
        reader = kazoo.KazooClient(hosts=member.hosts)
        reader.start(timeout=30)
        try:
            reader.sync("/replicated")
            assert reader.get("/replicated")[0] == b"v", member
        finally:
            reader.stop()
            reader.close()


# ---------------------------------------------------------------------- ZkServer


def test_restart_keeps_the_port_and_the_data() -> None:
    kazoo = pytest.importorskip("kazoo.client")
    with zk_server() as srv:
        port = srv.port
        client = kazoo.KazooClient(hosts=srv.hosts)
        client.start(timeout=15)
        try:
            client.create("/kept", b"1")
            srv.restart()
            assert srv.port == port
            assert client.retry(client.get, "/kept")[0] == b"1"
        finally:
            client.stop()
            client.close()


def test_kill_then_start_recovers_acknowledged_writes() -> None:
    kazoo = pytest.importorskip("kazoo.client")
    with zk_server() as srv:
        client = kazoo.KazooClient(hosts=srv.hosts)
        client.start(timeout=15)
        try:
            for i in range(20):
                client.create(f"/n{i}", b"v")
            assert srv.kill() == -9
            assert not srv.is_running
            srv.start()
            expected = sorted(["zookeeper", *[f"n{i}" for i in range(20)]])
            assert sorted(client.retry(client.get_children, "/")) == expected
        finally:
            client.stop()
            client.close()


def test_stop_is_a_clean_sigterm_shutdown() -> None:
    with zk_server() as srv:
        assert srv.stop() == 0
        assert "stopped" in srv.log_tail()
        assert srv.stop() is None  # stopping a stopped server is a no-op


def test_expire_session_ends_a_kazoo_session() -> None:
    kazoo = pytest.importorskip("kazoo.client")
    from zkpy.testing.kazoo import expire_kazoo_session

    with zk_server() as srv:
        client = kazoo.KazooClient(hosts=srv.hosts)
        states: list[str] = []
        client.add_listener(states.append)
        client.start(timeout=15)
        try:
            client.create("/eph", ephemeral=True)
            old = client.client_id[0]
            expire_kazoo_session(srv, client)
            assert client.client_id[0] != old
            assert "LOST" in states
            assert client.retry(client.exists, "/eph") is None
        finally:
            client.stop()
            client.close()


def test_expire_session_of_an_unknown_session_says_false() -> None:
    with zk_server() as srv:
        assert srv.expire_session(0x1234, bytes(16)) is False


def test_the_context_manager_removes_its_temporary_directory() -> None:
    with zk_server() as srv:
        base = srv.base_dir
        assert (base / "data" / "version-2").is_dir()
    assert not base.exists()
    assert not srv.is_running


def test_a_given_base_dir_is_left_in_place(tmp_path: Path) -> None:
    with zk_server(base_dir=tmp_path / "srv") as srv:
        pass
    assert (tmp_path / "srv" / "server.log").exists()
    assert not srv.is_running


def test_a_port_taken_between_choosing_and_binding_is_chosen_again(tmp_path: Path) -> None:
    srv = ZkServer(base_dir=tmp_path)
    taken = srv.port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken))
        blocker.listen(1)
        try:
            srv.start()
            assert srv.port != taken
            assert "Mode:" in srv.four_letter_word("srvr")
        finally:
            srv.close()


def test_chosen_ports_differ_and_stay_out_of_the_range_outgoing_connections_take() -> None:
    # An ensemble's members connect to peers that are not listening yet: each attempt takes a
    # source port from the kernel's ephemeral range, which must not hold a port chosen for a peer.
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = free_ports("127.0.0.1", 12)
    assert len(set(ports)) == 12
    assert all(not low <= p <= high for p in ports), (low, high, ports)
    for p in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_a_fixed_port_that_is_taken_fails_with_the_servers_log(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        srv = ZkServer(base_dir=tmp_path, port=blocker.getsockname()[1], startup_timeout_s=30)
        try:
            with pytest.raises(ServerStartError, match="exited with"):
                srv.start()
        finally:
            srv.close()


def test_admin_and_metrics_ports_turn_the_endpoints_on(tmp_path: Path) -> None:
    import json
    import urllib.request

    with zk_server(base_dir=tmp_path, admin_port=0, metrics_port=0) as srv:
        with urllib.request.urlopen(srv.admin_url("ruok"), timeout=10) as r:
            assert json.load(r) == {"command": "ruok", "error": None}
        with urllib.request.urlopen(srv.metrics_url, timeout=10) as r:
            assert b"\nznode_count " in r.read()


def test_an_ensemble_elects_a_new_leader_when_its_leader_stops(tmp_path: Path) -> None:
    with ZkEnsemble(3, base_dir=tmp_path, tick_time_ms=200) as ensemble:
        old = ensemble.wait_leader()
        old_id = ensemble.members.index(old) + 1
        assert ensemble.stop_member(old_id) == 0
        new = ensemble.wait_leader()
        assert new is not old
        ensemble.start_member(old_id)
        assert "Mode: follower" in old.four_letter_word("srvr")


def test_an_ensemble_says_so_when_the_server_cannot_run_one(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # A zkpy without quorum mode refuses the configuration with this message and exit status 2.
    refuse = "import sys; print('zkpy: quorum mode is not available yet', file=sys.stderr); sys.exit(2)"
    monkeypatch.setattr(ZkServer, "command", lambda self: [sys.executable, "-c", refuse])
    ensemble = ZkEnsemble(3, base_dir=tmp_path)
    try:
        with pytest.raises(EnsembleUnavailable) as info:
            ensemble.start()
        assert isinstance(info.value, NotImplementedError)
        assert all(not m.is_running for m in ensemble.members)
    finally:
        ensemble.close()


def test_a_failing_test_still_stops_its_server(tmp_path: Path) -> None:
    """Run a failing test module that uses the fixture; its server process must be gone after."""
    pid_file = tmp_path / "pid"
    module = tmp_path / "test_fails.py"
    module.write_text(textwrap.dedent(f"""
        def test_fails(zk_server):
            open({str(pid_file)!r}, "w").write(str(zk_server.proc.pid))
            assert False, "this test fails on purpose"
    """))
    plugin = [] if _PLUGIN else ["-p", "zkpy.testing.pytest_plugin"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull,
                           "--rootdir", str(tmp_path), *plugin, str(module)],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed" in proc.stdout
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
