"""A real 3-member zkpy ensemble on 127.0.0.11-13: replication, global sessions, failover, faults.

Fault tests (kill -9, SIGSTOP, partitions with iptables on `lo`) are marked slow; they check
after each fault that every acknowledged write is on every member, that no unacknowledged
write is half there, that clients kept their sessions while a majority stayed up, and that
compare-and-set histories are linearizable.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, ConnectionLoss, KazooException, SessionExpiredError
from kazoo.retry import KazooRetry

from tests.support.ensemble import Ensemble, make_ensemble
from tests.support.linearizability import INF, Op, check
from tests.support.servers import ServerProcess, four_letter


def kazoo(hosts: str, **kw) -> KazooClient:
    client = KazooClient(hosts=hosts, timeout=10, connection_retry=KazooRetry(max_tries=-1, max_delay=1), **kw)
    client.start(timeout=30)
    return client


def create_path(hosts: str, path: str) -> None:
    """``path`` created through a client of its own, closed again."""
    zk = kazoo(hosts)
    try:
        zk.ensure_path(path)
    finally:
        zk.stop()


def member_client(m: ServerProcess) -> KazooClient:
    return kazoo(m.hosts)


def synced_children(m: ServerProcess, path: str) -> set[str]:
    zk = member_client(m)
    try:
        zk.sync(path)
        return set(zk.get_children(path))
    finally:
        zk.stop()


def wait_until(pred, timeout_s: float = 30.0, step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except (KazooException, OSError):
            pass
        time.sleep(step_s)
    return False


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ensemble]:
    ens = make_ensemble("zkpy", tmp_path_factory.mktemp("ens"), n=3, observers=1, first_ip=21)
    ens.start()
    try:
        yield ens
    finally:
        ens.stop()


# ---------------------------------------------------------------------- replication


def test_exactly_one_leader_and_the_observer_observes(ensemble: Ensemble) -> None:
    modes = {sid: ensemble.mode(sid) for sid in ensemble.members}
    assert sorted(modes.values()) == ["follower", "follower", "leader", "observer"]
    assert modes[4] == "observer"


def test_write_through_any_member_is_seen_by_every_member(ensemble: Ensemble) -> None:
    first = member_client(ensemble.members[1])
    try:
        first.ensure_path("/repl")
    finally:
        first.stop()
    for sid, m in ensemble.members.items():
        zk = member_client(m)
        try:
            zk.create(f"/repl/via-{sid}", str(sid).encode())
        finally:
            zk.stop()
    expected = {f"via-{sid}" for sid in ensemble.members}
    for m in ensemble.members.values():
        assert synced_children(m, "/repl") == expected


def test_every_member_applies_the_same_txns_with_the_same_stats(ensemble: Ensemble) -> None:
    zk = kazoo(ensemble.hosts)
    try:
        zk.ensure_path("/stats")
        for i in range(10):
            zk.create(f"/stats/n{i}", b"x", sequence=True)
        zk.set("/stats", b"p")
    finally:
        zk.stop()
    views = []
    for m in ensemble.members.values():
        c = member_client(m)
        try:
            c.sync("/stats")
            data, stat = c.get("/stats")
            views.append((data, stat, sorted(c.get_children("/stats"))))
        finally:
            c.stop()
    assert all(v == views[0] for v in views)


def test_sessions_are_global_and_their_ephemerals_vanish_everywhere(ensemble: Ensemble) -> None:
    owner = member_client(ensemble.members[2])
    owner.create("/global-eph", b"", ephemeral=True)
    sid = owner.client_id[0]
    for m in ensemble.members.values():
        c = member_client(m)
        try:
            c.sync("/global-eph")
            assert c.exists("/global-eph").ephemeralOwner == sid
        finally:
            c.stop()
    owner.stop()
    pzxids = set()
    for m in ensemble.members.values():
        c = member_client(m)
        try:
            c.sync("/")
            assert c.exists("/global-eph") is None
            pzxids.add(c.exists("/").pzxid)
        finally:
            c.stop()
    assert len(pzxids) == 1  # removed by one txn, at one zxid, on every member


def test_session_moves_between_members_and_keeps_its_ephemeral(ensemble: Ensemble) -> None:
    a = member_client(ensemble.members[1])
    a.create("/moving", b"", ephemeral=True)
    sid, pw = a.client_id
    b = KazooClient(hosts=ensemble.members[3].hosts, client_id=(sid, pw), timeout=10)
    b.start(timeout=30)
    try:
        assert b.client_id[0] == sid
        assert b.exists("/moving").ephemeralOwner == sid
    finally:
        b.stop()
        a.stop()


def test_expired_session_is_expired_by_the_leader_on_every_member(tmp_path: Path) -> None:
    ens = make_ensemble("zkpy", tmp_path / "exp", n=3, first_ip=31)
    ens.start()
    try:
        from tests.support.wire import WireClient
        from zkpy.proto.constants import OpCode
        from zkpy.proto.records import ACL, CreateRequest, Id

        follower = next(sid for sid in ens.members if ens.mode(sid) == "follower")
        m = ens.members[follower]
        silent = WireClient(m.host, m.port, timeout_ms=800).connect()
        silent.call(OpCode.create, CreateRequest("/short-lived", b"", [ACL(31, Id("world", "anyone"))], 1))
        # The client goes silent: the leader expires it from the follower's relayed pings.
        for other in ens.members.values():
            assert wait_until(lambda o=other: "short-lived" not in synced_children(o, "/"), 20)
        with pytest.raises(ConnectionError):
            WireClient(m.host, m.port, session_id=silent.session_id, passwd=silent.passwd).connect()
    finally:
        ens.stop()


def test_srvr_and_mntr_report_quorum_roles(ensemble: Ensemble) -> None:
    leader = ensemble.leader()
    m = ensemble.members[leader]
    assert "Mode: leader" in four_letter(m.host, m.port, "srvr")
    mntr = four_letter(m.host, m.port, "mntr")
    assert "zk_server_state\tleader" in mntr
    assert "zk_synced_followers\t2" in mntr and "zk_quorum_size\t3" in mntr


@pytest.mark.parametrize("aio", ["1", "0"], ids=["kernel-aio", "disk-thread"])
def test_every_member_reports_its_log_fsyncs_and_warns_of_slow_ones(tmp_path: Path, aio: str) -> None:
    # fsync.warningthresholdms=0: every fsync is "slow", so each member warns as ZooKeeper does.
    ens = make_ensemble("zkpy", tmp_path, n=3, first_ip=121, extra_cfg={"fsync.warningthresholdms": "0"})
    for m in ens.members.values():
        m.env["ZKPY_TXNLOG_AIO"] = aio
    ens.start()
    try:
        zk = member_client(ens.members[1])
        try:
            for i in range(20):
                zk.create(f"/fsynced-{i}", b"x")
        finally:
            zk.stop()
        for m in ens.members.values():
            # Every member logs every txn; a follower's last COMMIT may still be on its way.
            def counted(m: ServerProcess = m) -> bool:
                mntr = dict(line.split("\t", 1) for line in four_letter(m.host, m.port, "mntr").splitlines())
                return int(mntr["zk_cnt_fsynctime"]) >= 1 and float(mntr["zk_max_fsynctime"]) >= 0
            assert wait_until(counted, timeout_s=10), m.host
            assert "fsync-ing the write ahead log took" in m.log_path.read_text(errors="replace"), m.host
    finally:
        ens.stop()


# ---------------------------------------------------------------------- faults


class Writer:
    """A client writing numbered znodes through the whole ensemble; records what was acknowledged."""

    def __init__(self, hosts: str, prefix: str) -> None:
        self.zk = kazoo(hosts)
        self.prefix = prefix
        self.acked: list[str] = []
        self.attempted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set() and i < 100_000:
            path = f"{self.prefix}/w{i:06d}"
            i += 1
            self.attempted = i
            try:
                self.zk.create(path, b"v")
                self.acked.append(path.rsplit("/", 1)[1])
            except (ConnectionLoss, SessionExpiredError, KazooException):
                time.sleep(0.05)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(20)
        self.zk.stop()


def assert_all_members_agree(ens: Ensemble, path: str, acked: list[str]) -> None:
    views = {sid: synced_children(m, path) for sid, m in ens.members.items()
             if m.proc is not None and m.proc.poll() is None}
    first = next(iter(views.values()))
    assert all(v == first for v in views.values()), "members disagree"
    missing = set(acked) - first
    assert not missing, f"acknowledged writes lost: {sorted(missing)[:5]}"


@pytest.mark.slow
def test_leader_killed_under_load_loses_nothing_and_clients_keep_sessions(tmp_path: Path) -> None:
    ens = make_ensemble("zkpy", tmp_path / "kill", n=3, first_ip=41)
    ens.start()
    try:
        setup = kazoo(ens.hosts)
        setup.ensure_path("/load")
        keeper = kazoo(ens.hosts)
        keeper.create("/kept", b"", ephemeral=True)
        kept_sid = keeper.client_id[0]
        setup.stop()
        with Writer(ens.hosts, "/load") as writer:
            time.sleep(1.5)
            old_leader = ens.leader()
            ens.members[old_leader].kill9()
            new_leader = ens.leader(30)
            assert new_leader != old_leader
            time.sleep(1.5)
        assert len(writer.acked) > 20
        assert keeper.client_id[0] == kept_sid
        assert wait_until(lambda: keeper.exists("/kept") is not None, 20)
        assert_all_members_agree(ens, "/load", writer.acked)
        # The old leader comes back, catches up and agrees too.
        ens.members[old_leader].start_background()
        ens.wait_serving(old_leader, 30)
        assert_all_members_agree(ens, "/load", writer.acked)
        # Then a follower dies under load: the majority goes on.
        with Writer(ens.hosts, "/load2") as writer2:
            setup2 = kazoo(ens.hosts)
            setup2.ensure_path("/load2")
            setup2.stop()
            time.sleep(1.0)
            follower = next(sid for sid in ens.members if ens.mode(sid) == "follower")
            ens.members[follower].kill9()
            time.sleep(1.5)
        assert len(writer2.acked) > 10
        assert keeper.exists("/kept") is not None
        assert_all_members_agree(ens, "/load2", writer2.acked)
        keeper.stop()
    finally:
        ens.stop()


@pytest.mark.slow
def test_five_members_survive_two_failures_and_stop_at_three(tmp_path: Path) -> None:
    """5 voters: killing the leader and a follower under load leaves a majority that serves and
    loses nothing; a third failure leaves 2 of 5, which stop serving; the members come back and
    catch up."""
    ens = make_ensemble("zkpy", tmp_path / "five", n=5, first_ip=101)
    ens.start()
    try:
        create_path(ens.hosts, "/five")
        with Writer(ens.hosts, "/five") as writer:
            time.sleep(1.0)
            old_leader = ens.leader()
            ens.members[old_leader].kill9()
            assert ens.leader(30) != old_leader
            assert wait_until(lambda: any(ens.mode(sid) == "follower" for sid in ens.members), 30)
            follower = next(sid for sid in ens.members if ens.mode(sid) == "follower")
            ens.members[follower].kill9()
            assert ens.leader(30) not in (old_leader, follower)
            time.sleep(1.5)
        assert len(writer.acked) > 20
        assert_all_members_agree(ens, "/five", writer.acked)
        # A third failure: the two left are a minority and stop serving clients.
        third = next(sid for sid in ens.members if ens.mode(sid) == "follower")
        ens.members[third].kill9()
        left = [sid for sid, m in ens.members.items() if m.proc is not None and m.proc.poll() is None]
        assert len(left) == 2
        assert wait_until(lambda: all(ens.mode(sid) is None for sid in left), 30)
        srvr = four_letter(ens.members[left[0]].host, ens.members[left[0]].port, "srvr")
        assert "not currently serving" in srvr
        for sid in (old_leader, follower, third):
            ens.members[sid].start_background()
        for sid in ens.members:
            ens.wait_serving(sid, 60)
        assert_all_members_agree(ens, "/five", writer.acked)
    finally:
        ens.stop()


@pytest.mark.slow
def test_follower_restarted_with_an_empty_data_dir_gets_a_snapshot(tmp_path: Path) -> None:
    ens = make_ensemble("zkpy", tmp_path / "snap", n=3, first_ip=51)
    ens.start()
    try:
        zk = kazoo(ens.hosts)
        zk.ensure_path("/bulk")
        for i in range(200):
            zk.create(f"/bulk/n{i}", b"d" * 50)
        zk.stop()
        follower = next(sid for sid in ens.members if ens.mode(sid) == "follower")
        m = ens.members[follower]
        m.kill9()
        shutil.rmtree(m.data_dir / "version-2")
        m.start_background()
        ens.wait_serving(follower, 30)
        assert len(synced_children(m, "/bulk")) == 200
    finally:
        ens.stop()


@pytest.mark.slow
def test_paused_member_rejoins_and_catches_up(tmp_path: Path) -> None:
    ens = make_ensemble("zkpy", tmp_path / "pause", n=3, first_ip=61)
    ens.start()
    try:
        follower = next(sid for sid in ens.members if ens.mode(sid) == "follower")
        m = ens.members[follower]
        # The writer talks to the two members that keep running: a client of the paused one
        # would only see its requests time out.
        zk = kazoo(",".join(o.hosts for sid, o in ens.members.items() if sid != follower))
        zk.ensure_path("/p")
        assert m.proc is not None
        m.proc.send_signal(signal.SIGSTOP)
        try:
            for i in range(30):
                zk.create(f"/p/n{i}")
        finally:
            m.proc.send_signal(signal.SIGCONT)
        zk.stop()
        ens.wait_serving(follower, 30)
        assert len(synced_children(m, "/p")) == 30
    finally:
        ens.stop()


class Partition:
    """iptables rules on `lo`, in a chain of our own, that cut one member off from the others."""

    CHAIN = "ZKPY-TEST-PARTITION"

    def __init__(self, isolated: str, others: list[str]) -> None:
        self.isolated = isolated
        self.others = others

    @staticmethod
    def available() -> bool:
        return shutil.which("iptables") is not None and subprocess.run(
            ["iptables", "-L", "-n"], capture_output=True, timeout=10).returncode == 0

    def _ipt(self, *args: str) -> None:
        subprocess.run(["iptables", *args], check=True, capture_output=True, timeout=10)

    def __enter__(self) -> Partition:
        subprocess.run(["iptables", "-N", self.CHAIN], capture_output=True, timeout=10)
        self._ipt("-F", self.CHAIN)
        for other in self.others:
            self._ipt("-A", self.CHAIN, "-s", self.isolated, "-d", other, "-j", "DROP")
            self._ipt("-A", self.CHAIN, "-s", other, "-d", self.isolated, "-j", "DROP")
        self._ipt("-I", "INPUT", "-i", "lo", "-j", self.CHAIN)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["iptables", "-D", "INPUT", "-i", "lo", "-j", self.CHAIN], capture_output=True, timeout=10)
        subprocess.run(["iptables", "-F", self.CHAIN], capture_output=True, timeout=10)
        subprocess.run(["iptables", "-X", self.CHAIN], capture_output=True, timeout=10)


@pytest.mark.slow
def test_partitioned_leader_stops_serving_and_rejoins_after_heal(tmp_path: Path) -> None:
    if not Partition.available():
        pytest.skip("iptables is not available (root and the iptables package are needed)")
    ens = make_ensemble("zkpy", tmp_path / "part", n=3, first_ip=71)
    ens.start()
    try:
        create_path(ens.hosts, "/part")
        old = ens.leader()
        isolated = ens.members[old].host
        others = [m.host for sid, m in ens.members.items() if sid != old]
        with Writer(",".join(m.hosts for sid, m in ens.members.items() if sid != old), "/part") as writer, \
                Partition(isolated, others):
            assert wait_until(lambda: ens.mode(old) not in ("leader", "follower"), 30)
            new = ens.leader(30)
            assert new != old
            time.sleep(1.0)
        ens.wait_serving(old, 30)
        assert len(writer.acked) > 5
        assert_all_members_agree(ens, "/part", writer.acked)
    finally:
        ens.stop()


@pytest.mark.slow
def test_compare_and_set_history_is_linearizable_across_a_leader_kill(tmp_path: Path) -> None:
    ens = make_ensemble("zkpy", tmp_path / "cas", n=3, first_ip=81)
    ens.start()
    history: list[Op] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    try:
        setup = kazoo(ens.hosts)
        setup.create("/reg", b"0")
        setup.stop()

        def record(op: Op) -> None:
            with lock:
                history.append(op)

        def worker(cid: int, member: ServerProcess, stop: threading.Event) -> None:
            zk = kazoo(member.hosts)
            rng = random.Random(cid)
            try:
                for _ in range(40):
                    if stop.is_set():
                        break
                    start = time.monotonic() - t0
                    try:
                        # ZooKeeper's reads are sequentially consistent, not linearizable: a
                        # follower may lag.  sync first makes this read see every write that
                        # completed before it began, so it belongs in the history.
                        zk.sync("/reg")
                        data, stat = zk.get("/reg")
                    except KazooException:
                        time.sleep(0.05)
                        continue
                    record(Op(cid, "read", start, time.monotonic() - t0, (int(data), stat.version), True))
                    if rng.random() < 0.5:
                        continue
                    new = rng.randrange(1, 1000)
                    start = time.monotonic() - t0
                    try:
                        zk.set("/reg", str(new).encode(), version=stat.version)
                        ok: bool | None = True
                    except BadVersionError:
                        ok = False
                    except KazooException:
                        ok = None  # the outcome is unknown: it may or may not have happened
                    end = time.monotonic() - t0 if ok is not None else INF
                    record(Op(cid, "cas", start, end, (stat.version, new), ok))
            finally:
                zk.stop()

        stop = threading.Event()
        members = list(ens.members.values())
        threads = [threading.Thread(target=worker, args=(i, members[i % 3], stop), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        leader = ens.leader()
        ens.members[leader].kill9()
        for t in threads:
            t.join(90)
        stop.set()
    finally:
        ens.stop()
    assert len(history) > 20
    if not check(history, (0, 0)):
        dump = tmp_path / "history.txt"
        dump.write_text("\n".join(repr(op) for op in sorted(history, key=lambda o: o.start)))
        raise AssertionError(f"the compare-and-set history is not linearizable (history in {dump})")
