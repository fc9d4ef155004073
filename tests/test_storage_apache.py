"""Compatibility of zkpy.storage with Apache ZooKeeper 3.8's own files and tools (Debian's jars).

(a) Apache writes, we read: snapshots and logs of a real server match what a client saw.
(b) We write, Apache reads: a data directory written only by zkpy.storage is served by Apache
    with the same tree and Stats, and Apache's SnapshotFormatter / TxnLogToolkit print it.
"""

from __future__ import annotations

import io
import os
import subprocess
import time
from collections import namedtuple
from pathlib import Path

import pytest

from tests.support.servers import apache_classpath, make_server
from zkpy.proto.constants import CreateMode, OpCode
from zkpy.proto.records import (
    ACL,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateSessionTxn,
    CreateTTLTxn,
    CreateTxn,
    DeleteTxn,
    Id,
    SetACLTxn,
    SetDataTxn,
    StatPersisted,
    TxnHeader,
)
from zkpy.proto.txns import decode_multi, encode_multi
from zkpy.storage import inspect as zk_inspect
from zkpy.storage.recovery import recover
from zkpy.storage.snapshot import read_snapshot, write_snapshot
from zkpy.storage.txnlog import TxnLogIterator, TxnLogWriter

kazoo = pytest.importorskip("kazoo.client")
from kazoo.protocol.serialization import Create, long_struct  # noqa: E402
from kazoo.security import ACL as KACL  # noqa: E402
from kazoo.security import Id as KId  # noqa: E402
from kazoo.security import make_digest_acl, make_digest_acl_credential  # noqa: E402

pytestmark = pytest.mark.apache

CONTAINER_OWNER = -0x8000000000000000
OPEN_ACL = [ACL(31, Id("world", "anyone"))]
READ_ACL = [ACL(1, Id("world", "anyone"))]


class _CreateContainer(Create):
    type = 19


