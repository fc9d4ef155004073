"""zkpy.client against a real Apache ZooKeeper 3.8 (and, for timing corner cases, fakes)."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import ServerProcess, apache_available, apache_missing_reason, make_server
from tests.test_client_fakes import FakeServer, Proxy
from zkpy.client import (
    OPEN_ACL_UNSAFE,
    AddWatchMode,
    Check,
    CheckResult,
    ClientState,
    Create,
    CreateMode,
    CreateResult,
    Delete,
    DeleteResult,
    ErrorResult,
    EventQueue,
    EventType,
    GetChildren,
    GetChildrenResult,
    GetData,
    GetDataResult,
    KeeperState,
    Perms,
    SetData,
    SetDataResult,
    WatchedEvent,
    WatcherType,
    ZooKeeperClient,
    digest_acl,
)
from zkpy.proto import errors as E
from zkpy.proto.messages import decode_connect_request

WAIT_S = 30.0  # bound on every wait in these tests
_names = itertools.count()


def arun(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh loop, bounded in time."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 120))
    return wrapper


SERVER_KINDS = [pytest.param("apache", marks=pytest.mark.apache), "zkpy"]


def start_server(kind: str, base: Path) -> ServerProcess:
    if kind == "apache" and not apache_available():
        pytest.skip(apache_missing_reason())
    srv = make_server(kind, base / kind, extra_cfg={"extendedTypesEnabled": "true"},
                      env={"zookeeper.extendedTypesEnabled": "true"})
    srv.start(timeout_s=60)
    return srv


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Apache ZooKeeper 3.8 and the zkpy server in turn: the client must work on both."""
    srv = start_server(request.param, tmp_path_factory.mktemp("client"))
    yield srv
    srv.stop()


@pytest.fixture
def base() -> str:
    """A fresh top-level path per test, so tests share one server without meeting."""
    return f"/t{next(_names)}"


def client(srv: ServerProcess | str, **kw: Any) -> ZooKeeperClient:
    hosts = srv if isinstance(srv, str) else srv.hosts
    kw.setdefault("reconnect_jitter_s", 0.05)
    kw.setdefault("reconnect_pause_s", 0.2)
    return ZooKeeperClient(hosts, kw.pop("session_timeout_ms", 10_000), **kw)


