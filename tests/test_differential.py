"""Differential tests: the same request scripts against Apache ZooKeeper 3.8 and zkpy.

Each scenario drives raw wire clients (tests/support/wire.py) and records every
reply (error code, zxid, decoded body) and every watch notification.  The two
transcripts must be equal after normalizing only what legitimately differs:
zxids are made relative to the scenario's first, times are masked, session ids
become client numbers.  Both servers run with extendedTypesEnabled=true.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.servers import ServerProcess, apache_available, apache_missing_reason, make_server
from tests.support.wire import WireClient
from zkpy.proto.constants import OpCode
from zkpy.proto.jute import Record
from zkpy.proto.messages import encode_multi_request
from zkpy.proto.records import (
    ACL,
    AddWatchRequest,
    AuthPacket,
    CheckVersionRequest,
    CheckWatchesRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    Id,
    RemoveWatchesRequest,
    SetACLRequest,
    SetDataRequest,
    SetWatches2,
    Stat,
    SyncRequest,
)
from zkpy.tree.acl import generate_digest

pytestmark = pytest.mark.apache

OPEN = [ACL(31, Id("world", "anyone"))]
# A short tick so that a session expiry scenario takes about a second on both servers.
EXTENDED = {"extendedTypesEnabled": "true", "tickTime": "500"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    if not apache_available():
        pytest.skip(apache_missing_reason())
    base = tmp_path_factory.mktemp("diff")
    apache = make_server("apache", base / "apache", extra_cfg=EXTENDED,
                         env={"zookeeper.extendedTypesEnabled": "true"})
    zkpy = make_server("zkpy", base / "zkpy", extra_cfg=EXTENDED)
    apache.start(timeout_s=60)
    try:
        zkpy.start(timeout_s=60)
        try:
            yield {"apache": apache, "zkpy": zkpy}
        finally:
            zkpy.stop()
    finally:
        apache.stop()


class Recorder:
    """Runs a scenario's steps against one server and keeps a normalized transcript."""

    def __init__(self, srv: ServerProcess, root: str) -> None:
        self.srv = srv
        self.root = root
        self.clients: list[WireClient] = []
        self.transcript: list[object] = []
        self.base_zxid: int | None = None

    def client(self, timeout_ms: int = 10000) -> WireClient:
        c = WireClient(self.srv.host, self.srv.port, timeout_ms=timeout_ms).connect()
        self.clients.append(c)
        if self.base_zxid is None:
            r = c.call(OpCode.getData, GetDataRequest("/", False))
            self.base_zxid = r.zxid
        return c

    def p(self, path: str) -> str:
        """Scenario paths live under a per-run root so the two servers stay comparable."""
        return self.root + path if path != "/" else self.root

    # -------------------------------------------------------------- normalization

    def _zxid(self, z: int) -> object:
        assert self.base_zxid is not None
        return ("Z", z - self.base_zxid) if z >= self.base_zxid else z

    def _session(self, sid: int) -> object:
        for i, c in enumerate(self.clients):
            if c.session_id == sid:
                return ("S", i)
        return sid

    def norm(self, value: object) -> object:
        if isinstance(value, Stat):
            return ("Stat", self._zxid(value.czxid), self._zxid(value.mzxid), value.version, value.cversion,
                    value.aversion, self._session(value.ephemeralOwner), value.dataLength, value.numChildren,
                    self._zxid(value.pzxid))
        if isinstance(value, str):
            return value.replace(self.root, "<root>") if self.root else value
        if isinstance(value, bytes):
            return value
        if isinstance(value, list | tuple):
            items = [self.norm(v) for v in value]
            return type(value)(items) if isinstance(value, tuple) else items
        if isinstance(value, Record):
            fields = {f.name: self.norm(getattr(value, f.name)) for f in dataclasses.fields(value)}
            for key in ("children", "ephemerals", "clientInfo"):
                if isinstance(fields.get(key), list):
                    fields[key] = sorted(fields[key], key=repr)  # these are HashSets in ZooKeeper
            return (type(value).__name__, fields)
        return value

    def step(self, label: str, c: WireClient, op: int, record: Record | bytes | None = None) -> object:
        r = c.call(op, record)
        entry = (label, r.err, self._zxid(r.zxid) if r.zxid > 0 else r.zxid, self.norm(r.body))
        self.transcript.append(entry)
        return r

    def events(self, label: str, c: WireClient, n: int) -> None:
        evs = c.wait_events(n, timeout_s=5.0)
        self.transcript.append((label, sorted((e.type, e.state, self.norm(e.path)) for e in evs)))
        c.events.clear()

    def note(self, label: str, value: object) -> None:
        self.transcript.append((label, self.norm(value)))

    def close(self) -> None:
        # Close sessions explicitly: an expiry later would take a zxid in the next scenario at a
        # moment that differs between the two servers.
        for c in self.clients:
            c.close()


