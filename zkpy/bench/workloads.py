"""The workloads: what one in-flight slot of a worker does for each request.

A workload is a factory: given a worker's connected clients it returns one *op* per slot,
an ``async`` callable taking the request's index and doing exactly one ZooKeeper request.
The worker times each call.  Set-up (the znodes read and written) is done once, by the
parent, before any worker starts (:func:`prepare`), and removed afterwards (:func:`cleanup`).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from zkpy.client import AddWatchMode, CreateMode, WatchedEvent, ZooKeeperClient
from zkpy.proto.constants import OpCode
from zkpy.proto.errors import NodeExistsError, NoNodeError, error_for_code
from zkpy.proto.records import GetDataRequest, SetDataRequest

__all__ = [
    "THROUGHPUT_WORKLOADS",
    "WORKLOADS",
    "Op",
    "Params",
    "cleanup",
    "data_path",
    "make_ops",
    "prepare",
]

Op = Callable[[int], Awaitable[object]]

# Workloads measured by running requests for a duration (the memory run is separate).
THROUGHPUT_WORKLOADS = ("read", "write", "create-delete", "mixed", "watch", "connect")
WORKLOADS = (*THROUGHPUT_WORKLOADS, "memory")

# The memory run spreads its znodes over parents of this many children, as real trees do.
CHILDREN_PER_PARENT = 1000


@dataclass(frozen=True, slots=True)
class Params:
    """What a run was asked for; the same for every worker and both servers."""

    base: str = "/zkpy-bench"
    znodes: int = 1000
    value_size: int = 100
    read_ratio: float = 0.9
    session_timeout_ms: int = 30_000
    # read/write/mixed/watch: pre-encoded requests and undecoded replies through the client's
    # pipelined request path, so the load generator spends its CPU on the wire, not on parsing.
    lean: bool = True


def data_path(p: Params, i: int) -> str:
    return f"{p.base}/n{i}"


def memory_path(p: Params, i: int) -> str:
    return f"{p.base}/p{i // CHILDREN_PER_PARENT}/n{i % CHILDREN_PER_PARENT}"


async def _ensure(zk: ZooKeeperClient, path: str, data: bytes = b"") -> None:
    try:
        await zk.create(path, data)
    except NodeExistsError:
        await zk.set_data(path, data)


async def prepare(hosts: str, workload: str, p: Params, memory_znodes: int = 0) -> None:
    """Create what the workload reads and writes (idempotent: an earlier run may have left it)."""
    async with ZooKeeperClient(hosts, p.session_timeout_ms, max_in_flight=2000) as zk:
        await _ensure(zk, p.base)
        await _ensure(zk, f"{p.base}/cd")
        value = b"v" * p.value_size
        if workload == "memory":
            parents = -(-memory_znodes // CHILDREN_PER_PARENT)
            await _gather_bounded([_ensure(zk, f"{p.base}/p{i}") for i in range(parents)])
            return
        if workload in ("read", "write", "mixed", "watch"):
            await _gather_bounded([_ensure(zk, data_path(p, i), value) for i in range(p.znodes)])


async def cleanup(hosts: str, p: Params, timeout_s: float = 120.0) -> None:
    """Delete the bench's subtree (bounded: at most the nodes the bench could have made)."""
    async with ZooKeeperClient(hosts, p.session_timeout_ms, max_in_flight=2000) as zk:
        await _delete_tree(zk, p.base)


async def _delete_tree(zk: ZooKeeperClient, path: str) -> None:
    try:
        children = await zk.get_children(path)
    except NoNodeError:
        return
    for i in range(0, len(children), 1000):
        await _gather_bounded([_delete_tree(zk, f"{path}/{c}") for c in children[i:i + 1000]])
    try:
        await zk.delete(path)
    except NoNodeError:
        pass


async def _gather_bounded(aws: list[Awaitable[object]], batch: int = 1000) -> None:
    import asyncio

    for i in range(0, len(aws), batch):
        await asyncio.gather(*aws[i:i + batch])


# ---------------------------------------------------------------- per-slot operations


class _Encoded:
    """A request body encoded once, written as is each time (the record protocol's encode_into)."""

    __slots__ = ("body",)

    def __init__(self, record: Any) -> None:
        out = bytearray()
        record.encode_into(out)
        self.body = bytes(out)

    def encode_into(self, out: bytearray) -> None:
        out += self.body


def _finish_check(err: int, body: bytes, pos: int, path: Any) -> None:
    # The reply is not decoded: the bench measures the server, and both get the same client.
    if err:
        raise error_for_code(err, path)


def _lean(zk: ZooKeeperClient) -> Callable[..., Awaitable[object]] | None:
    """The client's request path below argument checks and reply decoding, if it has one."""
    return getattr(zk, "_call", None)


def _server_path(zk: ZooKeeperClient, path: str) -> str:
    chroot = zk.chroot.rstrip("/")
    return chroot + path if chroot else path


def _mixed_lean(zk: ZooKeeperClient, paths: list[str], value: bytes, ratio: float, rnd: random.Random
                ) -> Op | None:
    read, write = _read_lean(zk, paths, rnd), _write_lean(zk, paths, value, rnd)
    if read is None or write is None:
        return None
    coin = rnd.random

    def op(i: int) -> Awaitable[object]:
        return read(i) if coin() < ratio else write(i)
    return op


def _read_lean(zk: ZooKeeperClient, paths: list[str], rnd: random.Random) -> Op | None:
    call = _lean(zk)
    if call is None:
        return None
    bodies = [(_Encoded(GetDataRequest(_server_path(zk, path), False)), path) for path in paths]
    choice = rnd.choice
    op_code = OpCode.getData

    def op(_i: int) -> Awaitable[object]:
        body, path = choice(bodies)
        return call(op_code, body, _finish_check, path)
    return op


