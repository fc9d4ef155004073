"""Four-letter words: zkpy answers as Apache ZooKeeper 3.8.0 does.

Each comparison runs the command against a zkpy server and an Apache 3.8.0 server that went
through the same little workload (two sessions, nodes, ephemerals, watches, a quota), and
compares the shape: the same lines and keys in the same order, and equal values wherever they
are deterministic (node, watch and ephemeral counts, zxids, settings).  Versions, times, ports
and session ids differ by nature; session ids are mapped to the client that owns them.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support.servers import ServerProcess, apache_available, apache_missing_reason, four_letter, make_server
from zkpy.server.fourlw import (
    ALL_COMMANDS,
    FourLetterWords,
    enabled_commands,
    java_avg,
    java_double,
    java_hash_order,
    java_string_hash,
)

KINDS = ("apache", "zkpy")

# ---------------------------------------------------------------------- servers and workload


@dataclass
class Pair:
    """An Apache and a zkpy server, each with its clients (c1, c2) after the same workload."""

    servers: dict[str, ServerProcess]
    clients: dict[str, list]

    def run(self, cmd: str) -> dict[str, str]:
        return {kind: four_letter(srv.host, srv.port, cmd) for kind, srv in self.servers.items()}

    def session_names(self, kind: str) -> dict[str, str]:
        """Session id as 4lw prints it (0x..., no padding) -> the client's name."""
        return {f"0x{c.client_id[0] & (2**64 - 1):x}": f"<c{i + 1}>" for i, c in enumerate(self.clients[kind])}

    def anonymized(self, kind: str, text: str) -> str:
        for sid, name in self.session_names(kind).items():
            text = re.sub(rf"{sid}\b", name, text)
        return text


def _start(kind: str, base: Path, whitelist: str | None) -> ServerProcess:
    srv = make_server(kind, base)
    srv.write_cfg()
    lines = srv.cfg_path.read_text().splitlines()
    lines = [ln for ln in lines if not ln.startswith("4lw.commands.whitelist=")]
    if whitelist is not None:
        lines.append(f"4lw.commands.whitelist={whitelist}")
    srv.cfg_path.write_text("\n".join(lines) + "\n")
    return srv.start(timeout_s=60)


def _workload(hosts: str) -> list:
    from kazoo.client import KazooClient

    c1 = KazooClient(hosts, timeout=10)
    c1.start(timeout=15)
    c2 = KazooClient(hosts, timeout=10)
    c2.start(timeout=15)
    c1.create("/app/a", b"x", makepath=True)
    c1.create("/app/e1", b"", ephemeral=True)
    c2.create("/app/e2", b"yy", ephemeral=True)
    c2.create("/app/e3", b"yy", ephemeral=True)
    c1.create("/zookeeper/quota/app/zookeeper_limits", b"count=10,bytes=-1", makepath=True)
    c1.create("/zookeeper/quota/app/zookeeper_stats", b"count=0,bytes=0")
    # Watches last, so that nothing fires them: data, exists and child watches.
    c1.get("/app/a", watch=lambda e: None)
    c1.exists("/nope", watch=lambda e: None)
    c2.get_children("/app", watch=lambda e: None)
    c2.get("/app/a", watch=lambda e: None)
    c2.sync("/")  # every request above has been answered
    return [c1, c2]




def _pair(tmp_path_factory: pytest.TempPathFactory, name: str, whitelist: str | None,
          workload: bool) -> Iterator[Pair]:
    if not apache_available():
        pytest.skip(apache_missing_reason())
    servers: dict[str, ServerProcess] = {}
    clients: dict[str, list] = {}
    try:
        for kind in KINDS:
            servers[kind] = _start(kind, tmp_path_factory.mktemp(f"{name}-{kind}"), whitelist)
            clients[kind] = _workload(servers[kind].hosts) if workload else []
        yield Pair(servers, clients)
    finally:
        for kind in KINDS:
            for c in clients.get(kind, []):
                c.stop()
                c.close()
            if kind in servers:
                servers[kind].stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Both servers with every command enabled (``*``) and the workload done."""
    yield from _pair(tmp_path_factory, "all", "*", workload=True)


@pytest.fixture(scope="module")
def default_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Both servers without a 4lw.commands.whitelist line."""
    yield from _pair(tmp_path_factory, "default", None, workload=False)


@pytest.fixture(scope="module")
def custom_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    yield from _pair(tmp_path_factory, "custom", "ruok, conf", workload=False)