def run_both(servers: dict[str, ServerProcess], scenario: Callable[[Recorder], None], name: str) -> None:
    results = {}
    for kind, srv in servers.items():
        rec = Recorder(srv, f"/{name}-{int(time.time() * 1000)}")
        try:
            setup = rec.client()
            setup.call(OpCode.create, CreateRequest(rec.root, b"", OPEN, 0))
            scenario(rec)
        finally:
            rec.close()
        results[kind] = rec.transcript
    apache, zkpy = results["apache"], results["zkpy"]
    for i, (a, z) in enumerate(zip(apache, zkpy, strict=False)):
        assert z == a, f"step {i} differs:\n apache: {a}\n zkpy:   {z}"
    assert len(zkpy) == len(apache)


def multi(ops: list[tuple[int, Record]]) -> bytes:
    out = bytearray()
    encode_multi_request(ops, out)
    return bytes(out)


# ---------------------------------------------------------------------- scenarios


def scenario_crud(r: Recorder) -> None:
    c = r.client()
    p = r.p
    r.step("create", c, OpCode.create, CreateRequest(p("/a"), b"hello", OPEN, 0))
    r.step("create again", c, OpCode.create, CreateRequest(p("/a"), b"x", OPEN, 0))
    r.step("create no parent", c, OpCode.create, CreateRequest(p("/nope/b"), b"", OPEN, 0))
    r.step("create2", c, OpCode.create2, CreateRequest(p("/a/b"), b"", OPEN, 0))
    r.step("create null data", c, OpCode.create2, CreateRequest(p("/a/n"), None, OPEN, 0))
    r.step("get", c, OpCode.getData, GetDataRequest(p("/a"), False))
    r.step("get null", c, OpCode.getData, GetDataRequest(p("/a/n"), False))
    r.step("get missing", c, OpCode.getData, GetDataRequest(p("/zz"), False))
    r.step("exists", c, OpCode.exists, ExistsRequest(p("/a"), False))
    r.step("exists missing", c, OpCode.exists, ExistsRequest(p("/zz"), False))
    r.step("set bad version", c, OpCode.setData, SetDataRequest(p("/a"), b"v", 7))
    r.step("set", c, OpCode.setData, SetDataRequest(p("/a"), b"v1", 0))
    r.step("set any", c, OpCode.setData, SetDataRequest(p("/a"), b"v2", -1))
    r.step("set missing", c, OpCode.setData, SetDataRequest(p("/zz"), b"v", -1))
    r.step("children", c, OpCode.getChildren, GetChildrenRequest(p("/a"), False))
    r.step("children2", c, OpCode.getChildren2, GetChildren2Request(p("/a"), False))
    r.step("children missing", c, OpCode.getChildren, GetChildrenRequest(p("/zz"), False))
    r.step("delete not empty", c, OpCode.delete, DeleteRequest(p("/a"), -1))
    r.step("delete bad version", c, OpCode.delete, DeleteRequest(p("/a/b"), 3))
    r.step("delete", c, OpCode.delete, DeleteRequest(p("/a/b"), 0))
    r.step("delete missing", c, OpCode.delete, DeleteRequest(p("/a/b"), -1))
    r.step("parent after delete", c, OpCode.exists, ExistsRequest(p("/a"), False))
    r.step("all children number", c, OpCode.getAllChildrenNumber, GetAllChildrenNumberRequest(p("/")))
    r.step("sync", c, OpCode.sync, SyncRequest(p("/a")))
    r.step("check ok", c, OpCode.multi, multi([(OpCode.check, CheckVersionRequest(p("/a"), 2))]))


