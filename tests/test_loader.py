"""The bulk loader and the replay fast path build exactly the tree the one-by-one paths build.

Node for node (data, ACL id, packed stat, children in order) and index for index (ephemerals,
containers, TTLs, quotas, ACL cache with its reference counts, counters, last zxid), from
snapshots of random trees and over random logs replayed on top of them; and the fast txn
decoder against the schema's codec, byte for byte and error for error.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkpy.proto import txns as txn_codec
from zkpy.proto.constants import CONTAINER_EPHEMERAL_OWNER, OpCode
from zkpy.proto.records import (
    ACL,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateSessionTxn,
    CreateTTLTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    Id,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
)
from zkpy.proto.txns import TxnDecodeError, decode_txn, encode_multi, encode_txn
from zkpy.server.database import Database
from zkpy.storage.errors import CorruptSnapshotError
from zkpy.storage.recovery import load_tree, recover
from zkpy.storage.snapshot import SnapshotReader, write_snapshot
from zkpy.tree.datatree import DataTree
from zkpy.tree.loader import Replayer, SnapshotLoadError, load_nodes
from zkpy.tree.node import ttl_owner

OPEN = [ACL(31, Id("world", "anyone"))]
READ = [ACL(1, Id("world", "anyone"))]
DIGEST = [ACL(31, Id("digest", "u:h=")), ACL(1, Id("ip", "10.0.0.0/8"))]
ACL_CHOICES: list[list[ACL] | None] = [None, OPEN, READ, DIGEST, []]
PATHS = ["/a", "/a/b", "/a/b/c", "/a/d", "/a/d/e", "/f", "/f/g", "/\u00e9t\u00e9", "/\u00e9t\u00e9/x",
         "/zookeeper/x", "/zookeeper/quota/a", "/zookeeper/quota/a/zookeeper_limits",
         "/zookeeper/quota/a/zookeeper_stats", "/zookeeper/quota/f", "/zookeeper/quota/f/zookeeper_limits",
         "/zookeeper/quota/f/zookeeper_stats", "/missing/x", "/a/"]
SESSIONS = [0x100, 0x200, 0x300]
KINDS = ["create", "create2", "create_eph", "container", "ttl", "set", "delete", "close", "session", "error",
         "set_acl", "multi"]


# ---------------------------------------------------------------------- helpers


def state(tree: DataTree) -> dict[str, Any]:
    """Everything a tree holds, comparable with ==."""
    nodes = [(path, node.data, node.acl, node.stat, None if node.children is None else list(node.children))
             for path, node in tree.iter_nodes()]
    return {
        "nodes": nodes,
        "ephemerals": {sid: sorted(paths) for sid, paths in tree.ephemerals.items()},
        "ephemeral_sessions": list(tree.ephemerals),
        "containers": sorted(tree.containers), "ttls": sorted(tree.ttls),
        "quota_paths": sorted(tree.quota_paths),
        "node_count": tree.node_count, "approximate_data_size": tree.approximate_data_size,
        "last_processed_zxid": tree.last_processed_zxid,
        "acls": tree.acls.entries(), "acl_refs": dict(tree.acls._refs),
        "acl_world_perms": dict(getattr(tree.acls, "world_perms", {})),
    }


class Log:
    """Builds txns with consecutive zxids and a clock, as a leader would log them."""

    def __init__(self, zxid: int = 0x100000000) -> None:
        self.zxid = zxid
        self.time = 1_700_000_000_000

    def hdr(self, op: int, client: int = SESSIONS[0]) -> TxnHeader:
        self.zxid += 1
        self.time += 7
        return TxnHeader(client, self.zxid & 0xFFFF, self.zxid, self.time, op)


def make_txn(log: Log, kind: str, path: str, data: bytes | None, acl_ix: int, pcv: int, session: int,
             version: int) -> tuple[TxnHeader, Any]:
    acl = ACL_CHOICES[acl_ix]
    if kind in ("create", "create2", "create_eph"):
        op = OpCode.create2 if kind == "create2" else OpCode.create
        return log.hdr(op, session), CreateTxn(path, data, acl, kind == "create_eph", pcv)
    if kind == "container":
        return log.hdr(OpCode.createContainer, session), CreateContainerTxn(path, data, acl, pcv)
    if kind == "ttl":
        return log.hdr(OpCode.createTTL, session), CreateTTLTxn(path, data, acl, pcv, 1000 + version)
    if kind == "set":
        return log.hdr(OpCode.setData, session), SetDataTxn(path, data, version)
    if kind == "delete":
        return log.hdr(OpCode.delete, session), DeleteTxn(path)
    if kind == "close":
        return log.hdr(OpCode.closeSession, session), CloseSessionTxn([path])
    if kind == "session":
        return log.hdr(OpCode.createSession, session), CreateSessionTxn(30000)
    if kind == "error":
        return log.hdr(OpCode.error, session), ErrorTxn(-101)
    if kind == "set_acl":
        return log.hdr(OpCode.setACL, session), SetACLTxn(path, acl if acl is not None else OPEN, version)
    assert kind == "multi"
    return log.hdr(OpCode.multi, session), encode_multi([
        (OpCode.create, CreateTxn(path + "m", data, acl, False, pcv)),
        (OpCode.setData, SetDataTxn(path, data, version)),
    ])


step = st.tuples(st.sampled_from(KINDS), st.sampled_from(PATHS), st.sampled_from([None, b"", b"v", b"x" * 40]),
                 st.integers(0, len(ACL_CHOICES) - 1), st.sampled_from([-1, 0, 1, 5]),
                 st.sampled_from(SESSIONS), st.integers(-1, 3))
# Mostly creates and setData, as real logs: what the fast path takes.
plain = st.tuples(st.sampled_from(["create", "create", "create2", "create_eph", "set", "set"]),
                  st.sampled_from(PATHS[:9]), st.sampled_from([None, b"", b"v"]), st.integers(0, 3),
                  st.sampled_from([-1, 1, 9]), st.sampled_from(SESSIONS), st.integers(-1, 3))
steps = st.lists(st.one_of(step, plain, plain), min_size=1, max_size=60)


def build(extended: bool, ops: list[tuple], log: Log) -> tuple[Database, list[tuple[TxnHeader, Any]]]:
    db = Database(extended)
    applied = []
    for op in ops:
        hdr, txn = make_txn(log, *op)
        db.apply(hdr, txn)
        applied.append((hdr, txn))
    return db, applied


def snapshot_of(db: Database, d: Path, order: str = "pre") -> Path:
    tree = db.tree
    nodes = [(path, node.data, node.acl, node.stat_persisted()) for path, node in tree.iter_nodes()]
    if order == "breadth":  # parents still before children, but not depth-first
        nodes = [nodes[0], *sorted(nodes[1:], key=lambda n: (n[0].count("/"), n[0]))]
    acls = {aid: tree.acls.lookup(aid) for aid in sorted({n[2] for n in nodes} - {-1})}
    return write_snapshot(d, tree.last_processed_zxid, dict(db.sessions), acls, nodes, fsync=False)


def slow_load(path: Path, extended: bool) -> DataTree:
    """What start-up did before the bulk loader: load_node for every node."""
    tree = DataTree(extended)
    reader = SnapshotReader(path)
    tree.acls.load(reader.acls)
    for p, data, acl_id, stat in reader.iter_nodes():
        tree.load_node(p, data, acl_id, stat)
    tree.acls.purge_unused()
    tree.setup_quotas()
    tree.last_processed_zxid = reader.zxid
    return tree


def fast_load(path: Path, extended: bool) -> DataTree:
    tree = DataTree(extended)
    load_tree(SnapshotReader(path), tree)
    return tree


@contextlib.contextmanager
def generic_decoding() -> Iterator[None]:
    saved = dict(txn_codec._FAST)
    txn_codec._FAST.clear()
    try:
        yield
    finally:
        txn_codec._FAST.update(saved)


def through_the_log(entries: list[tuple[TxnHeader, Any]]) -> list[Any]:
    return [decode_txn(encode_txn(hdr, txn)) for hdr, txn in entries]


# ---------------------------------------------------------------------- snapshots

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(ops=steps, extended=st.booleans(), order=st.sampled_from(["pre", "breadth"]))
def test_bulk_load_of_a_snapshot_equals_load_node_one_by_one(tmp_path: Path, ops, extended, order) -> None:
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    db, _ = build(extended, ops, Log())
    snap = snapshot_of(db, d, order)
    assert state(fast_load(snap, extended)) == state(slow_load(snap, extended))


def test_bulk_load_of_a_big_tree_with_every_kind_of_node(tmp_path: Path) -> None:
    log = Log()
    db = Database(True)
    for i in range(30):
        db.apply(log.hdr(OpCode.create), CreateTxn(f"/p{i}", b"p", OPEN, False, -1))
        for j in range(40):
            kind = j % 5
            path = f"/p{i}/n{j}"
            if kind == 0:
                db.apply(log.hdr(OpCode.create, SESSIONS[j % 3]), CreateTxn(path, b"e", READ, True, -1))
            elif kind == 1:
                db.apply(log.hdr(OpCode.createContainer), CreateContainerTxn(path, None, DIGEST, -1))
            elif kind == 2:
                db.apply(log.hdr(OpCode.createTTL), CreateTTLTxn(path, b"t" * j, OPEN, -1, 5000))
            else:
                db.apply(log.hdr(OpCode.create), CreateTxn(path, bytes(j), OPEN if j % 2 else None, False, -1))
                db.apply(log.hdr(OpCode.create), CreateTxn(path + "/deep", b"d", OPEN, False, -1))
    db.apply(log.hdr(OpCode.create), CreateTxn("/zookeeper/quota/p3", b"", OPEN, False, -1))
    db.apply(log.hdr(OpCode.create), CreateTxn("/zookeeper/quota/p3/zookeeper_limits", b"count=10,bytes=-1",
                                               OPEN, False, -1))
    db.apply(log.hdr(OpCode.create), CreateTxn("/zookeeper/quota/p3/zookeeper_stats", b"count=0,bytes=0",
                                               OPEN, False, -1))
    snap = snapshot_of(db, tmp_path)
    fast = fast_load(snap, True)
    assert state(fast) == state(slow_load(snap, True))
    assert fast.quota_paths == {"/p3"} and len(fast.containers) == 240 and len(fast.ttls) == 240
    assert fast.get_node("/zookeeper/quota/p3/zookeeper_stats").data.startswith(b"count=57,")  # 1 + 40 + 16
    assert state(fast)["nodes"] == state(db.tree)["nodes"]


def test_bulk_load_of_a_compressed_snapshot_read_in_chunks(tmp_path: Path) -> None:
    log = Log()
    db = Database()
    for i in range(12):
        db.apply(log.hdr(OpCode.create), CreateTxn(f"/d{i}", None, OPEN, False, -1))
        for j in range(250):  # ~3 MB in all: several of the reader's 1 MB chunks
            db.apply(log.hdr(OpCode.create), CreateTxn(f"/d{i}/n{j}", bytes([j]) * (900 + i), DIGEST, False, -1))
    tree = db.tree
    nodes = [(path, node.data, node.acl, node.stat_persisted()) for path, node in tree.iter_nodes()]
    acls = {aid: tree.acls.lookup(aid) for aid in sorted({n[2] for n in nodes} - {-1})}
    snap = write_snapshot(tmp_path, log.zxid, {}, acls, nodes, compression="gz", fsync=False)
    fast = fast_load(snap, False)
    assert state(fast) == state(slow_load(snap, False))
    assert state(fast)["nodes"] == state(tree)["nodes"]


def test_a_node_before_its_parent_is_a_corrupt_snapshot(tmp_path: Path) -> None:
    tree = DataTree()
    nodes = [(p, n.data, n.acl, n.stat_persisted()) for p, n in tree.iter_nodes()]
    nodes.append(("/a/b", b"", -1, nodes[0][3]))
    snap = write_snapshot(tmp_path, 5, {}, {}, nodes, fsync=False)
    with pytest.raises(CorruptSnapshotError, match="unable to find parent /a of path /a/b"):
        load_tree(SnapshotReader(snap), DataTree())


def test_recovery_falls_back_to_the_older_snapshot_when_the_newer_has_an_orphan(tmp_path: Path) -> None:
    log = Log(0)
    db = Database()
    db.apply(log.hdr(OpCode.create), CreateTxn("/kept", b"1", OPEN, False, -1))
    data = tmp_path / "data"
    (data / "version-2").mkdir(parents=True)
    snapshot_of(db, data / "version-2")
    nodes = [(p, n.data, n.acl, n.stat_persisted()) for p, n in db.tree.iter_nodes()]
    nodes.append(("/gone/child", b"", -1, nodes[0][3]))
    write_snapshot(data / "version-2", log.zxid + 1, {}, {1: OPEN}, nodes, fsync=False)

    def load(reader: SnapshotReader) -> DataTree:
        tree = DataTree()
        load_tree(reader, tree)
        return tree

    rec = recover(data, load=load, trust_empty_snapshot=True)
    assert rec.snapshot.get_node("/kept").data == b"1" and rec.snapshot_zxid == log.zxid
    assert "unable to find parent" in rec.report.skipped_snapshots[0][1]


def test_the_loader_refuses_a_stream_without_a_root() -> None:
    with pytest.raises(SnapshotLoadError):
        load_nodes(DataTree(), {}, [])
    with pytest.raises(SnapshotLoadError):
        load_nodes(DataTree(), {}, [("/a", b"", -1, bytes(60))])


# ---------------------------------------------------------------------- log replay


def replay_both(base: Database, snap: Path | None, extended: bool, entries: list[Any]
                ) -> tuple[Database, Database, Replayer]:
    def start() -> Database:
        if snap is None:
            return Database(extended)
        db = Database(extended)
        reader = SnapshotReader(snap)
        load_tree(reader, db.tree)
        db.sessions = dict(reader.sessions)
        return db

    slow, fast = start(), start()
    for e in entries:
        slow.apply(e.hdr, e.txn, replay=True)
    replayer = Replayer(fast.tree, lambda hdr, txn: fast.apply(hdr, txn, replay=True))
    assert replayer.replay(entries) == len(entries)
    return slow, fast, replayer


@FUZZ
@given(before=steps, after=steps, extended=st.booleans(), fuzzy=st.integers(0, 8))
def test_replay_fast_path_equals_apply_one_by_one(tmp_path: Path, before, after, extended, fuzzy) -> None:
    """From a snapshot taken ``fuzzy`` txns late (as a fuzzy snapshot is), replay the log after
    the snapshot's nominal zxid: creates find their nodes, deletes miss them, and so on."""
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    log = Log()
    db, first = build(extended, before, log)
    _, rest = build(extended, after, log)  # only for its txns: replayed below on db's snapshot
    logged = first[len(first) - min(fuzzy, len(first)):] + rest
    snap = snapshot_of(db, d)
    slow, fast, _ = replay_both(db, snap, extended, through_the_log(logged))
    assert state(fast.tree) == state(slow.tree)
    assert fast.sessions == slow.sessions


