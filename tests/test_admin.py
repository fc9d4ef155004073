"""The AdminServer over real HTTP, against a running `zkpy server` and Apache ZooKeeper 3.8's own.

Both servers get the same workload (one kazoo session: nodes, an ephemeral, data/child/exists
watches); then every command is asked of both and the answers compared - the command set, the
JSON field names at every level, and the values that do not depend on time, ports or ids.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import JAVA_DIR, ServerProcess, apache_available, apache_classpath, free_port, make_server

kazoo_client = pytest.importorskip("kazoo.client")

_ADMIN_JARS = ["servlet-api.jar", "jetty9-server.jar", "jetty9-servlet.jar", "jetty9-http.jar", "jetty9-io.jar",
               "jetty9-util.jar", "jetty9-security.jar", "jackson-core.jar", "jackson-databind.jar",
               "jackson-annotations.jar", "metrics-core.jar"]


def apache_admin_available() -> bool:
    return apache_available() and all((JAVA_DIR / j).exists() for j in _ADMIN_JARS)


class ApacheWithAdmin(ServerProcess):
    """Apache ZooKeeper 3.8 with its Jetty AdminServer on (tests/support starts it with it off)."""

    def command(self) -> list[str]:
        cp = ":".join([apache_classpath(), *(str(JAVA_DIR / j) for j in _ADMIN_JARS)])
        return ["java", "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", cp,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(self.cfg_path)]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def http(url: str, method: str = "GET", timeout_s: float = 10.0) -> Answer:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as r:
            return Answer(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Answer(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def admin_cfg(port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1", "admin.serverPort": str(port),
            **(extra or {})}


@dataclass
class Side:
    server: ServerProcess
    admin_port: int
    client: Any = None
    session_id: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.admin_port}{path}"

    def get(self, command: str, method: str = "GET") -> Answer:
        return http(self.url(f"/commands/{command}"), method)

    def cmd(self, command: str) -> dict[str, Any]:
        answer = self.get(command)
        assert answer.status == 200, (command, answer)
        return answer.json


@dataclass
class Pair:
    sides: dict[str, Side] = field(default_factory=dict)

    def cmd(self, command: str) -> dict[str, dict[str, Any]]:
        return {kind: side.cmd(command) for kind, side in self.sides.items()}


def _workload(side: Side) -> None:
    client = kazoo_client.KazooClient(hosts=side.server.hosts)
    client.start(timeout=30)
    client.create("/app", b"hello")
    client.create("/app/x", b"1")
    client.create("/eph", b"", ephemeral=True)
    client.get("/app", watch=lambda event: None)
    client.get_children("/", watch=lambda event: None)
    client.exists("/nope", watch=lambda event: None)
    side.client = client
    side.session_id = client.client_id[0]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if not apache_admin_available():
        pytest.skip("Apache ZooKeeper 3.8 with Jetty/Jackson jars is not installed (Debian's zookeeper package)")
    p = Pair()
    try:
        for kind in ("apache", "zkpy"):
            port = free_port()
            srv = make_server(kind, tmp_path_factory.mktemp(kind), extra_cfg=admin_cfg(port))
            if kind == "apache":
                srv = ApacheWithAdmin(**{f: getattr(srv, f) for f in ("kind", "host", "port", "data_dir", "cfg_path",
                                                                      "extra_cfg", "env")})
            srv.start(timeout_s=60)
            side = Side(srv, port)
            p.sides[kind] = side
            _workload(side)
        yield p
    finally:
        for side in p.sides.values():
            if side.client is not None:
                side.client.stop()
                side.client.close()
            side.server.stop()


def shape(value: Any) -> Any:
    """The field names of a JSON value at every level (lists: the union of their items' shapes)."""
    if isinstance(value, dict):
        if value and all(re.fullmatch(r"-?\d+|/.*", k) for k in value):
            # A map keyed by ids, times or paths: its keys are data, not field names.
            return {"<key>": shape(next(iter(value.values())))}
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        shapes = [shape(v) for v in value if isinstance(v, dict | list)]
        return [shapes[0]] if shapes else []
    return type(value).__name__ if not isinstance(value, int | float) or isinstance(value, bool) else "number"


def links(body: bytes) -> list[str]:
    return re.findall(r'<a href="/commands/(\w+)">(\w+)</a>', body.decode())


# ---------------------------------------------------------------------- the command set


@pytest.mark.apache
def test_the_command_list_is_apaches(pair: Pair) -> None:
    pages = {kind: http(side.url("/commands")) for kind, side in pair.sides.items()}
    assert all(page.status == 200 for page in pages.values())
    assert links(pages["zkpy"].body) == links(pages["apache"].body)
    assert len(links(pages["zkpy"].body)) == 26
    assert pages["zkpy"].body == pages["apache"].body  # the same HTML, line for line


ALIASES = {"conf": "configuration", "config": "configuration", "cons": "connections", "crst": "connection_stat_reset",
           "env": "environment", "envi": "environment", "gtmk": "get_trace_mask", "icfg": "initial_configuration",
           "isro": "is_read_only", "lsnp": "last_snapshot", "lead": "leader", "mntr": "monitor",
           "orst": "observer_connection_stat_reset", "obsr": "observers", "srvr": "server_stats", "stat": "stats",
           "srst": "stat_reset", "sysp": "system_properties", "wchc": "watches", "wchp": "watches_by_path",
           "wchs": "watch_summary"}


@pytest.mark.apache
@pytest.mark.parametrize("alias", sorted(set(ALIASES) - {"crst", "srst"}))  # resets: see test_resets_*
def test_aliases_answer_as_the_primary_name(pair: Pair, alias: str) -> None:
    out = pair.cmd(alias)
    assert out["apache"]["command"] == out["zkpy"]["command"] == ALIASES[alias]


# ---------------------------------------------------------------------- field names, command by command

SAME_SHAPE = ["configuration", "connections", "dirs", "dump", "environment", "get_trace_mask", "hash",
              "initial_configuration", "is_read_only", "last_snapshot", "leader", "observers", "ruok",
              "server_stats", "stats", "voting_view", "watches", "watches_by_path", "watch_summary", "zabstate"]


@pytest.mark.apache
@pytest.mark.parametrize("command", SAME_SHAPE)
def test_fields_are_apaches(pair: Pair, command: str) -> None:
    out = pair.cmd(command)
    assert shape(out["zkpy"]) == shape(out["apache"])
    assert list(out["zkpy"]) == list(out["apache"])  # and in Apache's order


@pytest.mark.apache
def test_monitor_has_apaches_keys(pair: Pair) -> None:
    out = pair.cmd("monitor")
    # Per-namespace read/write summaries exist only where a server records them (not zkpy yet).
    per_ns = re.compile(r"(avg|min|max|cnt|sum)_\w+_(read|write)_per_namespace")
    assert list(out["zkpy"]) == [k for k in out["apache"] if not per_ns.fullmatch(k)]


@pytest.mark.apache
def test_monitor_counts_equal_apaches(pair: Pair) -> None:
    out = pair.cmd("monitor")
    for key in ("server_state", "znode_count", "watch_count", "ephemerals_count", "approximate_data_size",
                "global_sessions", "local_sessions", "num_alive_connections", "outstanding_requests",
                "connection_rejected"):
        assert out["zkpy"][key] == out["apache"][key], key
    # createSession and the three creates; the reads include kazoo's pings, which come when they come.
    assert out["zkpy"]["cnt_updatelatency"] == out["apache"]["cnt_updatelatency"] == 4
    assert out["zkpy"]["cnt_readlatency"] >= 3 and out["apache"]["cnt_readlatency"] >= 3


@pytest.mark.apache
def test_system_properties_list_the_same_zookeeper_properties(pair: Pair) -> None:
    out = pair.cmd("system_properties")
    zk = {k: v for k, v in out["zkpy"].items() if k.startswith("zookeeper.")}
    ap = {k: v for k, v in out["apache"].items() if k.startswith("zookeeper.")}
    assert zk.keys() == ap.keys()
    ports = {pair.sides["zkpy"].admin_port: "P", pair.sides["apache"].admin_port: "P"}
    assert {k: ports.get(int(v), v) if v.isdigit() else v for k, v in zk.items()} == \
        {k: ports.get(int(v), v) if v.isdigit() else v for k, v in ap.items()}
    assert list(out["zkpy"])[-2:] == ["command", "error"]
    keys = [k for k in out["zkpy"] if k not in ("command", "error")]
    assert keys == sorted(keys)


# ---------------------------------------------------------------------- values that must agree


@pytest.mark.apache
def test_configuration_values_agree(pair: Pair) -> None:
    out = pair.cmd("configuration")
    for key in ("tick_time", "max_client_cnxns", "min_session_timeout", "max_session_timeout", "server_id",
                "client_port_listen_backlog"):
        assert out["zkpy"][key] == out["apache"][key], key
    zkpy = pair.sides["zkpy"].server
    assert out["zkpy"]["client_port"] == zkpy.port
    assert out["zkpy"]["data_dir"] == str(zkpy.data_dir / "version-2")


@pytest.mark.apache
def test_watch_views_agree(pair: Pair) -> None:
    for command, key in (("watches", "session_id_to_watched_paths"), ("watches_by_path", "path_to_session_ids")):
        out = pair.cmd(command)
        sessions = {kind: str(side.session_id) for kind, side in pair.sides.items()}
        normalized = {kind: json.dumps(out[kind][key], sort_keys=True).replace(sessions[kind], "SID")
                      for kind in out}
        assert normalized["zkpy"] == normalized["apache"], command
    summary = pair.cmd("watch_summary")
    assert summary["zkpy"] == summary["apache"]


@pytest.mark.apache
def test_dump_lists_the_session_and_its_ephemeral(pair: Pair) -> None:
    out = pair.cmd("dump")
    for kind, side in pair.sides.items():
        assert out[kind]["session_id_to_ephemeral_paths"] == {str(side.session_id): ["/eph"]}
        # Apache's ExpiryQueue keeps a bucket a session left until its time passes: skip empty ones.
        buckets = out[kind]["expiry_time_to_session_ids"]
        assert [ids for ids in buckets.values() if ids] == [[side.session_id]]


@pytest.mark.apache
def test_connection_views_describe_the_client(pair: Pair) -> None:
    out = pair.cmd("connections")
    for kind, side in pair.sides.items():
        [conn] = out[kind]["connections"]
        assert conn["session_id"] == side.session_id
        assert conn["session_timeout"] == 10000
        assert re.fullmatch(r"127\.0\.0\.1:\d+", conn["remote_socket_address"])
        assert conn["last_operation"] in ("EXIS", "PING")  # the last request, or a ping since
        assert out[kind]["secure_connections"] == []


@pytest.mark.apache
def test_server_stats_agree(pair: Pair) -> None:
    out = pair.cmd("server_stats")
    for kind in out:
        stats = out[kind]["server_stats"]
        assert stats["server_state"] == "standalone"
        assert stats["num_alive_client_connections"] == 1
        assert stats["provider_null"] is False
    assert out["zkpy"]["node_count"] == out["apache"]["node_count"]
    assert out["zkpy"]["server_stats"]["last_processed_zxid"] == out["apache"]["server_stats"]["last_processed_zxid"]
    assert out["zkpy"]["version"].startswith("3.8.0-zkpy-")


@pytest.mark.apache
@pytest.mark.parametrize("command", ["ruok", "is_read_only", "voting_view", "zabstate", "leader", "observers",
                                     "hash", "get_trace_mask", "observer_connection_stat_reset", "nosuch",
                                     "set_trace_mask", "set_trace_mask?traceMask=abc",
                                     "set_trace_mask?traceMask=99999999999999999999", "ruok/extra", "RUOK"])
def test_answers_are_apaches_byte_for_byte(pair: Pair, command: str) -> None:
    out = {kind: side.get(command) for kind, side in pair.sides.items()}
    assert out["zkpy"].status == out["apache"].status == 200
    assert out["zkpy"].body == out["apache"].body
    assert out["zkpy"].headers["content-type"] == out["apache"].headers["content-type"] == "application/json"


@pytest.mark.apache
def test_initial_configuration_is_the_config_file(pair: Pair) -> None:
    out = pair.cmd("initial_configuration")
    for kind, side in pair.sides.items():
        assert out[kind]["initial_configuration"] == side.server.cfg_path.read_text()


@pytest.mark.apache
def test_last_snapshot_names_a_snapshot_file(pair: Pair) -> None:
    out = pair.cmd("last_snapshot")
    for kind, side in pair.sides.items():
        zxid = out[kind]["zxid"]
        assert (side.server.data_dir / "version-2" / f"snapshot.{zxid}").exists(), (kind, zxid)
        assert out[kind]["timestamp"] > 1_600_000_000


# ---------------------------------------------------------------------- HTTP-level answers


@pytest.mark.apache
@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("GET", "/other"), ("GET", "/commandsx"),
                                              ("POST", "/commands/ruok"), ("PUT", "/commands/ruok"),
                                              ("DELETE", "/commands/ruok"), ("TRACE", "/commands/ruok"),
                                              ("OPTIONS", "/commands/ruok"), ("HEAD", "/commands/ruok"),
                                              ("GET", "/commands/"), ("GET", "/commands/%72uok")])