def scenario_bad_paths(r: Recorder) -> None:
    c = r.client()
    p = r.p
    for label, path in [("no slash", "a"), ("trailing", p("/a/")), ("double", p("//a")), ("dot", p("/./a")),
                        ("dotdot", p("/../a")), ("nul", p("/a\0b")), ("ctrl", p("/a\x01"))]:
        r.step(f"create {label}", c, OpCode.create, CreateRequest(path, b"", OPEN, 0))
        r.step(f"set {label}", c, OpCode.setData, SetDataRequest(path, b"", -1))
        r.step(f"delete {label}", c, OpCode.delete, DeleteRequest(path, -1))
        r.step(f"get {label}", c, OpCode.getData, GetDataRequest(path, False))
        r.step(f"exists {label}", c, OpCode.exists, ExistsRequest(path, False))
    empty = c.call(OpCode.getData, GetDataRequest("", False))
    root = c.call(OpCode.getData, GetDataRequest("/", False))
    r.note("empty path reads the root", (empty.err, empty.body == root.body))
    r.step("delete root", c, OpCode.delete, DeleteRequest("/", -1))
    r.step("delete /zookeeper", c, OpCode.delete, DeleteRequest("/zookeeper", -1))
    r.step("delete /zookeeper/quota", c, OpCode.delete, DeleteRequest("/zookeeper/quota", -1))
    r.step("get /zookeeper/config", c, OpCode.getData, GetDataRequest("/zookeeper/config", False))
    r.step("acl /zookeeper/config", c, OpCode.getACL, GetACLRequest("/zookeeper/config"))
    r.step("set /zookeeper/config", c, OpCode.setData, SetDataRequest("/zookeeper/config", b"x", -1))
    r.step("bad flags", c, OpCode.create, CreateRequest(p("/f"), b"", OPEN, 42))
    r.step("empty acl", c, OpCode.create, CreateRequest(p("/f"), b"", [], 0))
    r.step("null acl", c, OpCode.create, CreateRequest(p("/f"), b"", None, 0))


def scenario_sequential(r: Recorder) -> None:
    c = r.client()
    p = r.p
    r.step("parent", c, OpCode.create, CreateRequest(p("/q"), b"", OPEN, 0))
    for i in range(3):
        r.step(f"seq {i}", c, OpCode.create, CreateRequest(p("/q/n-"), b"", OPEN, 2))
    r.step("delete one", c, OpCode.delete, DeleteRequest(p("/q/n-0000000001"), -1))
    r.step("seq after delete", c, OpCode.create2, CreateRequest(p("/q/n-"), b"", OPEN, 2))
    r.step("ephemeral seq", c, OpCode.create, CreateRequest(p("/q/e-"), b"", OPEN, 3))
    r.step("plain", c, OpCode.create, CreateRequest(p("/q/plain"), b"", OPEN, 0))
    r.step("seq no prefix", c, OpCode.create, CreateRequest(p("/q/"), b"", OPEN, 2))
    r.step("parent stat", c, OpCode.exists, ExistsRequest(p("/q"), False))
    r.step("children2", c, OpCode.getChildren2, GetChildren2Request(p("/q"), False))


def scenario_ephemerals(r: Recorder) -> None:
    a = r.client()
    b = r.client()
    p = r.p
    r.step("eph", a, OpCode.create2, CreateRequest(p("/e1"), b"x", OPEN, 1))
    r.step("eph2", a, OpCode.create, CreateRequest(p("/e2"), b"", OPEN, 1))
    r.step("child of eph", a, OpCode.create, CreateRequest(p("/e1/c"), b"", OPEN, 0))
    r.step("seq child of eph", a, OpCode.create, CreateRequest(p("/e1/c"), b"", OPEN, 2))
    r.step("getEphemerals all", a, OpCode.getEphemerals, GetEphemeralsRequest("/"))
    r.step("getEphemerals prefix", a, OpCode.getEphemerals, GetEphemeralsRequest(p("/e1")))
    r.step("getEphemerals other", b, OpCode.getEphemerals, GetEphemeralsRequest(""))
    r.step("watch eph", b, OpCode.exists, ExistsRequest(p("/e1"), True))
    r.step("child watch root", b, OpCode.getChildren, GetChildrenRequest(p("/"), True))
    r.step("close a", a, OpCode.closeSession, None)
    a.close_socket()
    r.events("events after close", b, 2)
    r.step("eph gone", b, OpCode.exists, ExistsRequest(p("/e1"), False))
    r.step("children", b, OpCode.getChildren2, GetChildren2Request(p("/"), False))