@FUZZ
@given(ops=steps, extended=st.booleans())
def test_replay_from_an_empty_tree_equals_apply_one_by_one(ops, extended) -> None:
    db, applied = build(extended, ops, Log())
    slow, fast, _ = replay_both(db, None, extended, through_the_log(applied))
    assert state(fast.tree) == state(slow.tree)


def test_a_log_of_plain_creates_and_set_data_takes_the_fast_path() -> None:
    log = Log()
    entries = []
    for i in range(20):
        entries.append((log.hdr(OpCode.create), CreateTxn(f"/d{i}", b"", OPEN, False, -1)))
        for j in range(50):
            entries.append((log.hdr(OpCode.create, SESSIONS[j % 3]), CreateTxn(f"/d{i}/n{j}", b"v" * j, OPEN,
                                                                                j % 7 == 0, j + 1)))
        entries.append((log.hdr(OpCode.setData), SetDataTxn(f"/d{i}/n3", None, 4)))
    entries.append((log.hdr(OpCode.delete), DeleteTxn("/d0/n1")))
    entries.append((log.hdr(OpCode.setData), SetDataTxn("/d0/n2", b"after a delete", 1)))
    slow, fast, replayer = replay_both(Database(), None, False, through_the_log(entries))
    assert state(fast.tree) == state(slow.tree)
    assert replayer.slow == 1 and replayer.fast == len(entries) - 1
    assert fast.tree.ephemerals[SESSIONS[0]] and fast.tree.node_count == 4 + 20 + 20 * 50 - 1