def _write_lean(zk: ZooKeeperClient, paths: list[str], value: bytes, rnd: random.Random) -> Op | None:
    call = _lean(zk)
    if call is None:
        return None
    bodies = [(_Encoded(SetDataRequest(_server_path(zk, path), value, -1)), path) for path in paths]
    choice = rnd.choice
    op_code = OpCode.setData

    def op(_i: int) -> Awaitable[object]:
        body, path = choice(bodies)
        return call(op_code, body, _finish_check, path)
    return op


def _read(zk: ZooKeeperClient, paths: list[str], rnd: random.Random) -> Op:
    choice = rnd.choice
    get = zk.get_data

    def op(_i: int) -> Awaitable[object]:
        return get(choice(paths))
    return op


def _write(zk: ZooKeeperClient, paths: list[str], value: bytes, rnd: random.Random) -> Op:
    choice = rnd.choice
    set_data = zk.set_data

    def op(_i: int) -> Awaitable[object]:
        return set_data(choice(paths), value)
    return op


def _mixed(zk: ZooKeeperClient, paths: list[str], value: bytes, ratio: float, rnd: random.Random) -> Op:
    choice = rnd.choice
    coin = rnd.random
    get, set_data = zk.get_data, zk.set_data

    def op(_i: int) -> Awaitable[object]:
        if coin() < ratio:
            return get(choice(paths))
        return set_data(choice(paths), value)
    return op


class _CreateDelete:
    """Alternates: create a sequential znode, then delete the one it made (two requests)."""

    __slots__ = ("last", "prefix", "value", "zk")

    def __init__(self, zk: ZooKeeperClient, prefix: str, value: bytes) -> None:
        self.zk = zk
        self.prefix = prefix
        self.value = value
        self.last: str | None = None

    async def __call__(self, _i: int) -> None:
        if self.last is None:
            self.last = await self.zk.create(self.prefix, self.value, mode=CreateMode.PERSISTENT_SEQUENTIAL)
        else:
            last, self.last = self.last, None
            await self.zk.delete(last)


class _Connect:
    """Opens a session (the timed part), then closes it before the next."""

    __slots__ = ("hosts", "timeout_ms")

    def __init__(self, hosts: str, timeout_ms: int) -> None:
        self.hosts = hosts
        self.timeout_ms = timeout_ms

    async def __call__(self, _i: int) -> None:
        zk = ZooKeeperClient(self.hosts, self.timeout_ms, reconnect_pause_s=0.05, reconnect_jitter_s=0.05)
        await zk.start(timeout_s=30.0)
        await zk.close()


class _Populate:
    """Creates znode ``i`` of the memory run's tree (each worker its own range of i)."""

    __slots__ = ("offset", "p", "value", "zk")

    def __init__(self, zk: ZooKeeperClient, p: Params, value: bytes, offset: int) -> None:
        self.zk, self.p, self.value, self.offset = zk, p, value, offset

    async def __call__(self, i: int) -> None:
        await self.zk.create(memory_path(self.p, self.offset + i), self.value)


class EventCounter:
    """A watcher that counts the events delivered to it."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _event: WatchedEvent) -> None:
        self.count += 1


async def watch_all(zk: ZooKeeperClient, p: Params, counter: EventCounter) -> int:
    """Put a persistent watch on every data znode; the number of watches set."""
    paths = [data_path(p, i) for i in range(p.znodes)]
    await _gather_bounded([zk.add_watch(path, AddWatchMode.PERSISTENT, counter) for path in paths])
    return len(paths)


def _lean_ops(workload: str, zk: ZooKeeperClient, paths: list[str], value: bytes, p: Params,
              rnd: random.Random) -> list[Op] | None:
    """One lean op shared by a client's slots (each call is independent), or None."""
    op: Op | None = None
    if workload == "read":
        op = _read_lean(zk, paths, rnd)
    elif workload in ("write", "watch"):
        op = _write_lean(zk, paths, value, rnd)
    elif workload == "mixed":
        op = _mixed_lean(zk, paths, value, p.read_ratio, rnd)
    return None if op is None else [op]


def make_ops(workload: str, clients: list[ZooKeeperClient], depth: int, p: Params, hosts: str,
             seed: int, sessions: int = 0, populate_offset: int = 0) -> list[Op]:
    """One op per in-flight slot: ``depth`` slots on each client.

    ``connect`` has no long-lived clients: ``sessions`` slots each open and close their own.
    ``watch`` writes through the first client only; every client watches (see :func:`watch_all`).
    """
    rnd = random.Random(seed)
    paths = [data_path(p, i) for i in range(p.znodes)]
    value = b"v" * p.value_size
    if workload == "connect":
        return [_Connect(hosts, p.session_timeout_ms) for _ in range(sessions)]
    if workload == "watch":
        clients = clients[:1]
    ops: list[Op] = []
    for zk in clients:
        lean = _lean_ops(workload, zk, paths, value, p, rnd) if p.lean else None
        for k in range(depth):
            if lean is not None:
                ops.append(lean[k % len(lean)])
            elif workload == "read":
                ops.append(_read(zk, paths, rnd))
            elif workload in ("write", "watch"):
                ops.append(_write(zk, paths, value, rnd))
            elif workload == "mixed":
                ops.append(_mixed(zk, paths, value, p.read_ratio, rnd))
            elif workload == "create-delete":
                ops.append(_CreateDelete(zk, f"{p.base}/cd/s-", value))
            elif workload == "populate":
                ops.append(_Populate(zk, p, value, populate_offset))
            else:
                raise ValueError(f"unknown workload {workload!r}")
    return ops