def scenario_watches(r: Recorder) -> None:
    a = r.client()
    b = r.client()
    p = r.p
    r.step("create", a, OpCode.create, CreateRequest(p("/w"), b"", OPEN, 0))
    r.step("data watch", b, OpCode.getData, GetDataRequest(p("/w"), True))
    r.step("exist watch missing", b, OpCode.exists, ExistsRequest(p("/w/x"), True))
    r.step("child watch", b, OpCode.getChildren, GetChildrenRequest(p("/w"), True))
    r.step("check data watch", b, OpCode.checkWatches, CheckWatchesRequest(p("/w"), 2))
    r.step("check child watch", b, OpCode.checkWatches, CheckWatchesRequest(p("/w"), 1))
    r.step("check none", b, OpCode.checkWatches, CheckWatchesRequest(p("/nowatch"), 3))
    r.step("set", a, OpCode.setData, SetDataRequest(p("/w"), b"1", -1))
    r.step("set again (one-time)", a, OpCode.setData, SetDataRequest(p("/w"), b"2", -1))
    r.step("create child", a, OpCode.create, CreateRequest(p("/w/x"), b"", OPEN, 0))
    r.events("one-time events", b, 3)
    # Persistent and recursive watches.
    r.step("persistent", b, OpCode.addWatch, AddWatchRequest(p("/w"), 0))
    r.step("recursive", b, OpCode.addWatch, AddWatchRequest(p("/w/x"), 1))
    r.step("set w", a, OpCode.setData, SetDataRequest(p("/w"), b"3", -1))
    r.step("set w again", a, OpCode.setData, SetDataRequest(p("/w"), b"4", -1))
    r.step("create deep", a, OpCode.create, CreateRequest(p("/w/x/y"), b"", OPEN, 0))
    r.step("create deeper", a, OpCode.create, CreateRequest(p("/w/x/y/z"), b"", OPEN, 0))
    r.step("set deeper", a, OpCode.setData, SetDataRequest(p("/w/x/y/z"), b"d", -1))
    r.step("create sibling", a, OpCode.create, CreateRequest(p("/w/s"), b"", OPEN, 0))
    r.events("persistent events", b, 7)
    r.step("remove recursive", b, OpCode.removeWatches, RemoveWatchesRequest(p("/w/x"), 3))
    r.step("remove again", b, OpCode.removeWatches, RemoveWatchesRequest(p("/w/x"), 3))
    r.step("remove persistent data", b, OpCode.removeWatches, RemoveWatchesRequest(p("/w"), 2))
    r.step("set deeper 2", a, OpCode.setData, SetDataRequest(p("/w/x/y/z"), b"e", -1))
    r.step("delete sibling", a, OpCode.delete, DeleteRequest(p("/w/s"), -1))
    r.events("after removal", b, 1)
    # Delete fires data and child watches once each.
    r.step("data watch z", b, OpCode.getData, GetDataRequest(p("/w/x/y/z"), True))
    r.step("child watch z", b, OpCode.getChildren, GetChildrenRequest(p("/w/x/y/z"), True))
    r.step("delete z", a, OpCode.delete, DeleteRequest(p("/w/x/y/z"), -1))
    r.events("delete events", b, 1)