def test_http_statuses_are_apaches(pair: Pair, method: str, path: str) -> None:
    out = {kind: http(side.url(path), method) for kind, side in pair.sides.items()}
    assert out["zkpy"].status == out["apache"].status, out
    if method == "OPTIONS":
        assert out["zkpy"].headers["allow"] == out["apache"].headers["allow"]
    if out["zkpy"].status >= 400 and out["zkpy"].body:
        assert "error" in out["zkpy"].json  # JSON where Jetty prints an HTML page
    if method == "HEAD":
        assert out["zkpy"].body == b""


@pytest.mark.apache
def test_set_trace_mask_changes_what_gtmk_reports(pair: Pair) -> None:
    for side in pair.sides.values():
        assert side.cmd("set_trace_mask?traceMask=4")["tracemask"] == 4
        assert side.cmd("get_trace_mask")["tracemask"] == 4
        assert _four_letter(side.server, "gtmk") == "4"  # ZooTrace is one global: the 4lw sees it
        assert side.cmd("set_trace_mask?traceMask=306")["tracemask"] == 306


@pytest.mark.apache
def test_resets_answer_as_apache(pair: Pair) -> None:
    for command in ("connection_stat_reset", "stat_reset"):
        out = {kind: side.get(command) for kind, side in pair.sides.items()}
        assert out["zkpy"].body == out["apache"].body, command
    stats = pair.cmd("server_stats")
    for kind in stats:  # a ping may have come in since
        assert stats[kind]["server_stats"]["packets_received"] <= 2, kind
    assert pair.cmd("monitor")["zkpy"]["cnt_updatelatency"] == 0


