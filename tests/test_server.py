"""A real `zkpy server` process driven by kazoo and by raw wire clients."""

from __future__ import annotations

import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.security import make_digest_acl

from tests.support.servers import ServerProcess, four_letter, make_server
from tests.support.wire import WireClient
from zkpy.proto.constants import OpCode
from zkpy.proto.records import (
    ACL,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ExistsRequest,
    GetDataRequest,
    Id,
    SetDataRequest,
)

OPEN = [ACL(31, Id("world", "anyone"))]


def kazoo(srv: ServerProcess, chroot: str = "", **kw) -> KazooClient:
    client = KazooClient(hosts=srv.hosts + chroot, timeout=10, **kw)
    client.start(timeout=15)
    return client


def wait_for(pred, timeout_s: float = 10.0, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step_s)
    return pred()


# ---------------------------------------------------------------------- with kazoo


def test_kazoo_create_get_set_delete(shared_zkpy_server: ServerProcess) -> None:
    zk = kazoo(shared_zkpy_server)
    try:
        assert zk.create("/crud", b"v0") == "/crud"
        data, stat = zk.get("/crud")
        assert data == b"v0" and stat.version == 0 and stat.dataLength == 2
        stat = zk.set("/crud", b"v1", version=0)
        assert stat.version == 1
        with pytest.raises(BadVersionError):
            zk.set("/crud", b"x", version=0)
        with pytest.raises(NodeExistsError):
            zk.create("/crud")
        zk.create("/crud/child")
        with pytest.raises(NotEmptyError):
            zk.delete("/crud")
        zk.delete("/crud", recursive=True)
        assert zk.exists("/crud") is None
        with pytest.raises(NoNodeError):
            zk.get("/crud")
    finally:
        zk.stop()


def test_sequential_names_count_creates_of_the_parent(shared_zkpy_server: ServerProcess) -> None:
    zk = kazoo(shared_zkpy_server)
    try:
        zk.create("/seqp")
        names = [zk.create("/seqp/n-", sequence=True) for _ in range(3)]
        assert names == [f"/seqp/n-{i:010d}" for i in range(3)]
        zk.delete(names[1])
        assert zk.create("/seqp/n-", sequence=True) == "/seqp/n-0000000003"
        assert zk.exists("/seqp").cversion == 5  # four creates and one delete
    finally:
        zk.stop()


def test_ephemerals_go_with_their_session_and_watchers_hear_it(shared_zkpy_server: ServerProcess) -> None:
    owner = kazoo(shared_zkpy_server)
    watcher = kazoo(shared_zkpy_server)
    try:
        owner.create("/eph", b"", ephemeral=True)
        with pytest.raises(NoChildrenForEphemeralsError):
            owner.create("/eph/child")
        assert watcher.exists("/eph").ephemeralOwner == owner.client_id[0]
        events: list = []
        seen = threading.Event()
        watcher.exists("/eph", watch=lambda e: (events.append(e), seen.set()))
        owner.stop()
        assert seen.wait(10)
        assert events[0].type == "DELETED" and events[0].path == "/eph"
        assert watcher.exists("/eph") is None
    finally:
        owner.close()
        watcher.stop()


def test_chroot_connect_string(shared_zkpy_server: ServerProcess) -> None:
    zk = kazoo(shared_zkpy_server)
    try:
        zk.ensure_path("/app/chroot")
        inside = kazoo(shared_zkpy_server, chroot="/app/chroot")
        try:
            inside.create("/x", b"1")
            assert inside.get_children("/") == ["x"]
        finally:
            inside.stop()
        assert zk.get("/app/chroot/x")[0] == b"1"
    finally:
        zk.stop()