def _raw(srv: ServerProcess, data: bytes) -> bytes:
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        for _ in range(1000):  # bounded: the server closes after answering
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


def _kv(text: str, sep: str) -> list[tuple[str, str]]:
    return [tuple(line.split(sep, 1)) for line in text.splitlines() if sep in line]  # type: ignore[misc]


def _members(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith("\t"))


def _sorted_members(text: str) -> str:
    """Sort each run of tab-indented member lines: Java orders them by object identity."""
    out: list[str] = []
    run: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("\t"):
            run.append(line)
            continue
        out.extend(sorted(run))
        run = []
        out.append(line)
    return "\n".join(out)


def _mntr(text: str) -> dict[str, str]:
    return dict(_kv(text, "\t"))


# ---------------------------------------------------------------------- without a server


def test_every_command_is_known_by_its_four_bytes() -> None:
    words = FourLetterWords(SimpleNamespace(four_letter_words=frozenset({"*"})))
    for cmd in ALL_COMMANDS - {"telnet close"}:
        assert words.command_for(struct.unpack(">i", cmd.encode())[0]) == cmd
    assert words.command_for(struct.unpack(">i", bytes.fromhex("fff4fffd"))[0]) == "telnet close"


def test_a_frame_length_is_not_a_command() -> None:
    words = FourLetterWords(SimpleNamespace())
    assert words.command_for(45) is None
    assert words.command_for(struct.unpack(">i", b"abcd")[0]) is None


def test_default_whitelist_is_only_srvr() -> None:
    assert enabled_commands(SimpleNamespace()) == {"srvr"}


def test_star_enables_every_command() -> None:
    assert enabled_commands(SimpleNamespace(four_letter_words=frozenset({"*"}))) == ALL_COMMANDS


def test_custom_whitelist_keeps_srvr() -> None:
    assert enabled_commands(SimpleNamespace(four_letter_words=frozenset({"ruok", "conf"}))) == {
        "ruok", "conf", "srvr"}


def test_refused_command_names_itself_and_the_whitelist() -> None:
    words = FourLetterWords(SimpleNamespace(four_letter_words=frozenset({"ruok"})))
    assert words.run(None, "mntr") == "mntr is not executed because it is not in the whitelist.\n"


def test_stmk_sets_the_mask_gtmk_reads() -> None:
    words = FourLetterWords(SimpleNamespace(four_letter_words=frozenset({"*"})))
    assert words.run(None, "gtmk") == "306"
    assert words.run(None, "stmk", payload=struct.pack(">q", 1234)) == "1234"
    assert words.run(None, "gtmk") == "1234"


def test_doubles_print_as_java_prints_them() -> None:
    assert [java_double(x) for x in (0.0, 1.0, 3.5714, 5.375, 1e7, 1.5e-4)] == [
        "0.0", "1.0", "3.5714", "5.375", "1.0E7", "1.5E-4"]


def test_averages_round_half_up_to_four_places() -> None:
    assert java_avg(25, 7) == 3.5714
    assert java_avg(1, 3) == 0.3333
    assert java_avg(0, 0) == 0.0


def test_hash_order_matches_apache_quota_gauge_order() -> None:
    # As a running 3.8.0 prints its quota gauge sets.
    names = ["quota_count_limit_per_namespace", "quota_bytes_limit_per_namespace",
             "quota_count_usage_per_namespace", "quota_bytes_usage_per_namespace"]
    assert java_hash_order(names, java_string_hash, concurrent=True) == [
        "quota_bytes_limit_per_namespace", "quota_count_usage_per_namespace",
        "quota_count_limit_per_namespace", "quota_bytes_usage_per_namespace"]


# ---------------------------------------------------------------------- against Apache 3.8.0

@pytest.mark.apache
def test_ruok_answers_imok(pair: Pair) -> None:
    assert pair.run("ruok") == {"apache": "imok", "zkpy": "imok"}


@pytest.mark.apache
def test_srvr_prints_apaches_lines(pair: Pair) -> None:
    out = {k: _kv(v, ": ") for k, v in pair.run("srvr").items()}
    assert [k for k, _ in out["zkpy"]] == [k for k, _ in out["apache"]]
    zk, ap = dict(out["zkpy"]), dict(out["apache"])
    assert zk["Zookeeper version"].startswith("3.8.0-")
    for key in ("Connections", "Outstanding", "Zxid", "Mode", "Node count"):
        assert zk[key] == ap[key], key
    assert re.fullmatch(r"\d+/\d+\.\d+(E-?\d+)?/\d+", zk["Latency min/avg/max"])