def scenario_set_watches(r: Recorder) -> None:
    a = r.client()
    b = r.client()
    p = r.p
    r.step("create d", a, OpCode.create, CreateRequest(p("/d"), b"", OPEN, 0))
    r.step("create c", a, OpCode.create, CreateRequest(p("/c"), b"", OPEN, 0))
    r.step("create gone", a, OpCode.create, CreateRequest(p("/gone"), b"", OPEN, 0))
    r.step("create quiet", a, OpCode.create, CreateRequest(p("/quiet"), b"", OPEN, 0))
    rel = r.clients[1].call(OpCode.exists, ExistsRequest(p("/d"), False)).zxid
    r.step("change d", a, OpCode.setData, SetDataRequest(p("/d"), b"x", -1))
    r.step("child of c", a, OpCode.create, CreateRequest(p("/c/k"), b"", OPEN, 0))
    r.step("delete gone", a, OpCode.delete, DeleteRequest(p("/gone"), -1))
    r.step("create born", a, OpCode.create, CreateRequest(p("/born"), b"", OPEN, 0))
    sw = SetWatches2(rel, [p("/d"), p("/gone"), p("/quiet")], [p("/born"), p("/unborn")], [p("/c"), p("/quiet")],
                     [p("/quiet")], [p("/c")])
    r.transcript.append(("setWatches2", b.call(OpCode.setWatches2, sw).err))
    r.events("missed events", b, 4)
    r.step("now quiet changes", a, OpCode.setData, SetDataRequest(p("/quiet"), b"q", -1))
    r.events("quiet event", b, 1)


def scenario_acl(r: Recorder) -> None:
    a = r.client()
    b = r.client()
    p = r.p
    r.transcript.append(("auth", a.call(OpCode.auth, AuthPacket(0, "digest", b"alice:secret")).err))
    digest = generate_digest("alice:secret")
    mine = [ACL(31, Id("digest", digest))]
    r.step("create digest", a, OpCode.create, CreateRequest(p("/s"), b"secret", mine, 0))
    r.step("create auth scheme", a, OpCode.create, CreateRequest(p("/s2"), b"", [ACL(31, Id("auth", ""))], 0))
    r.step("b auth scheme no auth", b, OpCode.create, CreateRequest(p("/s3"), b"", [ACL(31, Id("auth", ""))], 0))
    r.step("b bad scheme", b, OpCode.create, CreateRequest(p("/s3"), b"", [ACL(31, Id("nope", "x"))], 0))
    r.step("b bad digest id", b, OpCode.create, CreateRequest(p("/s3"), b"", [ACL(31, Id("digest", "x"))], 0))
    r.step("b bad ip", b, OpCode.create, CreateRequest(p("/s3"), b"", [ACL(31, Id("ip", "300.1.1.1"))], 0))
    r.step("b ip ok", b, OpCode.create, CreateRequest(p("/ip"), b"", [ACL(1, Id("ip", "127.0.0.0/8"))], 0))
    r.step("b get ip node", b, OpCode.getData, GetDataRequest(p("/ip"), False))
    r.step("b set ip node", b, OpCode.setData, SetDataRequest(p("/ip"), b"", -1))
    r.step("b ip other net", b, OpCode.create, CreateRequest(p("/ip2"), b"", [ACL(31, Id("ip", "10.0.0.0/8"))], 0))
    r.step("b get ip2", b, OpCode.getData, GetDataRequest(p("/ip2"), False))
    r.step("b get", b, OpCode.getData, GetDataRequest(p("/s"), False))
    r.step("b exists ok", b, OpCode.exists, ExistsRequest(p("/s"), False))
    r.step("b set", b, OpCode.setData, SetDataRequest(p("/s"), b"x", -1))
    r.step("b child", b, OpCode.create, CreateRequest(p("/s/c"), b"", OPEN, 0))
    r.step("b getACL", b, OpCode.getACL, GetACLRequest(p("/s")))
    r.step("b children", b, OpCode.getChildren, GetChildrenRequest(p("/s"), False))
    r.step("a get", a, OpCode.getData, GetDataRequest(p("/s"), False))
    r.step("a getACL", a, OpCode.getACL, GetACLRequest(p("/s")))
    r.step("a getACL s2", a, OpCode.getACL, GetACLRequest(p("/s2")))
    r.step("a child", a, OpCode.create, CreateRequest(p("/s/c"), b"", OPEN, 0))
    r.step("b delete child", b, OpCode.delete, DeleteRequest(p("/s/c"), -1))
    r.step("a setACL bad version", a, OpCode.setACL, SetACLRequest(p("/s"), OPEN, 5))
    r.step("a setACL read-only for all", a, OpCode.setACL,
           SetACLRequest(p("/s"), [ACL(1, Id("world", "anyone")), ACL(31, Id("digest", digest))], 0))
    r.step("b get now", b, OpCode.getData, GetDataRequest(p("/s"), False))
    r.step("b getACL now", b, OpCode.getACL, GetACLRequest(p("/s")))
    r.step("b setACL", b, OpCode.setACL, SetACLRequest(p("/s"), OPEN, -1))
    r.step("whoami a", a, OpCode.whoAmI, None)
    r.step("whoami b", b, OpCode.whoAmI, None)