def test_transactions_are_atomic(shared_zkpy_server: ServerProcess) -> None:
    zk = kazoo(shared_zkpy_server)
    try:
        zk.create("/txn")
        t = zk.transaction()
        t.create("/txn/a")
        t.check("/txn", 7)
        results = t.commit()
        assert isinstance(results[1], BadVersionError)
        assert zk.exists("/txn/a") is None
        t = zk.transaction()
        t.create("/txn/a", b"1")
        t.set_data("/txn", b"p")
        t.delete("/txn/a")
        assert t.commit()[0] == "/txn/a"
        assert zk.get("/txn")[0] == b"p" and zk.get_children("/txn") == []
    finally:
        zk.stop()


def test_digest_acl_enforced(shared_zkpy_server: ServerProcess) -> None:
    alice = kazoo(shared_zkpy_server, auth_data=[("digest", "alice:pw")])
    bob = kazoo(shared_zkpy_server)
    try:
        alice.create("/private", b"s", acl=[make_digest_acl("alice", "pw", all=True)])
        with pytest.raises(NoAuthError):
            bob.get("/private")
        with pytest.raises(NoAuthError):
            bob.set("/private", b"x")
        assert alice.get("/private")[0] == b"s"
        bob.add_auth("digest", "alice:pw")
        assert bob.get("/private")[0] == b"s"
    finally:
        alice.stop()
        bob.stop()


def test_pipelined_requests_are_answered_in_order(shared_zkpy_server: ServerProcess) -> None:
    zk = kazoo(shared_zkpy_server)
    try:
        zk.create("/pipe")
        asyncs = []
        for i in range(200):
            asyncs.append(zk.create_async(f"/pipe/n{i}", str(i).encode()))
            asyncs.append(zk.get_async(f"/pipe/n{i}"))
        for i in range(200):
            assert asyncs[2 * i].get(timeout=10) == f"/pipe/n{i}"
            assert asyncs[2 * i + 1].get(timeout=10)[0] == str(i).encode()
    finally:
        zk.stop()


def test_read_after_write_sees_own_write_and_not_later_ones(shared_zkpy_server: ServerProcess) -> None:
    c = WireClient(shared_zkpy_server.host, shared_zkpy_server.port).connect()
    try:
        c.call(OpCode.create, CreateRequest("/fifo", b"0", OPEN, 0))
        # Pipeline: set 1, read, set 2, read — each read sees exactly the write before it.
        c.send_request(OpCode.setData, SetDataRequest("/fifo", b"1", -1))
        c.send_request(OpCode.getData, GetDataRequest("/fifo", False))
        c.send_request(OpCode.setData, SetDataRequest("/fifo", b"2", -1))
        c.send_request(OpCode.getData, GetDataRequest("/fifo", False))
        replies = [c.read_reply(op) for op in (OpCode.setData, OpCode.getData, OpCode.setData, OpCode.getData)]
        assert [r.xid for r in replies] == [2, 3, 4, 5]
        assert replies[1].body.data == b"1" and replies[3].body.data == b"2"
        assert replies[0].zxid < replies[2].zxid
    finally:
        c.close()


# ---------------------------------------------------------------------- sessions