@pytest.mark.apache
def test_stat_lists_clients_then_the_srvr_lines(pair: Pair) -> None:
    out = pair.run("stat")
    client = re.compile(r" /127\.0\.0\.1:\d+\[[0-9a-f]+\]\(queued=\d+,recved=\d+,sent=\d+\)")
    shapes = {}
    for kind, text in out.items():
        lines = text.splitlines()
        assert lines[0].startswith("Zookeeper version: ")
        assert lines[1] == "Clients:"
        end = lines.index("", 2)
        clients = lines[2:end]
        assert all(client.fullmatch(c) for c in clients), clients
        shapes[kind] = (len(clients), [ln.split(": ")[0] for ln in lines[end + 1:]])
    assert shapes["zkpy"] == shapes["apache"]


@pytest.mark.apache
def test_mntr_prints_apaches_keys_in_apaches_order(pair: Pair) -> None:
    out = {k: list(_mntr(v)) for k, v in pair.run("mntr").items()}
    # Per-namespace read/write summaries exist only where a server records them (not zkpy yet).
    per_ns = re.compile(r"zk_(avg|min|max|cnt|sum)_\w+_(read|write)_per_namespace")
    assert out["zkpy"] == [k for k in out["apache"] if not per_ns.fullmatch(k)]


@pytest.mark.apache
def test_mntr_lines_are_zk_key_tab_value(pair: Pair) -> None:
    text = pair.run("mntr")["zkpy"]
    assert text.endswith("\n")
    assert all(re.fullmatch(r"zk_\w+\t\S.*", line) for line in text.splitlines())


@pytest.mark.apache
def test_mntr_counts_equal_apaches(pair: Pair) -> None:
    out = {k: _mntr(v) for k, v in pair.run("mntr").items()}
    for key in ("zk_server_state", "zk_znode_count", "zk_watch_count", "zk_ephemerals_count",
                "zk_approximate_data_size", "zk_global_sessions", "zk_local_sessions",
                "zk_num_alive_connections", "zk_outstanding_requests", "zk_connection_rejected",
                "zk_app_quota_count_limit_per_namespace", "zk_app_quota_bytes_limit_per_namespace",
                "zk_app_quota_count_usage_per_namespace", "zk_app_quota_bytes_usage_per_namespace"):
        assert out["zkpy"][key] == out["apache"][key], key


@pytest.mark.apache
def test_conf_prints_apaches_settings(pair: Pair) -> None:
    out = {k: _kv(v, "=") for k, v in pair.run("conf").items()}
    assert [k for k, _ in out["zkpy"]] == [k for k, _ in out["apache"]]
    zk, ap = dict(out["zkpy"]), dict(out["apache"])
    for key in ("secureClientPort", "tickTime", "maxClientCnxns", "minSessionTimeout",
                "maxSessionTimeout", "clientPortListenBacklog", "serverId"):
        assert zk[key] == ap[key], key
    assert zk["clientPort"] == str(pair.servers["zkpy"].port)
    assert zk["dataDir"] == str(pair.servers["zkpy"].data_dir / "version-2")
    assert zk["dataDirSize"].isdigit() and zk["dataLogSize"].isdigit()


@pytest.mark.apache
def test_cons_describes_each_connection_like_apache(pair: Pair) -> None:
    line = re.compile(r" /127\.0\.0\.1:\d+\[[0-9a-f]+\]\(queued=\d+,recved=\d+,sent=\d+"
                      r"(,sid=0x[0-9a-f]+,lop=\w+,est=\d+,to=\d+(,lcxid=0x[0-9a-f]+)?,lzxid=0x[0-9a-f]+"
                      r",lresp=\d+,llat=\d+,minlat=\d+,avglat=\d+,maxlat=\d+)?\)")
    shapes = {}
    for kind, text in pair.run("cons").items():
        assert text.endswith("\n\n")
        lines = text[:-2].split("\n")
        assert all(line.fullmatch(ln) for ln in lines), lines
        timeouts = sorted(re.findall(r",to=(\d+)", text))
        shapes[kind] = (len(lines), timeouts)
    assert shapes["zkpy"] == shapes["apache"]


@pytest.mark.apache
def test_envi_prints_apaches_keys(pair: Pair) -> None:
    out = {k: v.splitlines() for k, v in pair.run("envi").items()}
    assert out["zkpy"][0] == out["apache"][0] == "Environment:"
    assert [ln.split("=")[0] for ln in out["zkpy"][1:]] == [ln.split("=")[0] for ln in out["apache"][1:]]
    assert out["zkpy"][1].startswith("zookeeper.version=3.8.0-zkpy-")