def _four_letter(srv: ServerProcess, cmd: str) -> str:
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(cmd.encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


# ---------------------------------------------------------------------- zkpy on its own


def test_monitor_and_mntr_report_the_same_keys(tmp_path: Path) -> None:
    port = free_port()
    srv = make_server("zkpy", tmp_path, extra_cfg=admin_cfg(port))
    srv.start(timeout_s=60)
    try:
        monitor = http(f"http://127.0.0.1:{port}/commands/monitor").json
        mntr = [line.split("\t")[0][3:] for line in _four_letter(srv, "mntr").splitlines()]
        assert [k for k in monitor if k not in ("command", "error")] == mntr
    finally:
        srv.stop()


def test_a_custom_command_url(tmp_path: Path) -> None:
    port = free_port()
    srv = make_server("zkpy", tmp_path, extra_cfg=admin_cfg(port, {"admin.commandURL": "/zk/admin"}))
    srv.start(timeout_s=60)
    try:
        assert http(f"http://127.0.0.1:{port}/zk/admin/ruok").json == {"command": "ruok", "error": None}
        assert links(http(f"http://127.0.0.1:{port}/zk/admin").body.replace(b"/zk/admin/", b"/commands/"))
        assert http(f"http://127.0.0.1:{port}/commands/ruok").status == 404
    finally:
        srv.stop()


def test_the_server_exits_4_when_the_admin_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        srv = make_server("zkpy", tmp_path, extra_cfg=admin_cfg(blocker.getsockname()[1]))
        srv.write_cfg()
        proc = subprocess.run([sys.executable, "-m", "zkpy", "server", str(srv.cfg_path)], capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 4
    assert "Unable to start AdminServer, exiting abnormally" in proc.stderr


def test_admin_is_off_when_disabled(tmp_path: Path) -> None:
    port = free_port()
    srv = make_server("zkpy", tmp_path, extra_cfg={"admin.enableServer": "false", "admin.serverPort": str(port)})
    srv.start(timeout_s=60)
    try:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        srv.stop()


def test_zookeepers_admin_defaults(tmp_path) -> None:
    from zkpy.server.config import default_config, load_config

    cfg_file = tmp_path / "zoo.cfg"
    cfg_file.write_text(f"dataDir={tmp_path}\nclientPort=2181\n")
    cfg = load_config(cfg_file, env={})
    assert (cfg.admin_enable_server, cfg.admin_server_address, cfg.admin_server_port, cfg.admin_command_url) == \
        (True, "0.0.0.0", 8080, "/commands")
    # Without a file zkpy keeps every port on loopback, the AdminServer's too.
    assert default_config().admin_server_address == "127.0.0.1"