def test_replay_forgets_parents_and_acls_a_delete_may_have_dropped() -> None:
    log = Log()
    entries = through_the_log([
        (log.hdr(OpCode.create), CreateTxn("/a", b"", DIGEST, False, -1)),
        (log.hdr(OpCode.create), CreateTxn("/a/b", b"", DIGEST, False, -1)),
        (log.hdr(OpCode.delete), DeleteTxn("/a/b")),
        (log.hdr(OpCode.delete), DeleteTxn("/a")),  # the ACL's last reference: its id is gone
        (log.hdr(OpCode.create), CreateTxn("/a", b"again", DIGEST, False, -1)),  # a new node, a new id
        (log.hdr(OpCode.create), CreateTxn("/a/c", b"", DIGEST, False, -1)),  # under the new /a
    ])
    slow, fast, replayer = replay_both(Database(), None, False, entries)
    assert state(fast.tree) == state(slow.tree)
    # 1 is /zookeeper/config's READ_ACL_UNSAFE, 2 the first /a's, dropped with it
    assert list(fast.tree.get_node("/a").children) == ["c"] and fast.tree.get_node("/a/c").acl == 3
    assert replayer.fast == 4


def test_replay_with_a_listener_reports_every_change_through_apply() -> None:
    log = Log()
    entries = through_the_log([(log.hdr(OpCode.create), CreateTxn("/a", b"", OPEN, False, -1)),
                               (log.hdr(OpCode.setData), SetDataTxn("/a", b"x", 1))])
    seen: list[str] = []

    class Listener:
        def node_created(self, path: str) -> None:
            seen.append("created " + path)

        def node_deleted(self, path: str) -> None:
            seen.append("deleted " + path)

        def data_changed(self, path: str) -> None:
            seen.append("changed " + path)

    db = Database()
    db.tree.listener = Listener()
    Replayer(db.tree, lambda hdr, txn: db.apply(hdr, txn, replay=True)).replay(entries)
    assert seen == ["created /a", "changed /a"]


