"""Property tests of request handling: prepare (validation through the outstanding-change
overlay) and apply must agree with a simple model, whether txns are applied one at a
time or many are prepared before any is applied (group commit)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from zkpy.proto.constants import OpCode
from zkpy.proto.messages import encode_multi_request
from zkpy.proto.records import ACL, CheckVersionRequest, CreateRequest, DeleteRequest, Id, SetDataRequest
from zkpy.server.database import Database
from zkpy.server.prep import Preparer
from zkpy.tree.acl import AuthRegistry

OPEN = [ACL(31, Id("world", "anyone"))]
PATHS = ["/a", "/b", "/a/x", "/a/x/y"]
AUTH = [Id("ip", "127.0.0.1")]

create = st.builds(lambda p, d, seq: (OpCode.create, CreateRequest(p, d, OPEN, 2 if seq else 0)),
                   st.sampled_from(PATHS), st.binary(max_size=3), st.booleans())
delete = st.builds(lambda p, v: (OpCode.delete, DeleteRequest(p, v)), st.sampled_from(PATHS), st.integers(-1, 2))
set_data = st.builds(lambda p, d, v: (OpCode.setData, SetDataRequest(p, d, v)),
                     st.sampled_from(PATHS), st.binary(max_size=3), st.integers(-1, 2))
check = st.builds(lambda p, v: (OpCode.check, CheckVersionRequest(p, v)), st.sampled_from(PATHS),
                  st.integers(-1, 2))
single = st.one_of(create, delete, set_data)
multi = st.lists(st.one_of(create, delete, set_data, check), min_size=1, max_size=4).map(
    lambda ops: (OpCode.multi, ops))
request = st.one_of(single, single, multi)


def body_of(op: int, rec: object) -> bytes:
    if op == OpCode.multi:
        out = bytearray()
        encode_multi_request(rec, out)  # type: ignore[arg-type]
        return bytes(out)
    return rec.to_bytes()  # type: ignore[attr-defined]


class Server:
    """A database with its preparer, as the server wires them (no network)."""

    def __init__(self, fast_paths: bool = True) -> None:
        self.db = Database()
        self.zxid = 0
        self.prep = Preparer(self.db.tree, AuthRegistry(), self._next, lambda sid: None, False,
                             clock_ms=lambda: 1000)
        self.prep.fast_paths = fast_paths
        self.entries: list[bytes] = []

    def _next(self) -> int:
        self.zxid += 1
        return self.zxid

    def run(self, requests: list[tuple[int, object]], batch: bool) -> list[tuple]:
        prepared = []
        results = []
        for op, rec in requests:
            p = self.prep.prepare(op, body_of(op, rec), 7, len(prepared), AUTH)
            if batch:
                prepared.append(p)
            else:
                results.append(self._apply(p))
        for p in prepared:
            results.append(self._apply(p))
        return results

    def _apply(self, p) -> tuple:
        from zkpy.proto.txns import encode_txn

        self.entries.append(encode_txn(p.hdr, p.txn))
        rc = self.db.apply(p.hdr, p.txn)
        self.prep.retire(p.hdr.zxid)
        subs = tuple((s.type, s.err, s.path) for s in rc.multi or ())
        return (rc.type, rc.err if p.error is None else p.error.code, rc.path, subs)

    def dump(self) -> dict:
        return {path: (node.data, node.wire_stat()) for path, node in self.db.tree.iter_nodes()}


@dataclass
class Model:
    """What ZooKeeper promises: nodes with data and versions; parents must exist; no orphans."""

    nodes: dict[str, list] = field(default_factory=lambda: {"/": [b"", 0, 0]})  # data, version, creates

    def apply(self, op: int, rec) -> int:
        if op == OpCode.create:
            parent = rec.path[: rec.path.rfind("/")] or "/"
            if parent not in self.nodes:
                return -101
            path = rec.path
            if rec.flags == 2:
                path = f"{rec.path}{self.nodes[parent][2]:010d}"
            if path in self.nodes:
                return -110
            self.nodes[parent][2] += 1
            self.nodes[path] = [rec.data, 0, 0]
            return 0
        if op == OpCode.delete:
            if rec.path not in self.nodes:
                return -101
            if rec.version not in (-1, self.nodes[rec.path][1]):
                return -103
            if any(p.startswith(rec.path + "/") for p in self.nodes):
                return -111
            del self.nodes[rec.path]
            return 0
        if op in (OpCode.setData, OpCode.check):
            if rec.path not in self.nodes:
                return -101
            if rec.version not in (-1, self.nodes[rec.path][1]):
                return -103
            if op == OpCode.setData:
                self.nodes[rec.path][0] = rec.data
                self.nodes[rec.path][1] += 1
            return 0
        raise AssertionError(op)

    def apply_request(self, op: int, rec) -> int:
        if op != OpCode.multi:
            return self.apply(op, rec)
        saved = {k: list(v) for k, v in self.nodes.items()}
        for sub_op, sub in rec:
            err = self.apply(sub_op, sub)
            if err:
                self.nodes = saved
                return err
        return 0


@settings(max_examples=400, deadline=None)
@given(requests=st.lists(request, min_size=3, max_size=25))
def test_batched_prepare_gives_the_same_answers_and_tree_as_one_at_a_time(requests) -> None:
    one, many = Server(), Server()
    assert one.run(requests, batch=False) == many.run(requests, batch=True)
    assert one.dump() == many.dump()
    assert not many.prep.outstanding and not many.prep.by_path


@settings(max_examples=300, deadline=None)
@given(requests=st.lists(request, min_size=3, max_size=30), lag=st.integers(1, 6))
def test_applying_behind_preparing_gives_the_same_answers_and_tree(requests, lag: int) -> None:
    # Group commit as it runs: txns are applied while later ones are being prepared, so change
    # records retire while the records of the same paths are still changing (in place too).
    one, pipelined = Server(), Server()
    expected = one.run(requests, batch=False)
    prepared, results = [], []
    for op, rec in requests:
        prepared.append(pipelined.prep.prepare(op, body_of(op, rec), 7, len(prepared), AUTH))
        if len(prepared) - len(results) > lag:
            results.append(pipelined._apply(prepared[len(results)]))
    for p in prepared[len(results):]:
        results.append(pipelined._apply(p))
    assert results == expected
    assert pipelined.dump() == one.dump()
    assert not pipelined.prep.outstanding and not pipelined.prep.by_path


@settings(max_examples=300, deadline=None)
@given(requests=st.lists(request, min_size=3, max_size=25))
def test_answers_and_tree_match_the_model(requests) -> None:
    server, model = Server(), Model()
    results = server.run(requests, batch=True)
    for (op, rec), (_type, err, _path, _subs) in zip(requests, results, strict=True):
        assert err == model.apply_request(op, rec), (op, rec)
    tree = {p: n.data for p, n in server.db.tree.iter_nodes() if not p.startswith("/zookeeper")}
    assert tree == {p: v[0] for p, v in model.nodes.items()}
    for path, (_data, version, _creates) in model.nodes.items():
        node = server.db.tree.get_node(path)
        assert node is not None and node.persisted()[4] == version


@settings(max_examples=300, deadline=None)
@given(requests=st.lists(request, min_size=3, max_size=25), batch=st.booleans())
def test_fast_paths_make_the_same_txns_as_the_general_path(requests, batch) -> None:
    fast, general = Server(fast_paths=True), Server(fast_paths=False)
    assert fast.run(requests, batch) == general.run(requests, batch)
    assert fast.entries == general.entries  # byte for byte, as logged and replicated
    assert fast.dump() == general.dump()


# Names the fast create path must send to the general one or refuse the same way: empty, dot
# names, control characters, DEL and C1 controls, the specials block, valid non-ASCII.
ODD_NAMES = ["", ".", "..", "...", "a.", "\x01", "x\x1fy", "\x7f", "\u0085", "\ufff0", "é", "名前", " ", "a b"]
odd_create = st.builds(lambda parent, name, seq: (OpCode.create, CreateRequest(parent + name, b"", OPEN,
                                                                              2 if seq else 0)),
                       st.sampled_from(["/", "/a/", "/a/x/"]), st.sampled_from(ODD_NAMES), st.booleans())


@settings(max_examples=200, deadline=None)
@given(requests=st.lists(st.one_of(create, odd_create, delete, set_data), min_size=1, max_size=20))
def test_fast_create_treats_odd_names_as_the_general_path_does(requests) -> None:
    fast, general = Server(fast_paths=True), Server(fast_paths=False)
    assert fast.run(requests, False) == general.run(requests, False)
    assert fast.entries == general.entries
    assert fast.dump() == general.dump()


@settings(max_examples=200, deadline=None)
@given(requests=st.lists(request, min_size=1, max_size=20))
def test_raw_txn_bytes_of_the_fast_paths_equal_the_encoded_txn(requests) -> None:
    from zkpy.proto.txns import encode_txn

    server = Server()
    for op, rec in requests:
        p = server.prep.prepare(op, body_of(op, rec), 7, 1, AUTH)
        if p.raw is not None:
            assert p.raw == p.txn.to_bytes()
        assert p.entry() == encode_txn(p.hdr, p.txn)
        server.db.apply(p.hdr, p.txn)
        server.prep.retire(p.hdr.zxid)