def scenario_multi(r: Recorder) -> None:
    c = r.client()
    p = r.p
    ok = multi([
        (OpCode.create, CreateRequest(p("/m"), b"", OPEN, 0)),
        (OpCode.create2, CreateRequest(p("/m/a"), b"a", OPEN, 0)),
        (OpCode.create, CreateRequest(p("/m/s-"), b"", OPEN, 2)),
        (OpCode.setData, SetDataRequest(p("/m"), b"x", 0)),
        (OpCode.check, CheckVersionRequest(p("/m"), 1)),
        (OpCode.createContainer, CreateRequest(p("/m/box"), b"", OPEN, 4)),
        (OpCode.createTTL, CreateTTLRequest(p("/m/ttl"), b"", OPEN, 5, 100000)),
        (OpCode.delete, DeleteRequest(p("/m/a"), 0)),
    ])
    r.step("multi ok", c, OpCode.multi, ok)
    bad = multi([
        (OpCode.create, CreateRequest(p("/m/b"), b"", OPEN, 0)),
        (OpCode.check, CheckVersionRequest(p("/m"), 99)),
        (OpCode.setData, SetDataRequest(p("/m"), b"y", -1)),
    ])
    r.step("multi fails", c, OpCode.multi, bad)
    r.step("nothing applied", c, OpCode.exists, ExistsRequest(p("/m/b"), False))
    r.step("multi dependent ops", c, OpCode.multi, multi([
        (OpCode.create, CreateRequest(p("/m/d"), b"", OPEN, 0)),
        (OpCode.create, CreateRequest(p("/m/d/e"), b"", OPEN, 0)),
        (OpCode.delete, DeleteRequest(p("/m/d/e"), -1)),
        (OpCode.delete, DeleteRequest(p("/m/d"), -1)),
    ]))
    r.step("multi rollback then", c, OpCode.multi, multi([
        (OpCode.create, CreateRequest(p("/m/r"), b"", OPEN, 0)),
        (OpCode.create, CreateRequest(p("/m/r"), b"", OPEN, 0)),
    ]))
    r.step("r absent", c, OpCode.exists, ExistsRequest(p("/m/r"), False))
    r.step("empty multi", c, OpCode.multi, multi([]))
    r.step("multi read", c, OpCode.multiRead, multi([
        (OpCode.getData, GetDataRequest(p("/m"), False)),
        (OpCode.getChildren, GetChildrenRequest(p("/m"), False)),
        (OpCode.getData, GetDataRequest(p("/m/none"), False)),
    ]))
    r.step("mixed multi", c, OpCode.multi, multi([
        (OpCode.getData, GetDataRequest(p("/m"), False)),
        (OpCode.create, CreateRequest(p("/m/z"), b"", OPEN, 0)),
    ]))
    r.step("still works", c, OpCode.exists, ExistsRequest(p("/m"), False))