def test_a_container_owner_in_a_snapshot_is_indexed(tmp_path: Path) -> None:
    log = Log()
    db = Database(True)
    db.apply(log.hdr(OpCode.createContainer), CreateContainerTxn("/c", b"", OPEN, -1))
    db.apply(log.hdr(OpCode.createTTL), CreateTTLTxn("/t", b"", OPEN, -1, 100))
    snap = snapshot_of(db, tmp_path)
    tree = fast_load(snap, True)
    assert tree.containers == {"/c"} and tree.ttls == {"/t"}
    assert tree.get_node("/c").ephemeral_owner == CONTAINER_EPHEMERAL_OWNER
    assert tree.get_node("/t").ephemeral_owner == ttl_owner(100)


# ---------------------------------------------------------------------- the fast decoder

creates = st.builds(CreateTxn, st.one_of(st.none(), st.text(max_size=12)), st.one_of(st.none(), st.binary(max_size=20)),
                    st.sampled_from(ACL_CHOICES), st.booleans(), st.integers(-(2**31), 2**31 - 1))
set_datas = st.builds(SetDataTxn, st.one_of(st.none(), st.text(max_size=12)),
                      st.one_of(st.none(), st.binary(max_size=20)), st.integers(-(2**31), 2**31 - 1))
deletes = st.builds(DeleteTxn, st.one_of(st.none(), st.text(max_size=12)))
records = st.one_of(st.tuples(st.sampled_from([OpCode.create, OpCode.create2]), creates),
                    st.tuples(st.just(OpCode.setData), set_datas),
                    st.tuples(st.sampled_from([OpCode.delete, OpCode.deleteContainer]), deletes))