@pytest.mark.apache
def test_dump_lists_sessions_and_their_ephemerals_like_apache(pair: Pair) -> None:
    shapes = {}
    for kind, text in pair.run("dump").items():
        text = pair.anonymized(kind, text)
        text = re.sub(r"expire at [^:]+:\d\d:\d\d [A-Z]+ \d+:", "expire at <date>:", text)
        text = re.sub(r"ip: /127\.0\.0\.1:\d+ sessionId: 0x0", "ip: <4lw>", text)
        text = re.sub(r"ip: /127\.0\.0\.1:\d+ ", "ip: ", text)
        sessions, rest = text.split("ephemeral nodes dump:\n")
        ephemerals, connections = rest.split("Connections dump:\n")
        # Sessions with ephemerals are printed in hash order of their ids, which differ: compare
        # each session's block.
        blocks = sorted(re.findall(r"(<c\d>:\n(?:\t.*\n)*)", ephemerals))
        # Which expiry bucket a session lands in depends on when it last spoke: compare the
        # header, the total and the members, not the grouping.
        total = re.search(r"Session Sets \(\d+\)/\((\d+)\):", sessions)
        shapes[kind] = (sessions.splitlines()[0], total and total.group(1), _members(sessions),
                        ephemerals.splitlines()[0], blocks, _members(connections))
    assert shapes["zkpy"] == shapes["apache"]


@pytest.mark.apache
def test_wchs_counts_only_data_and_exists_watches(pair: Pair) -> None:
    out = pair.run("wchs")
    assert out["zkpy"] == out["apache"] == "2 connections watching 2 paths\nTotal watches:3\n"


@pytest.mark.apache
def test_wchc_lists_watched_paths_per_session_like_apache(pair: Pair) -> None:
    out = {k: pair.anonymized(k, v) for k, v in pair.run("wchc").items()}
    blocks = {k: sorted(re.findall(r"(<c\d>\n(?:\t.*\n)*)", v)) for k, v in out.items()}
    assert blocks["zkpy"] == blocks["apache"]
    assert out["zkpy"].endswith("\n\n")


@pytest.mark.apache
def test_wchp_lists_watching_sessions_per_path_like_apache(pair: Pair) -> None:
    out = {k: _sorted_members(pair.anonymized(k, v)) for k, v in pair.run("wchp").items()}
    assert out["zkpy"] == out["apache"]


@pytest.mark.apache
def test_dirs_prints_both_sizes(pair: Pair) -> None:
    out = {k: _kv(v, ": ") for k, v in pair.run("dirs").items()}
    assert [k for k, _ in out["zkpy"]] == [k for k, _ in out["apache"]] == ["datadir_size", "logdir_size"]
    assert all(v.isdigit() for _, v in out["zkpy"])


@pytest.mark.apache
def test_isro_answers_rw(pair: Pair) -> None:
    assert pair.run("isro") == {"apache": "rw", "zkpy": "rw"}


@pytest.mark.apache
def test_gtmk_answers_the_default_trace_mask(pair: Pair) -> None:
    assert pair.run("gtmk") == {"apache": "306", "zkpy": "306"}


@pytest.mark.apache
def test_hash_is_empty_before_zxid_128(pair: Pair) -> None:
    assert pair.run("hash") == {"apache": "", "zkpy": ""}


@pytest.mark.apache
def test_telnet_close_answers_nothing_when_allowed(pair: Pair) -> None:
    out = {k: _raw(srv, bytes.fromhex("fff4fffd")) for k, srv in pair.servers.items()}
    assert out == {"apache": b"", "zkpy": b""}


@pytest.mark.apache
def test_crst_resets_connection_counters(pair: Pair) -> None:
    def recved(text: str) -> list[int]:
        return [int(n) for n in re.findall(r"recved=(\d+),sent=\d+,sid=", text)]

    before = recved(pair.run("cons")["zkpy"])
    out = pair.run("crst")
    assert out["zkpy"] == out["apache"] == "Connection stats reset.\n"
    after = recved(pair.run("cons")["zkpy"])
    assert sum(after) < sum(before)


@pytest.mark.apache
def test_srst_resets_server_counters(pair: Pair) -> None:
    def received(text: str) -> int:
        return int(re.search(r"Received: (\d+)", text).group(1))  # type: ignore[union-attr]

    before = received(pair.run("srvr")["zkpy"])
    out = pair.run("srst")
    assert out["zkpy"] == out["apache"] == "Server stats reset.\n"
    assert received(pair.run("srvr")["zkpy"]) < before


