"""Durability of a real zkpy server: kill -9 under load, damaged files, restarts, and Apache's data dir."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.support.servers import (
    JAVA_DIR,
    ServerProcess,
    apache_available,
    apache_classpath,
    apache_missing_reason,
    make_server,
)
from tests.support.wire import WireClient
from zkpy.proto.constants import OpCode
from zkpy.proto.records import ACL, CreateRequest, CreateTTLRequest, ExistsRequest, Id
from zkpy.storage.files import list_logs, list_snapshots

OPEN = [ACL(31, Id("world", "anyone"))]


def kazoo(srv: ServerProcess, **kw) -> KazooClient:
    client = KazooClient(hosts=srv.hosts, timeout=10, **kw)
    client.start(timeout=20)
    return client


def version2(srv: ServerProcess) -> Path:
    return srv.data_dir / "version-2"


class AckedWriter:
    """Writes pairs of nodes in one multi from several threads and records what was acknowledged."""

    def __init__(self, srv: ServerProcess, threads: int = 4) -> None:
        self.srv = srv
        self.acked: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        self.counter = 0

    def _next(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def _run(self, idx: int) -> None:
        try:
            c = WireClient(self.srv.host, self.srv.port).connect()
        except OSError:
            return
        from zkpy.proto.messages import encode_multi_request

        while not self.stop.is_set():
            n = self._next() * 10 + idx
            out = bytearray()
            encode_multi_request([(OpCode.create, CreateRequest(f"/crash/a-{n}", str(n).encode(), OPEN, 0)),
                                  (OpCode.create, CreateRequest(f"/crash/b-{n}", str(n).encode(), OPEN, 0))], out)
            try:
                r = c.call(OpCode.multi, bytes(out), timeout_s=5)
            except (OSError, TimeoutError, ConnectionError):
                return
            if r.err == 0 and all(err == 0 for _, err, _ in r.body):
                with self.lock:
                    self.acked.add(n)

    def __enter__(self) -> AckedWriter:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


@pytest.mark.slow
def test_kill_9_under_write_load_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    srv = make_server("zkpy", tmp_path / "crash", extra_cfg={"snapCount": "300"})
    srv.start()
    zk = kazoo(srv)
    zk.create("/crash")
    zk.stop()
    all_acked: set[int] = set()
    for _round in range(8):
        with AckedWriter(srv) as writer:
            time.sleep(rng.uniform(0.2, 1.2))
            srv.kill9()
        all_acked |= writer.acked
        srv.start()
        zk = kazoo(srv)
        try:
            names = set(zk.get_children("/crash"))
        finally:
            zk.stop()
        a = {int(x[2:]) for x in names if x.startswith("a-")}
        b = {int(x[2:]) for x in names if x.startswith("b-")}
        assert a == b, f"a multi was half applied: {sorted(a ^ b)[:10]}"
        missing = all_acked - a
        assert not missing, f"acknowledged writes lost after kill -9: {sorted(missing)[:10]}"
    assert len(all_acked) > 100
    srv.stop()


def start_with_two_snapshots(tmp_path: Path) -> tuple[ServerProcess, list[str]]:
    srv = make_server("zkpy", tmp_path / "damage", extra_cfg={"snapCount": "40"})
    srv.start()
    zk = kazoo(srv)
    paths = []
    try:
        zk.create("/d")
        for i in range(120):
            paths.append(zk.create(f"/d/n{i}", str(i).encode()))
    finally:
        zk.stop()
    srv.stop()
    return srv, paths


def test_torn_last_log_record_is_cut_and_earlier_records_kept(tmp_path: Path) -> None:
    srv, _ = start_with_two_snapshots(tmp_path)
    logs = list_logs(version2(srv))
    newest = logs[-1][1]
    raw = newest.read_bytes()
    end = len(raw.rstrip(b"\0"))
    newest.write_bytes(raw[: end - 3])  # cut into the last record (the closeSession)
    srv.start()
    try:
        zk = kazoo(srv)
        assert len(zk.get_children("/d")) == 120
        zk.stop()
    finally:
        srv.stop()
    assert "torn" in srv.log_path.read_text() or "truncat" in srv.log_path.read_text().lower()


def test_corrupt_newest_snapshot_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    srv, _ = start_with_two_snapshots(tmp_path)
    snaps = list_snapshots(version2(srv))
    assert len(snaps) >= 2
    newest = snaps[0][1]  # newest first
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    srv.start()
    try:
        zk = kazoo(srv)
        assert len(zk.get_children("/d")) == 120
        zk.stop()
    finally:
        srv.stop()
    assert newest.name in srv.log_path.read_text()


def test_bad_checksum_in_the_middle_of_the_log_refuses_to_start(tmp_path: Path) -> None:
    srv, _ = start_with_two_snapshots(tmp_path)
    for _, snap in list_snapshots(version2(srv)):
        snap.unlink()
    _, first_log = list_logs(version2(srv))[0]
    data = bytearray(first_log.read_bytes())
    data[16 + 12 + 30] ^= 0x01  # inside the first record's body
    first_log.write_bytes(bytes(data))
    assert srv.proc is None
    with pytest.raises(RuntimeError, match="exited"):
        srv.start(timeout_s=20)
    assert first_log.name in srv.log_path.read_text() or "snapshot" in srv.log_path.read_text()


def test_session_survives_restart_within_its_timeout(tmp_path: Path) -> None:
    srv = make_server("zkpy", tmp_path / "sess")
    srv.start()
    c = WireClient(srv.host, srv.port, timeout_ms=30000).connect()
    c.call(OpCode.create, CreateRequest("/mine", b"", OPEN, 1))
    sid, pw, last = c.session_id, c.passwd, c.last_zxid
    c.close_socket()
    srv.stop()
    srv.start()
    try:
        again = WireClient(srv.host, srv.port, timeout_ms=30000, session_id=sid, passwd=pw, last_zxid=last).connect()
        assert again.session_id == sid
        assert again.call(OpCode.exists, ExistsRequest("/mine", False)).err == 0
        again.close()
    finally:
        srv.stop()


def test_session_that_expires_while_down_is_expired_after_start(tmp_path: Path) -> None:
    srv = make_server("zkpy", tmp_path / "exp", extra_cfg={"tickTime": "200", "minSessionTimeout": "400"})
    srv.start()
    c = WireClient(srv.host, srv.port, timeout_ms=400).connect()
    c.call(OpCode.create, CreateRequest("/gone", b"", OPEN, 1))
    c.close_socket()
    srv.stop()
    time.sleep(1.0)
    srv.start()
    try:
        watcher = WireClient(srv.host, srv.port).connect()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if watcher.call(OpCode.exists, ExistsRequest("/gone", False)).err == -101:
                break
            time.sleep(0.1)
        assert watcher.call(OpCode.exists, ExistsRequest("/gone", False)).err == -101
        watcher.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------------- Apache interchange


def build_tree(srv: ServerProcess) -> tuple[int, bytes]:
    """Every node kind and ACL kind, plus an open session holding an ephemeral."""
    zk = kazoo(srv, auth_data=[("digest", "u:p")])
    from kazoo.security import make_acl, make_digest_acl

    zk.create("/k", b"persistent")
    zk.create("/k/seq-", b"s", sequence=True)
    zk.create("/k/seq-", b"s", sequence=True)
    zk.create("/k/digest", b"d", acl=[make_digest_acl("u", "p", all=True)])
    zk.create("/k/ip", b"i", acl=[make_acl("ip", "127.0.0.1", read=True, write=True)])
    zk.create("/k/null", None)
    zk.set("/k", b"persistent2")
    zk.stop()
    w = WireClient(srv.host, srv.port, timeout_ms=60000).connect()
    w.call(OpCode.createContainer, CreateRequest("/k/box", b"c", OPEN, 4))
    w.call(OpCode.create, CreateRequest("/k/box/in", b"", OPEN, 0))
    w.call(OpCode.createTTL, CreateTTLRequest("/k/ttl", b"t", OPEN, 5, 3_600_000))
    w.call(OpCode.create, CreateRequest("/k/eph", b"e", OPEN, 1))
    w.close_socket()
    return w.session_id, w.passwd


def dump_tree(srv: ServerProcess, sid: int | None = None, pw: bytes | None = None) -> dict:
    kw = {"client_id": (sid, pw)} if sid is not None else {}
    zk = kazoo(srv, auth_data=[("digest", "u:p")], **kw)
    out = {}
    try:
        if sid is not None:
            assert zk.client_id[0] == sid
        stack = ["/k"]
        while stack:
            p = stack.pop()
            data, stat = zk.get(p)
            acl, _ = zk.get_acls(p)
            out[p] = (data, stat, sorted(str(a) for a in acl))
            stack.extend(f"{p}/{c}" for c in zk.get_children(p))
    finally:
        zk.stop()
    return out


@pytest.mark.apache
def test_apache_serves_a_data_directory_written_by_zkpy(tmp_path: Path) -> None:
    if not apache_available():
        pytest.skip(apache_missing_reason())
    zk_srv = make_server("zkpy", tmp_path / "z2a", extra_cfg={"extendedTypesEnabled": "true", "snapCount": "10"})
    zk_srv.start()
    sid, pw = build_tree(zk_srv)
    before = dump_tree(zk_srv)
    zk_srv.stop()
    apache = ServerProcess("apache", zk_srv.host, zk_srv.port, zk_srv.data_dir, zk_srv.cfg_path,
                           env={"zookeeper.extendedTypesEnabled": "true"})
    apache.start(timeout_s=60)
    try:
        after = dump_tree(apache, sid, pw)  # the open session and its ephemeral came across
        assert after == before
    finally:
        apache.stop()


@pytest.mark.apache
def test_zkpy_serves_a_data_directory_written_by_apache(tmp_path: Path) -> None:
    if not apache_available():
        pytest.skip(apache_missing_reason())
    apache = make_server("apache", tmp_path / "a2z", extra_cfg={"extendedTypesEnabled": "true", "snapCount": "10"},
                         env={"zookeeper.extendedTypesEnabled": "true"})
    apache.start(timeout_s=60)
    sid, pw = build_tree(apache)
    before = dump_tree(apache)
    apache.stop()
    zk_srv = ServerProcess("zkpy", apache.host, apache.port, apache.data_dir, apache.cfg_path)
    zk_srv.start()
    try:
        after = dump_tree(zk_srv, sid, pw)
        assert after == before
    finally:
        zk_srv.stop()


@pytest.mark.apache
def test_apache_tools_read_zkpy_files(tmp_path: Path) -> None:
    if not apache_available():
        pytest.skip(apache_missing_reason())
    srv = make_server("zkpy", tmp_path / "tools", extra_cfg={"extendedTypesEnabled": "true", "snapCount": "10"})
    srv.start()
    build_tree(srv)
    srv.stop()
    srv.start()  # a start snapshot holds the whole tree
    srv.stop()
    cp = apache_classpath()
    for _, snap in list_snapshots(version2(srv)):
        out = subprocess.run(["java", "-cp", cp, "org.apache.zookeeper.server.SnapshotFormatter", str(snap)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    newest_snapshot = list_snapshots(version2(srv))[0][1]
    text = subprocess.run(["java", "-cp", cp, "org.apache.zookeeper.server.SnapshotFormatter", "-d",
                           str(newest_snapshot)], capture_output=True, text=True, timeout=60).stdout
    assert "/k/digest" in text and "/k/box/in" in text
    for _, log in list_logs(version2(srv)):
        out = subprocess.run(["java", "-cp", cp, "org.apache.zookeeper.server.persistence.TxnLogToolkit", "-d",
                              str(log)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "CRC ERROR" not in out.stdout
    assert JAVA_DIR.exists()


def test_zkpy_cleanup_keeps_the_newest_snapshots(tmp_path: Path) -> None:
    srv, _ = start_with_two_snapshots(tmp_path)
    before = list_snapshots(version2(srv))
    assert len(before) > 3
    import sys

    out = subprocess.run([sys.executable, "-m", "zkpy", "cleanup", "-n", "3", str(srv.data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    after = list_snapshots(version2(srv))
    assert [p for _, p in after] == [p for _, p in before[:3]]  # newest first
    srv.start()
    try:
        zk = kazoo(srv)
        assert len(zk.get_children("/d")) == 120
        zk.stop()
    finally:
        srv.stop()
