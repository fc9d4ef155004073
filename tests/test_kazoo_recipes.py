"""kazoo's recipes against zkpy: a standalone server, and an ensemble whose leader fails mid-way.

Recipes are kazoo's job; these tests show that zkpy gives them what they rely on (sequential
ephemerals, watches, atomic versions) with their guarantees intact.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from tests.support.ensemble import make_ensemble
from tests.support.servers import ServerProcess


def kazoo(hosts: str) -> KazooClient:
    zk = KazooClient(hosts=hosts, timeout=10, connection_retry=KazooRetry(max_tries=-1, max_delay=1),
                     command_retry=KazooRetry(max_tries=-1, max_delay=1, deadline=60))
    zk.start(timeout=30)
    return zk


def test_lock_gives_mutual_exclusion(shared_zkpy_server: ServerProcess) -> None:
    clients = [kazoo(shared_zkpy_server.hosts) for _ in range(4)]
    inside = 0
    peak = 0
    done = 0
    guard = threading.Lock()

    def work(zk: KazooClient) -> None:
        nonlocal inside, peak, done
        lock = zk.Lock("/recipes/lock", identifier=str(id(zk)))
        for _ in range(5):
            with lock:
                with guard:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.005)
                with guard:
                    inside -= 1
                    done += 1

    threads = [threading.Thread(target=work, args=(zk,)) for zk in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for zk in clients:
        zk.stop()
    assert done == 20 and peak == 1


def test_election_has_one_leader_and_a_successor(shared_zkpy_server: ServerProcess) -> None:
    a, b = kazoo(shared_zkpy_server.hosts), kazoo(shared_zkpy_server.hosts)
    leaders: list[str] = []
    elected = threading.Event()
    second = threading.Event()
    stop_a = threading.Event()

    def run_a() -> None:
        leaders.append("a")
        elected.set()
        stop_a.wait(10)

    def run_b() -> None:
        leaders.append("b")
        second.set()

    ta = threading.Thread(target=a.Election("/recipes/election", "a").run, args=(run_a,), daemon=True)
    ta.start()
    assert elected.wait(10)
    tb = threading.Thread(target=b.Election("/recipes/election", "b").run, args=(run_b,), daemon=True)
    tb.start()
    time.sleep(0.3)
    assert leaders == ["a"]
    stop_a.set()  # a's term ends: it leaves the election and b is elected
    ta.join(10)
    assert second.wait(10)
    assert leaders == ["a", "b"]
    tb.join(10)
    a.stop()
    b.stop()


def test_barrier_and_double_barrier(shared_zkpy_server: ServerProcess) -> None:
    zk = kazoo(shared_zkpy_server.hosts)
    other = kazoo(shared_zkpy_server.hosts)
    try:
        barrier = zk.Barrier("/recipes/barrier")
        barrier.create()
        passed = threading.Event()
        threading.Thread(target=lambda: (other.Barrier("/recipes/barrier").wait(10), passed.set()),
                         daemon=True).start()
        time.sleep(0.2)
        assert not passed.is_set()
        barrier.remove()
        assert passed.wait(10)
        entered = []
        parties = [zk.DoubleBarrier("/recipes/double", 2), other.DoubleBarrier("/recipes/double", 2)]
        ths = [threading.Thread(target=lambda p=p: (p.enter(), entered.append(1), p.leave())) for p in parties]
        for t in ths:
            t.start()
        for t in ths:
            t.join(20)
        assert len(entered) == 2
    finally:
        zk.stop()
        other.stop()


def test_queue_and_lock_queue_preserve_items_and_priority(shared_zkpy_server: ServerProcess) -> None:
    zk = kazoo(shared_zkpy_server.hosts)
    try:
        q = zk.Queue("/recipes/queue")
        for i in range(5):
            q.put(str(i).encode(), priority=100 - i)
        assert [q.get() for _ in range(5)] == [b"4", b"3", b"2", b"1", b"0"]
        lq = zk.LockingQueue("/recipes/lqueue")
        lq.put_all([b"x", b"y"])
        assert lq.get(5) == b"x"
        assert lq.consume()
        assert lq.get(5) == b"y"
        assert lq.consume()
    finally:
        zk.stop()


def test_party_and_counter(shared_zkpy_server: ServerProcess) -> None:
    zk, other = kazoo(shared_zkpy_server.hosts), kazoo(shared_zkpy_server.hosts)
    try:
        p1, p2 = zk.Party("/recipes/party", "one"), other.Party("/recipes/party", "two")
        p1.join()
        p2.join()
        assert sorted(p1) == ["one", "two"]
        p2.leave()
        assert list(p1) == ["one"]
        counters = [zk.Counter("/recipes/counter"), other.Counter("/recipes/counter")]
        ths = [threading.Thread(target=lambda c=c: [c.__add__(1) for _ in range(25)]) for c in counters]
        for t in ths:
            t.start()
        for t in ths:
            t.join(60)
        assert zk.Counter("/recipes/counter").value == 50
    finally:
        zk.stop()
        other.stop()


@pytest.mark.slow
def test_lock_and_counter_keep_their_guarantees_when_the_leader_fails(tmp_path: Path) -> None:
    ens = make_ensemble("zkpy", tmp_path / "recipes", n=3, first_ip=91)
    ens.start()
    try:
        clients = [kazoo(ens.hosts) for _ in range(3)]
        inside = 0
        peak = 0
        guard = threading.Lock()
        increments = 0

        def work(zk: KazooClient) -> None:
            nonlocal inside, peak, increments
            lock = zk.Lock("/ha/lock", identifier=str(id(zk)))
            counter = zk.Counter("/ha/counter")
            for _ in range(15):
                with lock:
                    with guard:
                        inside += 1
                        peak = max(peak, inside)
                    time.sleep(0.01)
                    with guard:
                        inside -= 1
                counter += 1
                with guard:
                    increments += 1

        threads = [threading.Thread(target=work, args=(zk,), daemon=True) for zk in clients]
        for t in threads:
            t.start()
        time.sleep(0.8)
        ens.members[ens.leader()].kill9()
        for t in threads:
            t.join(120)
        assert all(not t.is_alive() for t in threads)
        assert peak == 1
        final = kazoo(ens.hosts)
        assert final.Counter("/ha/counter").value == increments == 45
        final.stop()
        for zk in clients:
            zk.stop()
    finally:
        ens.stop()