def decode_or_error(raw: bytes) -> Any:
    try:
        e = decode_txn(raw)
    except TxnDecodeError as err:
        return ("error", str(err))
    return (e.hdr, e.txn, e.digest)


@settings(max_examples=400, deadline=None)
@given(rec=records, digest=st.booleans(), cut=st.integers(0, 200), junk=st.binary(max_size=3))
def test_fast_decoding_equals_the_schema_codec_whole_cut_or_padded(rec, digest, cut, junk) -> None:
    from zkpy.proto.records import TxnDigest

    op, txn = rec
    raw = encode_txn(TxnHeader(7, 8, 9, 10, op), txn, TxnDigest(2, 99) if digest else None)
    for variant in (raw, raw[:max(0, len(raw) - cut)], raw + junk):
        fast = decode_or_error(variant)
        with generic_decoding():
            generic = decode_or_error(variant)
        assert fast == generic
    assert decode_txn(raw).txn == txn


def test_decoded_creates_share_acl_records_but_not_lists() -> None:
    a = decode_txn(encode_txn(TxnHeader(1, 1, 1, 1, OpCode.create), CreateTxn("/a", b"", DIGEST, False, 1)))
    b = decode_txn(encode_txn(TxnHeader(1, 2, 2, 2, OpCode.create), CreateTxn("/b", b"", DIGEST, False, 1)))
    assert a.txn.acl == b.txn.acl == DIGEST
    assert a.txn.acl is not b.txn.acl
    b.txn.acl.append(ACL(1, Id("world", "anyone")))
    c = decode_txn(encode_txn(TxnHeader(1, 3, 3, 3, OpCode.create), CreateTxn("/c", b"", DIGEST, False, 1)))
    assert c.txn.acl == DIGEST