async def wait_for(pred: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def next_event(q: EventQueue, skip_states: bool = False) -> WatchedEvent:
    while True:
        ev = await asyncio.wait_for(q.get(), WAIT_S)
        if not (skip_states and ev.type is EventType.None_):
            return ev


async def next_node_event(q: EventQueue) -> WatchedEvent:
    """The next event about a node (connection events go to every watcher, as in Java)."""
    return await next_event(q, skip_states=True)


# ------------------------------------------------------------------ basic operations


@arun
async def test_create_get_set_delete(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        assert await zk.create(base, b"hello") == base
        data, stat = await zk.get_data(base)
        assert data == b"hello" and stat.version == 0 and stat.dataLength == 5
        stat2 = await zk.set_data(base, b"world", version=0)
        assert stat2.version == 1 and stat2.mzxid > stat.mzxid
        assert (await zk.get_data(base))[0] == b"world"
        await zk.delete(base, version=1)
        assert await zk.exists(base) is None


@arun
async def test_null_data_reads_back_as_none(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base, None)
        assert (await zk.get_data(base))[0] is None


@arun
async def test_create_modes(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base)
        path, stat = await zk.create2(f"{base}/e", b"x", mode=CreateMode.EPHEMERAL)
        assert path == f"{base}/e" and stat.ephemeralOwner == zk.session_id
        s1 = await zk.create(f"{base}/s-", mode=CreateMode.PERSISTENT_SEQUENTIAL)
        s2 = await zk.create(f"{base}/s-", mode=CreateMode.EPHEMERAL_SEQUENTIAL)
        assert s1 == f"{base}/s-0000000001" and s2 == f"{base}/s-0000000002"
        cpath, cstat = await zk.create2(f"{base}/c", mode=CreateMode.CONTAINER)
        assert cpath == f"{base}/c" and cstat.ephemeralOwner == 0
        assert await zk.create(f"{base}/ttl", mode=CreateMode.PERSISTENT_WITH_TTL, ttl=60_000) == f"{base}/ttl"
        tpath, _ = await zk.create2(f"{base}/ttls-", mode=CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL, ttl=1)
        assert tpath.startswith(f"{base}/ttls-")
        children = sorted(await zk.get_children(base))
        assert children == sorted(["e", "s-0000000001", "s-0000000002", "c", "ttl", tpath.rsplit("/", 1)[1]])


@arun
async def test_server_errors_raise_their_exception_with_the_path(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base)
        await zk.create(f"{base}/child")
        with pytest.raises(E.NodeExistsError) as ei:
            await zk.create(base)
        assert ei.value.path == base
        with pytest.raises(E.NoNodeError):
            await zk.get_data(f"{base}/nope")
        with pytest.raises(E.NoNodeError):
            await zk.create(f"{base}/nope/child")
        with pytest.raises(E.BadVersionError):
            await zk.set_data(base, b"", version=7)
        with pytest.raises(E.NotEmptyError):
            await zk.delete(base)
        await zk.create(f"{base}/eph", mode=CreateMode.EPHEMERAL)
        with pytest.raises(E.NoChildrenForEphemeralsError):
            await zk.create(f"{base}/eph/x")


@arun
async def test_bad_arguments_are_refused_before_sending(server: ServerProcess) -> None:
    async with client(server) as zk:
        for bad in ["", "x", "/a/", "/a//b", "/a/./b", "/a/../b", "/a\x00b", "/a\x01", "/\ud800"]:
            with pytest.raises(ValueError):
                await zk.get_data(bad)
        with pytest.raises(ValueError, match="ttl must be positive"):
            await zk.create("/x", mode=CreateMode.PERSISTENT_WITH_TTL, ttl=0)
        with pytest.raises(ValueError, match="ttl not valid"):
            await zk.create("/x", mode=CreateMode.PERSISTENT, ttl=5)
        with pytest.raises(E.InvalidACLError):
            await zk.create("/x", acl=[])
        # A sequential node may end in "/": the server appends the counter.
        with pytest.raises(E.NoNodeError):
            await zk.create("/nope-parent/", mode=CreateMode.PERSISTENT_SEQUENTIAL)


@arun
async def test_children_with_stat_and_counts(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base)
        for i in range(3):
            await zk.create(f"{base}/c{i}")
        await zk.create(f"{base}/c0/g")
        children, stat = await zk.get_children2(base)
        assert sorted(children) == ["c0", "c1", "c2"] and stat.numChildren == 3
        assert await zk.get_all_children_number(base) == 4


@arun
async def test_acl_auth_and_whoami(server: ServerProcess, base: str) -> None:
    async with client(server) as zk, client(server) as other:
        await zk.create(base, b"secret", acl=[digest_acl("u", "p", Perms.ALL)])
        with pytest.raises(E.NoAuthError):
            await zk.get_acl(base)
        await zk.add_auth("digest", b"u:p")
        acl, stat = await zk.get_acl(base)
        assert acl[0].id.scheme == "digest" and acl[0].perms == Perms.ALL and stat.aversion == 0
        with pytest.raises(E.NoAuthError):
            await other.get_data(base)
        await other.add_auth("digest", "u:p")
        assert (await other.get_data(base))[0] == b"secret"
        assert {(ci.authScheme, ci.user) for ci in await other.whoami()} >= {("digest", "u")}
        stat = await other.set_acl(base, list(OPEN_ACL_UNSAFE), version=0)
        assert stat.aversion == 1
        assert (await zk.get_data(base))[0] == b"secret"


@arun
async def test_failed_auth_ends_the_session(server: ServerProcess) -> None:
    events = EventQueue()
    zk = await client(server, default_watcher=events).start()
    assert (await next_event(events)).state is KeeperState.SyncConnected
    with pytest.raises(E.AuthFailedError):
        await zk.add_auth("nosuchscheme", b"x")
    assert zk.state is ClientState.AUTH_FAILED
    assert (await next_event(events)).state is KeeperState.AuthFailed
    with pytest.raises(E.AuthFailedError):
        await zk.exists("/")
    await zk.close()


@arun
async def test_sync_and_ephemerals(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base)
        await zk.create(f"{base}/e1", mode=CreateMode.EPHEMERAL)
        await zk.create(f"{base}/e2", mode=CreateMode.EPHEMERAL)
        assert await zk.sync(base) == base
        assert sorted(await zk.get_ephemerals(base)) == [f"{base}/e1", f"{base}/e2"]
        sid = zk.session_id
    async with client(server) as zk2:
        assert await zk2.get_children(base) == []
        assert sid != zk2.session_id


@arun
async def test_get_config_reads_the_config_node(server: ServerProcess) -> None:
    async with client(server) as zk:
        data, stat = await zk.get_config()
        assert stat is not None and data is not None


# ------------------------------------------------------------------ multi


@arun
async def test_transaction_commits_atomically_with_per_op_results(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base, b"0")
        results = await (zk.transaction().create(f"{base}/a", b"1").set_data(base, b"2", 0)
                         .check(base, 1).delete(f"{base}/a").commit())
        assert isinstance(results[0], CreateResult) and results[0].path == f"{base}/a"
        assert isinstance(results[1], SetDataResult) and results[1].stat.version == 1
        assert isinstance(results[2], CheckResult) and isinstance(results[3], DeleteResult)


@arun
async def test_failed_transaction_raises_with_results_and_changes_nothing(server: ServerProcess,
                                                                          base: str) -> None:
    async with client(server) as zk:
        await zk.create(base)
        with pytest.raises(E.BadVersionError) as ei:
            await zk.multi([Create(f"{base}/a"), Check(base, 5), Delete(base)])
        results = ei.value.results  # type: ignore[attr-defined]
        assert [type(r) for r in results] == [ErrorResult] * 3
        assert [r.err for r in results] == [0, E.BadVersionError.code, E.RuntimeInconsistencyError.code]
        assert await zk.exists(f"{base}/a") is None


@arun
async def test_multi_read_returns_errors_in_place(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base, b"d")
        await zk.create(f"{base}/k")
        results = await zk.multi_read([GetData(base), GetChildren(base), GetData(f"{base}/nope")])
        assert isinstance(results[0], GetDataResult) and results[0].data == b"d"
        assert isinstance(results[1], GetChildrenResult) and results[1].children == ["k"]
        assert isinstance(results[2], ErrorResult) and isinstance(results[2].exception, E.NoNodeError)
        with pytest.raises(ValueError):
            await zk.multi([GetData(base), SetData(base, b"")])


@arun
async def test_check_version(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base)
        await zk.check(base, 0)
        with pytest.raises(E.BadVersionError):
            await zk.check(base, 3)
        with pytest.raises(E.NoNodeError):
            await zk.check(f"{base}/nope", 0)


# ------------------------------------------------------------------ watches


@arun
async def test_data_watch_fires_once(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base)
        q = EventQueue()
        await zk.get_data(base, watch=q)
        await zk.set_data(base, b"1")
        await zk.set_data(base, b"2")
        ev = await next_event(q)
        assert (ev.type, ev.state, ev.path) == (EventType.NodeDataChanged, KeeperState.SyncConnected, base)
        await zk.sync(base)
        assert len(q) == 0


@arun
async def test_exists_watch_sees_creation_and_child_watch_sees_children(server: ServerProcess,
                                                                         base: str) -> None:
    async with client(server) as zk:
        q = EventQueue()
        assert await zk.exists(base, watch=q) is None
        await zk.create(base)
        assert (await next_event(q)).type is EventType.NodeCreated
        await zk.get_children(base, watch=q)
        await zk.create(f"{base}/c")
        ev = await next_event(q)
        assert (ev.type, ev.path) == (EventType.NodeChildrenChanged, base)


@arun
async def test_default_watcher_gets_watch_true_events(server: ServerProcess, base: str) -> None:
    q = EventQueue()
    async with client(server, default_watcher=q) as zk:
        assert (await next_event(q)).state is KeeperState.SyncConnected
        await zk.create(base)
        await zk.get_data(base, watch=True)
        await zk.delete(base)
        assert (await next_event(q)).type is EventType.NodeDeleted


@arun
async def test_coroutine_watchers_run(server: ServerProcess, base: str) -> None:
    seen: asyncio.Future[WatchedEvent] = asyncio.get_running_loop().create_future()

    async def watcher(ev: WatchedEvent) -> None:
        await asyncio.sleep(0)
        if not seen.done():
            seen.set_result(ev)

    async with client(server) as zk:
        await zk.create(base)
        await zk.exists(base, watch=watcher)
        await zk.set_data(base, b"x")
        assert (await asyncio.wait_for(seen, WAIT_S)).type is EventType.NodeDataChanged


@arun
async def test_persistent_recursive_watch_sees_the_subtree_until_removed(server: ServerProcess,
                                                                         base: str) -> None:
    async with client(server) as zk:
        await zk.create(base)
        q = EventQueue()
        await zk.add_watch(base, AddWatchMode.PERSISTENT_RECURSIVE, q)
        await zk.create(f"{base}/a")
        await zk.create(f"{base}/a/b")
        await zk.set_data(f"{base}/a/b", b"x")
        await zk.delete(f"{base}/a/b")
        got = [(ev.type, ev.path) for ev in [await next_event(q) for _ in range(4)]]
        assert got == [(EventType.NodeCreated, f"{base}/a"), (EventType.NodeCreated, f"{base}/a/b"),
                       (EventType.NodeDataChanged, f"{base}/a/b"), (EventType.NodeDeleted, f"{base}/a/b")]
        await zk.remove_watches(base)
        ev = await next_event(q)
        assert (ev.type, ev.path) == (EventType.PersistentWatchRemoved, base)
        await zk.create(f"{base}/z")
        await zk.sync(base)
        assert len(q) == 0


@arun
async def test_persistent_watch_stays_after_firing(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base)
        q = EventQueue()
        await zk.add_watch(base, AddWatchMode.PERSISTENT, q)
        await zk.set_data(base, b"1")
        await zk.set_data(base, b"2")
        await zk.create(f"{base}/kid")
        kinds = [(await next_event(q)).type for _ in range(3)]
        assert kinds == [EventType.NodeDataChanged, EventType.NodeDataChanged, EventType.NodeChildrenChanged]


@arun
async def test_remove_and_check_watches(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base)
        q = EventQueue()
        await zk.get_data(base, watch=q)
        await zk.get_children(base, watch=q)
        await zk.check_watches(base, WatcherType.Data)
        await zk.remove_watches(base, WatcherType.Children)
        assert (await next_event(q)).type is EventType.ChildWatchRemoved
        await zk.remove_watcher(base, q, WatcherType.Data)
        assert (await next_event(q)).type is EventType.DataWatchRemoved
        with pytest.raises(E.NoWatcherError):
            await zk.remove_watches(base)
        with pytest.raises(E.NoWatcherError):
            await zk.check_watches(base, WatcherType.Any)
        await zk.set_data(base, b"x")
        await zk.sync(base)
        assert len(q) == 0


@arun
async def test_local_watch_removal_works_offline(server: ServerProcess, base: str) -> None:
    proxy = await Proxy(server.host, server.port).start()
    try:
        async with client(proxy.hosts) as zk:
            await zk.create(base)
            q = EventQueue()
            await zk.exists(base, watch=q)
            proxy.cut()
            await wait_for(lambda: not zk.connected, "disconnect")
            await zk.remove_watches(base, WatcherType.Data, local=True)
            kinds = [(await next_event(q)) for _ in range(2)]
            assert [(e.type, e.state) for e in kinds] == [(EventType.None_, KeeperState.Disconnected),
                                                          (EventType.DataWatchRemoved, KeeperState.SyncConnected)]
            proxy.restore()
            await zk.wait_connected(WAIT_S)
    finally:
        await proxy.close()


# ------------------------------------------------------------------ chroot


@arun
async def test_chroot_maps_paths_both_ways(server: ServerProcess, base: str) -> None:
    async with client(server) as root:
        await root.create(base)
        async with client(f"{server.hosts}{base}") as zk:
            assert zk.chroot == base
            q = EventQueue()
            assert await zk.get_children("/", watch=q) == []
            assert await zk.create("/a", b"x") == "/a"
            assert (await next_event(q)).path == "/"
            seq = await zk.create("/s-", mode=CreateMode.EPHEMERAL_SEQUENTIAL)
            assert seq == "/s-0000000001"
            assert await zk.get_ephemerals("/") == [seq]
            await zk.add_watch("/", AddWatchMode.PERSISTENT_RECURSIVE, q)
            await zk.set_data("/a", b"y")
            assert (await next_event(q)).path == "/a"
            results = await zk.transaction().create("/b").commit()
            assert results[0] == CreateResult("/b")
            assert await zk.sync("/") == "/"
        assert sorted(await root.get_children(base)) == ["a", "b"]


# ------------------------------------------------------------------ pipelining


@arun
async def test_pipelined_requests_complete_in_order(server: ServerProcess, base: str) -> None:
    async with client(server, max_in_flight=64) as zk:
        await zk.create(base)
        creates = [zk.create(f"{base}/n{i:04d}", str(i).encode()) for i in range(1000)]
        assert await asyncio.gather(*creates) == [f"{base}/n{i:04d}" for i in range(1000)]
        reads = await asyncio.gather(*[zk.get_data(f"{base}/n{i:04d}") for i in range(1000)])
        assert [d for d, _ in reads] == [str(i).encode() for i in range(1000)]
        zxids = [s.czxid for _, s in reads]
        assert zxids == sorted(zxids)


@arun
async def test_in_flight_requests_never_exceed_the_window(server: ServerProcess, base: str) -> None:
    async with client(server, max_in_flight=4) as zk:
        conn = zk._session.conn
        assert conn is not None
        seen: list[int] = []
        original = conn.send_with

        def spy(*args: Any, **kwargs: Any) -> None:
            seen.append(len(conn.pending))
            original(*args, **kwargs)

        conn.send_with = spy  # type: ignore[method-assign]
        await asyncio.gather(*[zk.exists(f"{base}/{i}") for i in range(200)])
        assert len(seen) == 200 and max(seen) < 4


@arun
async def test_requests_of_one_loop_turn_go_out_in_one_write(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        conn = zk._session.conn
        assert conn is not None and conn._transport is not None
        writes = []
        transport = conn._transport
        original = transport.write

        def counting_write(data: Any) -> None:
            writes.append(len(data))
            original(data)

        transport.write = counting_write  # type: ignore[method-assign]
        await asyncio.gather(*[zk.exists(f"{base}/{i}") for i in range(100)])
        transport.write = original  # type: ignore[method-assign]
        assert len(writes) == 1


@arun
async def test_backpressure_holds_requests_beyond_the_window() -> None:
    held: list[int] = []

    async def hold(xid: int, op: int, body: bytes) -> None:
        held.append(xid)
        return None

    fake = await FakeServer(handler=hold).start()
    try:
        zk = await client(fake.hosts, max_in_flight=3).start(WAIT_S)
        tasks = [asyncio.ensure_future(zk.sync("/")) for _ in range(5)]
        await wait_for(lambda: len(held) == 3, "three requests at the server")
        await asyncio.sleep(0.2)
        assert len(held) == 3 and not any(t.done() for t in tasks)
        from zkpy.proto.records import SyncResponse
        for xid in list(held):
            fake.reply(xid, 0, SyncResponse("/").to_bytes())
        await wait_for(lambda: len(held) == 5, "the other two")
        for xid in held[3:]:
            fake.reply(xid, 0, SyncResponse("/").to_bytes())
        assert await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S) == ["/"] * 5
        await zk.close(timeout_s=0.5)
    finally:
        await fake.close()


# ------------------------------------------------------------------ sessions and connections


@arun
async def test_second_connection_reattaches_the_session(server: ServerProcess, base: str) -> None:
    async with client(server) as zk:
        await zk.create(base, mode=CreateMode.EPHEMERAL)
        twin = await client(server, session_id=zk.session_id, session_password=zk.session_password).start(WAIT_S)
        assert twin.session_id == zk.session_id
        stat = await twin.exists(base)
        assert stat is not None and stat.ephemeralOwner == zk.session_id
        # Closing the twin closes the shared session: the first client learns it expired.
        q = EventQueue()
        zk.default_watcher = q
        await twin.close()
        await wait_for(lambda: zk.state is ClientState.EXPIRED, "expiry")
        states = [ev.state async for ev in q if ev.type is EventType.None_]
        assert states[-1] is KeeperState.Expired
        with pytest.raises(E.SessionExpiredError):
            await zk.exists("/")


@arun
async def test_wrong_password_means_expired(server: ServerProcess) -> None:
    async with client(server) as zk:
        bad = client(server, session_id=zk.session_id, session_password=b"x" * 16)
        with pytest.raises(E.SessionExpiredError):
            await bad.start(WAIT_S)
        assert bad.state is ClientState.EXPIRED


@arun
async def test_failover_skips_a_dead_server_and_one_that_hangs_up(server: ServerProcess) -> None:
    from tests.support.servers import free_port

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)  # a server behind our zxid reads the handshake and closes
        writer.close()

    refuser = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    refuser_port = refuser.sockets[0].getsockname()[1]
    dead = free_port()
    hosts = f"127.0.0.1:{dead},127.0.0.1:{refuser_port},{server.hosts}"
    zk = client(hosts)
    zk._session.hosts.set_order([("127.0.0.1", dead), ("127.0.0.1", refuser_port), (server.host, server.port)])
    try:
        await zk.start(WAIT_S)
        assert zk.server == (server.host, server.port)
        assert await zk.exists("/") is not None
    finally:
        await zk.close()
        refuser.close()


@arun
async def test_reconnect_keeps_session_and_rearms_watches_with_missed_events(server: ServerProcess,
                                                                             base: str) -> None:
    proxy = await Proxy(server.host, server.port).start()
    try:
        states: list[ClientState] = []
        zk = client(proxy.hosts)
        zk.add_listener(states.append)
        await zk.start(WAIT_S)
        await zk.create(base, b"0")
        await zk.create(f"{base}/eph", mode=CreateMode.EPHEMERAL)
        data_q, child_q, rec_q, exist_q = EventQueue(), EventQueue(), EventQueue(), EventQueue()
        await zk.get_data(base, watch=data_q)
        await zk.get_children(base, watch=child_q)
        await zk.exists(f"{base}/later", watch=exist_q)
        await zk.add_watch(f"{base}/tree", AddWatchMode.PERSISTENT_RECURSIVE, rec_q)
        sid, zxid_before = zk.session_id, zk.last_zxid
        proxy.cut()
        await wait_for(lambda: zk.state is ClientState.SUSPENDED, "suspension")
        async with client(server) as other:  # changes the client cannot see while cut off
            await other.set_data(base, b"1")
            await other.create(f"{base}/new")
            await other.create(f"{base}/later")
            await other.create(f"{base}/tree")
        proxy.restore()
        await zk.wait_connected(WAIT_S)
        assert zk.session_id == sid
        assert states[-2:] == [ClientState.SUSPENDED, ClientState.CONNECTED]
        hs = decode_connect_request(proxy.handshakes[-1])
        assert hs.request.sessionId == sid and hs.request.lastZxidSeen >= zxid_before
        assert (await next_node_event(data_q)).type is EventType.NodeDataChanged
        assert (await next_node_event(child_q)).type is EventType.NodeChildrenChanged
        assert (await next_node_event(exist_q)).type is EventType.NodeCreated
        assert (await zk.exists(f"{base}/eph")).ephemeralOwner == sid
        # The recursive watch was re-registered (Apache replays no missed events for persistent
        # watches, only for data/exist/child ones).
        await zk.create(f"{base}/tree/leaf")
        ev = await next_node_event(rec_q)
        assert (ev.type, ev.path) == (EventType.NodeCreated, f"{base}/tree/leaf")
        await zk.close()
    finally:
        await proxy.close()


@arun
async def test_many_watches_are_reregistered_in_batches(server: ServerProcess, base: str) -> None:
    proxy = await Proxy(server.host, server.port).start()
    long = "x" * 200
    try:
        async with client(proxy.hosts) as zk:
            await zk.create(base)
            n = 1500  # ~300 KB of paths: three SetWatches batches
            await asyncio.gather(*[zk.create(f"{base}/{long}{i}") for i in range(n)])
            q = EventQueue()
            await asyncio.gather(*[zk.get_data(f"{base}/{long}{i}", watch=q) for i in range(n)])
            proxy.cut()
            await wait_for(lambda: not zk.connected, "disconnect")
            proxy.restore()
            await zk.wait_connected(WAIT_S)
            async with client(server) as other:
                await asyncio.gather(*[other.set_data(f"{base}/{long}{i}", b"!") for i in range(n)])
            got = set()
            while len(got) < n:
                ev = await next_event(q)
                if ev.type is EventType.NodeDataChanged:
                    got.add(ev.path)
            assert len(got) == n
    finally:
        await proxy.close()


@arun
async def test_lost_when_no_server_answers_for_a_session_timeout() -> None:
    from tests.support.servers import free_port

    zk = client(f"127.0.0.1:{free_port()}", session_timeout_ms=600)
    states: list[ClientState] = []
    zk.add_listener(states.append)
    with pytest.raises(E.ConnectionLossError):
        await zk.start(WAIT_S)
    assert ClientState.LOST in states and zk.state is ClientState.CLOSED


# ------------------------------------------------------------------ heartbeats and the handshake (fakes)


@arun
async def test_idle_connection_pings_and_stays_up() -> None:
    fake = await FakeServer(timeout_ms=600).start()  # read timeout 400 ms, a ping every 200 ms
    try:
        zk = await client(fake.hosts).start(WAIT_S)
        await wait_for(lambda: fake.pings >= 5, "five pings")
        assert zk.state is ClientState.CONNECTED and len(fake.connects) == 1
        await zk.close(timeout_s=0.5)
    finally:
        await fake.close()


@arun
async def test_silent_server_is_dropped_after_the_read_timeout() -> None:
    fake = await FakeServer(timeout_ms=600, answer_pings=False).start()
    try:
        states: list[ClientState] = []
        zk = client(fake.hosts)
        zk.add_listener(states.append)
        await zk.start(WAIT_S)
        await wait_for(lambda: len(fake.connects) >= 2, "a reconnect")
        assert ClientState.SUSPENDED in states
        await zk.close(timeout_s=0.5)
    finally:
        await fake.close()


@arun
async def test_handshake_carries_session_zxid_and_read_only_flag() -> None:
    fake = await FakeServer(read_only=True).start()
    try:
        zk = await client(fake.hosts, read_only=True).start(WAIT_S)
        assert zk.state is ClientState.CONNECTED_READ_ONLY
        hs = fake.connects[0]
        assert hs.read_only is True and hs.request.timeOut == 10_000 and hs.request.sessionId == 0
        await zk.close(timeout_s=0.5)
    finally:
        await fake.close()


@arun
async def test_read_only_client_moves_to_a_read_write_server() -> None:
    ro = await FakeServer(read_only=True, session_id=0x111).start()
    rw = await FakeServer(read_only=False, session_id=0x222).start()
    try:
        states: list[ClientState] = []
        zk = client(f"{ro.hosts},{rw.hosts}", read_only=True)
        zk._session.hosts.set_order([("127.0.0.1", ro.port), ("127.0.0.1", rw.port)])
        zk.add_listener(states.append)
        await zk.start(WAIT_S)
        assert zk.state is ClientState.CONNECTED_READ_ONLY
        await wait_for(lambda: zk.state is ClientState.CONNECTED, "the move to the r/w server")
        assert zk.server == ("127.0.0.1", rw.port) and zk.session_id == 0x222
        # A read-only server's session is not carried to a read/write one (ClientCnxn.seenRwServerBefore).
        assert rw.connects[-1].request.sessionId == 0
        assert states[:3] == [ClientState.CONNECTED_READ_ONLY, ClientState.SUSPENDED, ClientState.CONNECTED]
        await zk.close(timeout_s=0.5)
    finally:
        await ro.close()
        await rw.close()


@arun
async def test_expired_handshake_reply_ends_the_session() -> None:
    fake = await FakeServer(timeout_ms=0).start()
    try:
        zk = client(fake.hosts)
        with pytest.raises(E.SessionExpiredError):
            await zk.start(WAIT_S)
        assert zk.state is ClientState.EXPIRED
    finally:
        await fake.close()


def test_runs_on_uvloop(server: ServerProcess) -> None:
    from zkpy.client import run
    from zkpy.client.loop import uvloop_available

    async def main() -> str:
        async with client(server) as zk:
            return type(asyncio.get_running_loop()).__module__ + ":" + str(await zk.exists("/") is not None)

    result = run(asyncio.wait_for(main(), 60))
    assert result.endswith("True")
    if uvloop_available():
        assert result.startswith("uvloop")


def test_setwatches_batches_keep_order_and_size() -> None:
    from zkpy.client.session import SET_WATCHES_MAX_LENGTH, _batches

    lists = [[f"/d{i:05d}" + "x" * 100 for i in range(3000)], ["/e"], [], ["/p"], ["/r"]]
    batches = list(_batches(lists))
    assert len(batches) > 1
    flat = [[p for b in batches for p in b[k]] for k in range(5)]
    assert flat == lists
    for b in batches:
        assert sum(len(p) for lst in b for p in lst) < SET_WATCHES_MAX_LENGTH + 200


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_restart_from_kill9_keeps_session_ephemerals_and_watches(kind: str, tmp_path: Path) -> None:
    srv = start_server(kind, tmp_path)

    async def scenario() -> None:
        # The client reaches the server through a proxy, so the test decides when it gets
        # back: after the restart and after another client changed what it watches.
        proxy = await Proxy(srv.host, srv.port).start()
        zk = client(proxy.hosts, session_timeout_ms=30_000)
        await zk.start(WAIT_S)
        await zk.create("/r", b"0")
        await zk.create("/r/eph", mode=CreateMode.EPHEMERAL)
        data_q, child_q = EventQueue(), EventQueue()
        await zk.get_data("/r", watch=data_q)
        await zk.get_children("/r", watch=child_q)
        sid = zk.session_id
        proxy.cut()
        await asyncio.to_thread(srv.kill9)
        await wait_for(lambda: not zk.connected, "disconnect")
        await asyncio.to_thread(srv.start, 60)
        async with client(srv) as other:  # missed by the client while it is away
            await other.set_data("/r", b"1")
            await other.create("/r/new")
        proxy.restore()
        await zk.wait_connected(60)
        assert zk.session_id == sid
        stat = await zk.exists("/r/eph")
        assert stat is not None and stat.ephemeralOwner == sid
        ev = await next_node_event(data_q)
        assert (ev.type, ev.path) == (EventType.NodeDataChanged, "/r")
        ev = await next_node_event(child_q)
        assert (ev.type, ev.path) == (EventType.NodeChildrenChanged, "/r")
        await zk.close()
        await proxy.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 180))
    finally:
        srv.stop()