# ---------------------------------------------------------------------- whitelists


@pytest.mark.apache
@pytest.mark.parametrize("cmd", ["ruok", "stat", "mntr", "conf", "isro", "wchs", "stmk"])
def test_default_whitelist_refuses_like_apache(default_pair: Pair, cmd: str) -> None:
    out = default_pair.run(cmd)
    assert out["zkpy"] == out["apache"] == f"{cmd} is not executed because it is not in the whitelist.\n"


@pytest.mark.apache
def test_default_whitelist_still_answers_srvr(default_pair: Pair) -> None:
    out = default_pair.run("srvr")
    assert all("Mode: standalone" in text for text in out.values())


@pytest.mark.apache
def test_default_whitelist_refuses_telnet_close_by_name(default_pair: Pair) -> None:
    out = {k: _raw(srv, bytes.fromhex("fff4fffd")) for k, srv in default_pair.servers.items()}
    assert out["zkpy"] == out["apache"] == b"telnet close is not executed because it is not in the whitelist.\n"


@pytest.mark.apache
def test_custom_whitelist_runs_listed_commands(custom_pair: Pair) -> None:
    assert custom_pair.run("ruok") == {"apache": "imok", "zkpy": "imok"}
    out = {k: [ln.split("=")[0] for ln in v.splitlines()] for k, v in custom_pair.run("conf").items()}
    assert out["zkpy"] == out["apache"]


@pytest.mark.apache
def test_custom_whitelist_refuses_the_rest_but_srvr(custom_pair: Pair) -> None:
    out = custom_pair.run("stat")
    assert out["zkpy"] == out["apache"] == "stat is not executed because it is not in the whitelist.\n"
    assert all(text.startswith("Zookeeper version: ") for text in custom_pair.run("srvr").values())


# ---------------------------------------------------------------------- over an in-process server


def _server(running: bool = True) -> object:
    from zkpy.server.server import ZooKeeperServer

    cfg = SimpleNamespace(tick_time_ms=2000, min_session_timeout_ms=4000, max_session_timeout_ms=40000,
                          extended_types_enabled=False, super_digest=None, jute_max_buffer=0xFFFFF,
                          max_client_cnxns=60, four_letter_words=frozenset({"*"}), data_dir=None)
    server = ZooKeeperServer(cfg)
    server.running = running
    return server


def test_commands_say_not_serving_while_the_server_is_down() -> None:
    words = FourLetterWords(SimpleNamespace(four_letter_words=frozenset({"*"})))
    server = _server(running=False)
    for cmd in ("srvr", "stat", "mntr", "cons", "conf", "dump", "wchs", "dirs", "srst", "crst"):
        assert words.run(server, cmd) == "This ZooKeeper instance is not currently serving requests\n", cmd
    assert words.run(server, "isro") == "null"
    assert words.run(server, "ruok") == "imok"


def test_mntr_takes_metrics_the_server_exposes() -> None:
    server = _server()
    summary = SimpleNamespace(count=4, total=10, min=1, max=4, percentile=lambda q: 2.5 if q == 0.5 else 4)
    server.metrics = SimpleNamespace(gauges={"last_client_response_size": 16}, counters={"response_bytes": 99},
                                     summaries={"fsynctime": summary, "readlatency": summary},
                                     summary_sets={"read_per_namespace": {"app": summary}})
    out = _mntr(FourLetterWords(server.config).run(server, "mntr"))
    assert out["zk_last_client_response_size"] == "16"
    assert out["zk_response_bytes"] == "99"
    assert [out[f"zk_{k}_fsynctime"] for k in ("avg", "min", "max", "cnt", "sum")] == ["2.5", "1", "4", "4", "10"]
    assert [out[f"zk_{k}_readlatency"] for k in ("p50", "p95", "p99", "p999")] == ["3", "4", "4", "4"]
    assert out["zk_cnt_app_read_per_namespace"] == "4"


def test_srst_keeps_the_auth_failure_count() -> None:
    server = _server()
    server.stats.auth_failed = 3
    server.stats.packets_received = 7
    words = FourLetterWords(server.config)
    assert words.run(server, "srst") == "Server stats reset.\n"
    out = _mntr(words.run(server, "mntr"))
    assert out["zk_auth_failed_count"] == "3"
    assert out["zk_packets_received"] == "1"  # the mntr itself, as Apache counts it