class _CreateTTL(namedtuple("_CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        return Create(self.path, self.data, self.acl, self.flags).serialize() + long_struct.pack(self.ttl)

    @classmethod
    def deserialize(cls, b, offset):
        return Create.deserialize(b, offset)


def _raw_call(client, req):
    res = client.handler.async_result()
    client._call(req, res)
    return res.get(timeout=10)


def _client_stat(st: StatPersisted, num_children: int, data: bytes | None) -> tuple:
    """What a client sees for a stored node (DataNode.copyStat)."""
    owner = st.ephemeralOwner
    if owner == CONTAINER_OWNER or (owner >> 56) & 0xFF == 0xFF:
        owner = 0
    return (st.czxid, st.mzxid, st.ctime, st.mtime, st.version, st.cversion * 2 - num_children,
            st.aversion, owner, len(data or b""), num_children, st.pzxid)


def _kazoo_stat(s) -> tuple:
    return (s.czxid, s.mzxid, s.ctime, s.mtime, s.version, s.cversion, s.aversion, s.ephemeralOwner,
            s.dataLength, s.numChildren, s.pzxid)


def _walk(client, path="/"):
    yield path
    for c in sorted(client.get_children(path)):
        yield from _walk(client, path.rstrip("/") + "/" + c)


def _acl_tuples(acls) -> list[tuple]:
    return sorted((a.perms, a.id.scheme, a.id.id) for a in acls)


def _observe(client) -> dict[str, tuple]:
    out = {}
    for p in _walk(client):
        data, st = client.get(p)
        acls, _ = client.get_acls(p)
        out[p] = (data, _kazoo_stat(st), _acl_tuples(acls))
    return out


def _snapshot_view(snap) -> dict[str, tuple]:
    children: dict[str, int] = {}
    for p, *_ in snap.nodes:
        if p != "/":
            parent = p.rsplit("/", 1)[0] or "/"
            children[parent] = children.get(parent, 0) + 1
    out = {}
    for p, data, acl_id, st in snap.nodes:
        acls = OPEN_ACL if acl_id == -1 else snap.acls[acl_id]
        out[p] = (data or b"", _client_stat(st, children.get(p, 0), data), _acl_tuples(acls))
    return out


def _java(*args: str) -> subprocess.CompletedProcess:
    cmd = ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=error", "-cp", apache_classpath(), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "TZ": "UTC"})


def _apache(base: Path, **extra):
    cfg = {"extendedTypesEnabled": "true", "snapCount": "10", **extra}
    return make_server("apache", base, extra_cfg=cfg,
                       env={"zookeeper.extendedTypesEnabled": "true", "zookeeper.preAllocSize": "64"})


def _workload(client) -> None:
    client.add_auth("digest", "alice:secret")
    client.create("/app", b"root data")
    client.create("/app/persistent", b"p" * 100)
    client.create("/app/eph", b"e", ephemeral=True)
    client.create("/app/seq-", b"s1", sequence=True)
    client.create("/app/eseq-", b"s2", sequence=True, ephemeral=True)
    client.create("/app/nulldata", None)
    _raw_call(client, _CreateContainer("/cont", b"c", [KACL(31, KId("world", "anyone"))],
                                       int(CreateMode.CONTAINER)))
    client.create("/cont/child", b"keeps the container")
    _raw_call(client, _CreateTTL("/ttl", b"t", [KACL(31, KId("world", "anyone"))],
                                 int(CreateMode.PERSISTENT_WITH_TTL), 3_600_000))
    client.create("/secure", b"digest", acl=[make_digest_acl("alice", "secret", all=True)])
    client.create("/byip", b"ip", acl=[KACL(31, KId("ip", "127.0.0.1"))])
    client.create("/readonly", b"r", acl=[KACL(17, KId("world", "anyone"))])
    tx = client.transaction()
    tx.create("/multi", b"m1")
    tx.create("/multi/a", b"m2")
    tx.set_data("/app", b"changed in multi")
    tx.check("/app/persistent", 0)
    tx.delete("/app/nulldata")
    assert not any(isinstance(r, Exception) for r in tx.commit())
    for i in range(12):  # enough txns for a few snapshots and log files
        client.set("/app/persistent", f"v{i}".encode())
    client.set_acls("/readonly", [KACL(3, KId("world", "anyone"))])
    client.create("/gone", b"x")
    client.delete("/gone")


def test_apache_written_snapshots_and_logs_match_what_kazoo_saw(tmp_path: Path) -> None:
    srv = _apache(tmp_path / "zk")
    srv.start(timeout_s=60)
    client = kazoo.KazooClient(hosts=srv.hosts, timeout=30)
    client.start(timeout=15)
    try:
        _workload(client)
        seen = _observe(client)
        session_id = client.client_id[0]
        srv.stop()  # the session is still open: its ephemerals stay on disk
    finally:
        client.stop()
        client.close()
        srv.stop()
    # Apache snapshots at start-up: the restart below writes one holding the whole tree.
    srv.start(timeout_s=60)
    srv.stop()
    vdir = srv.data_dir / "version-2"
    snaps = sorted(vdir.glob("snapshot.*"), key=lambda p: int(p.name.split(".")[1], 16))
    assert len(snaps) >= 3
    for p in snaps:  # every snapshot Apache wrote reads and verifies
        read_snapshot(p)
    newest = read_snapshot(snaps[-1])
    assert session_id in newest.sessions
    view = _snapshot_view(newest)
    for path, (data, stat, acls) in seen.items():
        assert path in view, path
        assert view[path] == (data, stat, acls), path
    assert set(view) == set(seen)
    # The log: every record decodes, zxids are contiguous, all kinds of txn are there.
    entries = list(TxnLogIterator(vdir, 0))
    zxids = [e.hdr.zxid for e in entries]
    assert zxids == list(range(zxids[0], zxids[0] + len(zxids)))
    types = {e.hdr.type for e in entries}
    assert {OpCode.createSession, OpCode.create, OpCode.createContainer, OpCode.createTTL, OpCode.multi,
            OpCode.setData, OpCode.setACL, OpCode.delete} <= types
    by_path: dict[str, bytes] = {}
    for e in entries:
        if e.hdr.type == OpCode.setData:
            by_path[e.txn.path] = e.txn.data
        if e.hdr.type == OpCode.multi:
            subs = decode_multi(e.txn)
            assert [t for t, _ in subs] == [OpCode.create, OpCode.create, OpCode.setData, OpCode.check,
                                          OpCode.delete]
    assert by_path["/app/persistent"] == seen["/app/persistent"][0]
    # A full recovery scan of Apache's directory replays to the last zxid with nothing torn.
    rec = recover(srv.data_dir)
    replayed = [e.hdr.zxid for e in rec.entries()]
    assert rec.report.torn_tail is None
    assert rec.report.snapshot == snaps[-1]
    assert not replayed or replayed[0] == rec.snapshot_zxid + 1


def _stat(czxid: int, mzxid: int, pzxid: int, *, version: int = 0, cversion: int = 0, aversion: int = 0,
          owner: int = 0, t: int = 1_700_000_000_000) -> StatPersisted:
    return StatPersisted(czxid, mzxid, t + czxid, t + mzxid, version, cversion, aversion, owner, pzxid)


EPOCH = 1 << 32
SESSION = 0x1000ABCDEF0001


def _synthetic_data_dir(data_dir: Path) -> tuple[int, list]:
    """A tree with every node kind and ACL kind, written only by zkpy.storage; then a log after it."""
    vdir = data_dir / "version-2"
    vdir.mkdir(parents=True)
    z = EPOCH
    acls = {1: READ_ACL,
            2: [ACL(31, Id("digest", make_digest_acl_credential("alice", "secret")))],
            3: [ACL(31, Id("ip", "127.0.0.1")), ACL(1, Id("world", "anyone"))]}
    nodes = [
        ("/", b"", -1, _stat(0, 0, z + 8, cversion=5)),
        ("/zookeeper", b"", -1, _stat(0, 0, 0)),
        ("/zookeeper/config", b"", 1, _stat(0, 0, 0)),
        ("/zookeeper/quota", b"", -1, _stat(0, 0, 0)),
        ("/app", b"app data", -1, _stat(z + 1, z + 9, z + 6, version=3, cversion=4)),
        ("/app/eph", b"ephemeral", -1, _stat(z + 2, z + 2, z + 2, owner=SESSION)),
        ("/app/seq-0000000001", b"s", -1, _stat(z + 3, z + 3, z + 3)),
        ("/app/p", None, 3, _stat(z + 4, z + 4, z + 4, aversion=1)),
        ("/app/big", bytes(range(256)) * 40, -1, _stat(z + 6, z + 6, z + 6)),
        ("/cont", b"", -1, _stat(z + 5, z + 5, z + 7, cversion=1)),
        ("/cont/c", b"child", -1, _stat(z + 7, z + 7, z + 7)),
        ("/ttl", b"ttl", -1, _stat(z + 8, z + 8, z + 8, owner=((0xFF << 56) | 3_600_000) - (1 << 64))),
        ("/secure", b"digest", 2, _stat(z + 10, z + 10, z + 10)),
    ]
    # container owner is Long.MIN_VALUE
    nodes[9] = ("/cont", b"", -1, _stat(z + 5, z + 5, z + 7, cversion=1, owner=CONTAINER_OWNER))
    snap_zxid = z + 10
    write_snapshot(vdir, snap_zxid, {SESSION: 30000}, acls, nodes)
    w = TxnLogWriter(vdir, prealloc_bytes=64 * 1024)
    t = 1_700_000_100_000
    log_txns = [
        (OpCode.createSession, CreateSessionTxn(30000), 0x1000ABCDEF0002),
        (OpCode.create, CreateTxn("/fromlog", b"L", OPEN_ACL, False, 6), SESSION),
        (OpCode.setData, SetDataTxn("/app", b"app data v4", 4), SESSION),
        (OpCode.setACL, SetACLTxn("/app/seq-0000000001", READ_ACL, 1), SESSION),
        (OpCode.createContainer, CreateContainerTxn("/cont2", b"", OPEN_ACL, 7), SESSION),
        (OpCode.createTTL, CreateTTLTxn("/cont2/ttl", b"t2", OPEN_ACL, 1, 60_000), SESSION),
        (OpCode.multi, encode_multi([(OpCode.create, CreateTxn("/m", b"m", OPEN_ACL, False, 9)),
                                     (OpCode.delete, DeleteTxn("/app/p"))]), SESSION),
        (OpCode.create, CreateTxn("/e2", b"", OPEN_ACL, True, 10), 0x1000ABCDEF0002),
        (OpCode.closeSession, CloseSessionTxn(["/e2"]), 0x1000ABCDEF0002),
    ]
    for i, (op, txn, sid) in enumerate(log_txns, start=1):
        w.append(TxnHeader(sid, i, snap_zxid + i, t + i, op), txn)
        if i == 4:
            w.flush()
            w.roll()
    w.close()
    return snap_zxid + len(log_txns), nodes


def test_apache_serves_a_data_dir_written_by_zkpy(tmp_path: Path) -> None:
    srv = _apache(tmp_path / "zk")
    last_zxid, _ = _synthetic_data_dir(srv.data_dir)
    srv.start(timeout_s=60)
    client = kazoo.KazooClient(hosts=srv.hosts, timeout=30)
    client.start(timeout=15)
    try:
        client.add_auth("digest", "alice:secret")
        seen = _observe(client)
        _, st = client.get("/cont2/ttl")
        assert st.mzxid == EPOCH + 16
    finally:
        client.stop()
        client.close()
        srv.stop()
    # The snapshot part, as a client sees it (nodes the log then changed aside).
    snap = read_snapshot(next((srv.data_dir / "version-2").glob("snapshot.10000000a")))
    view = _snapshot_view(snap)
    for path in ("/", "/app/eph", "/app/big", "/cont", "/cont/c", "/ttl", "/secure", "/zookeeper/config"):
        exp = view[path]
        data, stat, acl = seen[path]
        if path == "/":
            continue  # the log added children to /
        assert (data, stat, acl) == exp, path
    assert seen["/app"][0] == b"app data v4"
    assert seen["/app/seq-0000000001"][2] == [(1, "world", "anyone")]
    assert "/app/p" not in seen and "/m" in seen and "/fromlog" in seen and "/e2" not in seen
    assert seen["/cont2/ttl"][1][7] == 0  # a TTL node shows ephemeralOwner 0 to clients
    # Apache's start-up snapshot at our last zxid: it read our log to the end.
    assert (srv.data_dir / "version-2" / f"snapshot.{last_zxid:x}").exists()


def test_apache_snapshot_formatter_prints_our_snapshot_as_we_do(tmp_path: Path) -> None:
    _synthetic_data_dir(tmp_path)
    snap = tmp_path / "version-2" / "snapshot.10000000a"
    res = _java("org.apache.zookeeper.server.SnapshotFormatter", "-d", str(snap))
    assert res.returncode == 0, res.stderr
    out = io.StringIO()
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"  # Apache ran with TZ=UTC; dates print in the local zone
    time.tzset()
    try:
        assert zk_inspect.main(["-d", str(snap)], out=out) == 0
    finally:
        if old_tz is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = old_tz
        time.tzset()
    # Apache walks children in HashSet order: compare node blocks as a set, the rest verbatim.
    def blocks(text: str) -> tuple[list[str], set[str], list[str]]:
        parts = text.split("----\n")
        return parts[:1], set(parts[1:-2]), parts[-2:]
    assert blocks(res.stdout)[0] == blocks(out.getvalue())[0]
    assert blocks(res.stdout)[1] == blocks(out.getvalue())[1]
    assert blocks(res.stdout)[2] == blocks(out.getvalue())[2]


def test_apache_txn_log_toolkit_prints_our_log_as_we_do(tmp_path: Path) -> None:
    _synthetic_data_dir(tmp_path)
    for log in sorted((tmp_path / "version-2").glob("log.*")):
        res = _java("org.apache.zookeeper.server.persistence.TxnLogToolkit", "-d", str(log))
        assert res.returncode == 0, res.stderr
        assert "EOF reached after" in res.stdout
        out = io.StringIO()
        assert zk_inspect.main([str(log)], out=out) == 0

        def strip_dates(text: str) -> list[str]:
            return [line[line.index(" session 0x"):] if " session 0x" in line else line
                    for line in text.splitlines()]
        assert strip_dates(res.stdout) == strip_dates(out.getvalue())


def test_apache_reads_a_gz_snapshot_we_wrote(tmp_path: Path) -> None:
    vdir = tmp_path / "version-2"
    vdir.mkdir()
    nodes = [("/", b"", -1, _stat(0, 0, 1, cversion=1)), ("/zookeeper", b"", -1, _stat(0, 0, 0)),
             ("/a", b"gz", -1, _stat(1, 1, 1))]
    p = write_snapshot(vdir, 1, {}, {}, nodes, compression="gz")
    res = _java("org.apache.zookeeper.server.SnapshotFormatter", str(p))
    assert res.returncode == 0, res.stderr
    assert "ZNode Details (count=4)" in res.stdout and "\n/a\n" in res.stdout


def test_snapshot_compressed_by_apache_reads_back(tmp_path: Path) -> None:
    results = {}
    for method in ("gz", "snappy"):
        srv = make_server("apache", tmp_path / method, extra_cfg={"snapshot.compression.method": method})
        srv.start(timeout_s=60)
        client = kazoo.KazooClient(hosts=srv.hosts, timeout=30)
        client.start(timeout=15)
        try:
            client.create("/c", method.encode() * 1000)
        finally:
            client.stop()
            client.close()
            srv.stop()
        srv.start(timeout_s=60)  # start-up snapshot holds /c
        srv.stop()
        snaps = sorted((srv.data_dir / "version-2").glob(f"snapshot.*.{method}"),
                       key=lambda p: int(p.name.split(".")[1], 16))
        assert snaps, method
        snap = read_snapshot(snaps[-1])
        results[method] = {p: d for p, d, *_ in snap.nodes}["/c"]
    assert results == {"gz": b"gz" * 1000, "snappy": b"snappy" * 1000}