@pytest.fixture
def fast_tick_server(tmp_path: Path):
    srv = make_server("zkpy", tmp_path / "fast", extra_cfg={"tickTime": "200", "minSessionTimeout": "400",
                                                             "znode.container.checkIntervalMs": "100"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_session_expires_when_client_goes_silent(fast_tick_server: ServerProcess) -> None:
    silent = WireClient(fast_tick_server.host, fast_tick_server.port, timeout_ms=400).connect()
    assert silent.negotiated_timeout == 400
    silent.call(OpCode.create, CreateRequest("/doomed", b"", OPEN, 1))
    zk = kazoo(fast_tick_server)
    try:
        seen = threading.Event()
        zk.exists("/doomed", watch=lambda e: seen.set())
        assert seen.wait(10), "the silent session's ephemeral was not removed"
        assert zk.exists("/doomed") is None
        assert silent.is_closed_by_server(5)
        again = WireClient(fast_tick_server.host, fast_tick_server.port, session_id=silent.session_id,
                           passwd=silent.passwd)
        with pytest.raises(ConnectionError):
            again.connect()
    finally:
        zk.stop()


def test_session_timeout_is_clamped_to_server_bounds(fast_tick_server: ServerProcess) -> None:
    low = WireClient(fast_tick_server.host, fast_tick_server.port, timeout_ms=1).connect()
    high = WireClient(fast_tick_server.host, fast_tick_server.port, timeout_ms=10**9).connect()
    try:
        assert low.negotiated_timeout == 400
        assert high.negotiated_timeout == 20 * 200
    finally:
        low.close()
        high.close()


def test_used_container_is_removed_when_empty(fast_tick_server: ServerProcess) -> None:
    c = WireClient(fast_tick_server.host, fast_tick_server.port).connect()
    try:
        assert c.call(OpCode.createContainer, CreateRequest("/box", b"", OPEN, 4)).err == 0
        c.call(OpCode.create, CreateRequest("/box/item", b"", OPEN, 0))
        c.call(OpCode.delete, DeleteRequest("/box/item", -1))
        assert wait_for(lambda: c.call(OpCode.exists, ExistsRequest("/box", False)).err == -101)
    finally:
        c.close()


# ---------------------------------------------------------------------- bad input


def raw_connection(srv: ServerProcess) -> socket.socket:
    return socket.create_connection((srv.host, srv.port), timeout=10)


def closed_by_peer(s: socket.socket, timeout_s: float = 12.0) -> bool:
    s.settimeout(timeout_s)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("payload", [
    struct.pack(">i", -5),
    struct.pack(">i", 0),
    struct.pack(">i", 0x7FFFFFFF) + b"abc",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    struct.pack(">i", 8) + b"\x00" * 8,
], ids=["negative length", "zero length", "huge length", "http", "short handshake"])
def test_garbage_instead_of_handshake_closes_only_that_connection(shared_zkpy_server: ServerProcess,
                                                                   payload: bytes) -> None:
    s = raw_connection(shared_zkpy_server)
    s.sendall(payload)
    assert closed_by_peer(s)
    s.close()
    zk = kazoo(shared_zkpy_server)
    try:
        assert zk.exists("/") is not None
    finally:
        zk.stop()


def test_request_frame_over_jute_maxbuffer_closes_connection(shared_zkpy_server: ServerProcess) -> None:
    c = WireClient(shared_zkpy_server.host, shared_zkpy_server.port).connect()
    c.send_raw(struct.pack(">i", 1024 * 1024) + b"\0" * 64)
    assert c.is_closed_by_server(10)


def test_largest_allowed_frame_is_served(shared_zkpy_server: ServerProcess) -> None:
    c = WireClient(shared_zkpy_server.host, shared_zkpy_server.port).connect()
    try:
        path = "/big"
        overhead = 8 + 4 + len(path) + 4 + 4 + 4 + 4 + 4 + 5 + 4 + 6 + 4
        data = b"x" * (0xFFFFF - overhead)
        r = c.call(OpCode.create, CreateRequest(path, data, [ACL(31, Id("world", "anyone"))], 0))
        assert r.err == 0
        assert c.call(OpCode.getData, GetDataRequest(path, False)).body.data == data
    finally:
        c.close()


def test_unknown_opcode_answers_unimplemented_then_closes(shared_zkpy_server: ServerProcess) -> None:
    c = WireClient(shared_zkpy_server.host, shared_zkpy_server.port).connect()
    r = c.call(77, b"")
    assert r.err == -6
    assert c.is_closed_by_server(5)


def test_undecodable_request_answers_marshalling_error_and_keeps_connection(
        shared_zkpy_server: ServerProcess) -> None:
    c = WireClient(shared_zkpy_server.host, shared_zkpy_server.port).connect()
    try:
        assert c.call(OpCode.getData, b"\x00\x00\x00\x09/tr").err == -5
        assert c.call(OpCode.create, b"\x7f\x00").err == -5
        assert c.call(OpCode.getData, GetDataRequest("/", False)).err == 0
    finally:
        c.close()


def test_client_that_never_reads_does_not_block_others(shared_zkpy_server: ServerProcess) -> None:
    hog = WireClient(shared_zkpy_server.host, shared_zkpy_server.port).connect()
    hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.call(OpCode.create, CreateRequest("/hog", b"x" * 60000, OPEN, 0))
    request = b""
    for i in range(2000):
        body = struct.pack(">ii", 1000 + i, OpCode.getData) + GetDataRequest("/hog", False).to_bytes()
        request += struct.pack(">i", len(body)) + body
    hog.sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 5
    while sent < len(request) and time.monotonic() < deadline:
        try:
            sent += hog.sock.send(request[sent:])
        except BlockingIOError:
            time.sleep(0.01)
    zk = kazoo(shared_zkpy_server)
    try:
        started = time.monotonic()
        for _ in range(20):
            assert zk.exists("/hog") is not None
        assert time.monotonic() - started < 30  # bounded wait, not a performance threshold
    finally:
        zk.stop()
        hog.close_socket()


def test_too_many_connections_from_one_address_are_refused(tmp_path: Path) -> None:
    srv = make_server("zkpy", tmp_path / "limited", extra_cfg={"maxClientCnxns": "3"})
    srv.start()
    conns = []
    try:
        conns = [WireClient(srv.host, srv.port).connect() for _ in range(3)]
        extra = raw_connection(srv)
        assert closed_by_peer(extra)
        extra.close()
    finally:
        for c in conns:
            c.close()
        srv.stop()


# ---------------------------------------------------------------------- process


def test_sigterm_stops_the_server_within_seconds(tmp_path: Path) -> None:
    srv = make_server("zkpy", tmp_path / "term")
    srv.start()
    zk = kazoo(srv)
    zk.create("/before-term", b"x")
    zk.stop()
    assert srv.proc is not None
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    rc = srv.proc.wait(15)
    assert rc == 0
    assert time.monotonic() - started < 15
    srv.proc = None


def test_srvr_is_the_only_default_four_letter_word(tmp_path: Path) -> None:
    srv = make_server("zkpy", tmp_path / "wl")
    srv.write_cfg()
    text = srv.cfg_path.read_text().replace("4lw.commands.whitelist=*\n", "")
    srv.cfg_path.write_text(text)
    srv.start()
    try:
        assert "Mode: standalone" in four_letter(srv.host, srv.port, "srvr")
        assert "not in the whitelist" in four_letter(srv.host, srv.port, "ruok")
    finally:
        srv.stop()


def test_ttl_node_is_removed_after_its_ttl_without_change(tmp_path: Path) -> None:
    srv = make_server("zkpy", tmp_path / "ttl", extra_cfg={"extendedTypesEnabled": "true",
                                                            "znode.container.checkIntervalMs": "100"})
    srv.start()
    c = WireClient(srv.host, srv.port).connect()
    try:
        assert c.call(OpCode.createTTL, CreateTTLRequest("/short", b"", OPEN, 5, 300)).err == 0
        assert c.call(OpCode.createTTL, CreateTTLRequest("/long", b"", OPEN, 5, 3_600_000)).err == 0
        assert wait_for(lambda: c.call(OpCode.exists, ExistsRequest("/short", False)).err == -101)
        assert c.call(OpCode.exists, ExistsRequest("/long", False)).err == 0
    finally:
        c.close()
        srv.stop()


def test_super_digest_from_jvmflags_grants_everything(tmp_path: Path) -> None:
    from zkpy.tree.acl import generate_digest

    srv = make_server("zkpy", tmp_path / "super",
                      env={"SERVER_JVMFLAGS": "-Dzookeeper.DigestAuthenticationProvider.superDigest="
                                              + generate_digest("super:secret")})
    srv.start()
    owner = kazoo(srv, auth_data=[("digest", "alice:pw")])
    admin = kazoo(srv, auth_data=[("digest", "super:secret")])
    nobody = kazoo(srv)
    try:
        owner.create("/locked", b"x", acl=[make_digest_acl("alice", "pw", all=True)])
        with pytest.raises(NoAuthError):
            nobody.get("/locked")
        assert admin.get("/locked")[0] == b"x"
        admin.set("/locked", b"y")
        admin.delete("/locked")
    finally:
        for z in (owner, admin, nobody):
            z.stop()
        srv.stop()


def test_client_ahead_of_the_server_is_closed_without_an_answer(shared_zkpy_server: ServerProcess) -> None:
    ahead = WireClient(shared_zkpy_server.host, shared_zkpy_server.port, last_zxid=1 << 40)
    with pytest.raises(ConnectionError):
        ahead.connect()


def test_read_only_capable_client_gets_a_normal_session(shared_zkpy_server: ServerProcess) -> None:
    c = WireClient(shared_zkpy_server.host, shared_zkpy_server.port, read_only=True).connect()
    try:
        assert c.call(OpCode.create, CreateRequest("/ro-client", b"", OPEN, 0)).err == 0
    finally:
        c.close()
    old = WireClient(shared_zkpy_server.host, shared_zkpy_server.port, read_only=None).connect()
    old.close()


def test_config_with_only_its_own_server_line_runs_standalone(tmp_path: Path) -> None:
    srv = make_server("zkpy", tmp_path / "own")
    srv.data_dir.mkdir(parents=True)
    (srv.data_dir / "myid").write_text("1\n")
    srv.extra_cfg = {"server.1": f"127.0.0.1:{srv.port + 1}:{srv.port + 2}"}
    srv.start()
    try:
        assert "Mode: standalone" in four_letter(srv.host, srv.port, "srvr")
    finally:
        srv.stop()


def test_ensemble_member_alone_does_not_serve(tmp_path: Path) -> None:
    from tests.support.ensemble import make_ensemble

    ens = make_ensemble("zkpy", tmp_path / "alone", n=3)
    lonely = ens.members[1]
    lonely.start_background()
    try:
        deadline = time.monotonic() + 10
        answer = ""
        while time.monotonic() < deadline:
            try:
                answer = four_letter(lonely.host, lonely.port, "srvr")
                break
            except OSError:
                time.sleep(0.1)
        assert "not currently serving" in answer
        s = raw_connection(lonely)
        s.sendall(struct.pack(">i", 45) + struct.pack(">iqiqi", 0, 0, 10000, 0, 16) + b"\0" * 16 + b"\0")
        assert closed_by_peer(s)
        s.close()
    finally:
        lonely.stop()


def test_bad_config_names_the_key_and_the_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("dataDir=/tmp/x\nclientPort=2181\ntickTime=abc\n")
    out = subprocess.run([sys.executable, "-m", "zkpy", "server", str(cfg)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2
    assert "zoo.cfg:3" in out.stderr and "tickTime" in out.stderr


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_client_that_never_reads_cannot_grow_server_memory_without_bound(tmp_path: Path) -> None:
    srv = make_server("zkpy", tmp_path / "flood")
    srv.start()
    try:
        assert srv.proc is not None
        c = WireClient(srv.host, srv.port).connect()
        c.call(OpCode.create, CreateRequest("/big", b"x" * 500_000, OPEN, 0))
        before = rss_kb(srv.proc.pid)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        one = struct.pack(">ii", 1, OpCode.getData) + GetDataRequest("/big", False).to_bytes()
        frame = struct.pack(">i", len(one)) + one
        c.sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 5
        # 4,000 reads of 500 kB would be 2 GB of answers if the server kept them all.
        burst = frame * 4000
        while sent < len(burst) and time.monotonic() < deadline:
            try:
                sent += c.sock.send(burst[sent:])
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(1.0)
        grown_mb = (rss_kb(srv.proc.pid) - before) / 1024
        assert grown_mb < 200, f"server grew by {grown_mb:.0f} MB for a client that does not read"
        zk = kazoo(srv)
        assert zk.exists("/big") is not None
        zk.stop()
        c.close_socket()
    finally:
        srv.stop()