def scenario_containers_ttl(r: Recorder) -> None:
    c = r.client()
    p = r.p
    r.step("container", c, OpCode.createContainer, CreateRequest(p("/box"), b"", OPEN, 4))
    r.step("container stat", c, OpCode.exists, ExistsRequest(p("/box"), False))
    r.step("container child", c, OpCode.create, CreateRequest(p("/box/a"), b"", OPEN, 0))
    r.step("ttl", c, OpCode.createTTL, CreateTTLRequest(p("/ttl"), b"t", OPEN, 5, 60000))
    r.step("ttl seq", c, OpCode.createTTL, CreateTTLRequest(p("/ttl-"), b"t", OPEN, 6, 60000))
    r.step("ttl zero", c, OpCode.createTTL, CreateTTLRequest(p("/ttl0"), b"", OPEN, 5, 0))
    r.step("ttl for persistent", c, OpCode.createTTL, CreateTTLRequest(p("/ttlp"), b"", OPEN, 0, 100))
    r.step("ttl via create", c, OpCode.create, CreateRequest(p("/ttlc"), b"", OPEN, 5))
    r.step("container via create", c, OpCode.create2, CreateRequest(p("/boxc"), b"", OPEN, 4))
    r.step("ttl stat", c, OpCode.exists, ExistsRequest(p("/ttl"), False))
    r.step("children", c, OpCode.getChildren, GetChildrenRequest(p("/"), False))


def scenario_sessions(r: Recorder) -> None:
    a = r.client()
    p = r.p
    r.step("eph", a, OpCode.create, CreateRequest(p("/mine"), b"", OPEN, 1))
    # Re-attach the session from a second socket with its id and password.
    again = WireClient(r.srv.host, r.srv.port, session_id=a.session_id, passwd=a.passwd)
    again.connect()
    r.note("same session", again.session_id == a.session_id)
    r.note("old socket closed", a.is_closed_by_server(5.0))
    r.clients[0] = again
    r.step("eph still there", again, OpCode.exists, ExistsRequest(p("/mine"), False))
    # A wrong password is refused.  (Apache also drops the session's current connection when
    # it sees one; zkpy does not — docs/compatibility.md — so the victim is not used afterwards.)
    victim = r.client()
    bad = WireClient(r.srv.host, r.srv.port, session_id=victim.session_id, passwd=b"\1" * 16)
    try:
        bad.connect()
        r.note("bad password", "accepted")
    except ConnectionError:
        r.note("bad password", "refused")
    finally:
        bad.close_socket()
    r.step("close", again, OpCode.closeSession, None)
    gone = WireClient(r.srv.host, r.srv.port, session_id=again.session_id, passwd=again.passwd)
    try:
        gone.connect()
        r.note("closed session", "accepted")
    except ConnectionError:
        r.note("closed session", "refused")
    finally:
        gone.close_socket()


def scenario_expiry(r: Recorder) -> None:
    watcher = r.client()
    p = r.p
    doomed = r.client(timeout_ms=1000)
    r.note("negotiated timeout", doomed.negotiated_timeout)
    r.step("eph", doomed, OpCode.create, CreateRequest(p("/doomed"), b"", OPEN, 1))
    r.step("seq eph", doomed, OpCode.create, CreateRequest(p("/doomed-"), b"", OPEN, 3))
    r.step("watch", watcher, OpCode.exists, ExistsRequest(p("/doomed"), True))
    r.step("child watch", watcher, OpCode.getChildren, GetChildrenRequest(p("/"), True))
    # The doomed session goes silent: no pings, no close.
    r.events("expiry events", watcher, 2)
    r.note("doomed connection closed", doomed.is_closed_by_server(5.0))
    r.step("gone", watcher, OpCode.exists, ExistsRequest(p("/doomed"), False))
    r.step("children", watcher, OpCode.getChildren2, GetChildren2Request(p("/"), False))
    again = WireClient(r.srv.host, r.srv.port, session_id=doomed.session_id, passwd=doomed.passwd)
    try:
        again.connect()
        r.note("expired session", "accepted")
    except ConnectionError:
        r.note("expired session", "refused")
    finally:
        again.close_socket()


@pytest.mark.parametrize("scenario", [
    scenario_crud, scenario_bad_paths, scenario_sequential, scenario_ephemerals, scenario_watches,
    scenario_set_watches, scenario_acl, scenario_multi, scenario_containers_ttl, scenario_sessions,
    scenario_expiry,
], ids=lambda f: f.__name__.removeprefix("scenario_"))
def test_same_answers_as_apache(servers: dict[str, ServerProcess], scenario: Callable[[Recorder], None]) -> None:
    run_both(servers, scenario, scenario.__name__.removeprefix("scenario_"))

