"""Three member processes on 127.0.0.11-13 (``python -m zkpy.quorum.demo``): election, replication,
kill -9 of the leader, and a member restarted with an empty data directory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zkpy.quorum.zxid import epoch_of
from zkpy.storage.txnlog import TxnLogIterator

REPO = Path(__file__).resolve().parent.parent
HOSTS = {1: "127.0.0.11", 2: "127.0.0.12", 3: "127.0.0.13", 4: "127.0.0.14"}
WAIT_S = 30.0


def free_ports(host: str, n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Member:
    def __init__(self, sid: int, root: Path, servers: str, control_port: int, extra: str = "") -> None:
        self.sid = sid
        self.host = HOSTS[sid]
        self.control_port = control_port
        self.data = root / f"data{sid}"
        self.cfg = root / f"zoo{sid}.cfg"
        self.log = root / f"member{sid}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / "myid").write_text(f"{sid}\n")
        self.cfg.write_text(f"tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={self.data}\n"
                            f"clientPort={control_port}\n{extra}{servers}")

    def start(self) -> None:
        (self.data / "myid").write_text(f"{self.sid}\n")
        with open(self.log, "ab") as out:
            # A small in-memory history so a member that lost its disk is sent a snapshot.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zkpy.quorum.demo", "--config", str(self.cfg), "--history-limit", "8"],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def call(self, req: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
        with socket.create_connection((self.host, self.control_port), timeout=timeout) as s:
            s.sendall(json.dumps(req).encode() + b"\n")
            line = s.makefile().readline()
        return json.loads(line)

    def status(self) -> dict[str, Any] | None:
        try:
            return self.call({"op": "status"}, timeout=2.0)
        except (OSError, ValueError):
            return None


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def settled(members: list[Member], leader_serves: bool = True) -> Callable[[], dict[int, dict[str, Any]] | None]:
    """All given members are in broadcast, serving (the leader only if it serves), one leads."""
    def check() -> dict[int, dict[str, Any]] | None:
        sts = {m.sid: m.status() for m in members}
        if any(s is None or s["phase"] != "broadcast" for s in sts.values()):
            return None
        if any(s is not None and not s["serving"] and (leader_serves or s["role"] != "leading")
               for s in sts.values()):
            return None
        leaders = [sid for sid, s in sts.items() if s is not None and s["role"] == "leading"]
        if len(leaders) != 1 or any(s is not None and s["leader"] != leaders[0] for s in sts.values()):
            return None
        return sts  # type: ignore[return-value]
    return check


def make_ensemble(root: Path, observers: tuple[int, ...] = (), extra: str = "") -> dict[int, Member]:
    sids = [1, 2, 3, *observers]
    ports = {sid: free_ports(HOSTS[sid], 3) for sid in sids}
    servers = "".join(f"server.{sid}={HOSTS[sid]}:{p[0]}:{p[1]}{':observer' if sid in observers else ''}"
                      f";{HOSTS[sid]}:{p[2]}\n" for sid, p in ports.items())
    return {sid: Member(sid, root, servers, ports[sid][2],
                        extra + ("peerType=observer\n" if sid in observers else "")) for sid in sids}


@pytest.fixture
def ensemble(tmp_path: Path) -> Iterator[dict[int, Member]]:
    members = make_ensemble(tmp_path)
    try:
        for m in members.values():
            m.start()
        yield members
    finally:
        for m in members.values():
            m.stop()


def write(m: Member, data: str) -> dict[str, Any]:
    r = m.call({"op": "write", "data": data})
    assert r["ok"], (m.sid, r)
    return r


def paths_after_sync(m: Member) -> set[str]:
    assert m.call({"op": "sync"})["ok"]
    return set(m.call({"op": "paths"})["paths"])


def test_ensemble_replicates_survives_leader_kill_and_resyncs_an_empty_member(ensemble: dict[int, Member]) -> None:
    members = list(ensemble.values())
    first = wait_for("a leader and three serving members", settled(members))
    leader_sid = next(sid for sid, s in first.items() if s["role"] == "leading")

    # Writes through every member (followers forward them to the leader).
    acked = {write(members[k % 3], f"before-{k}")["path"] for k in range(30)}
    for m in members:
        assert acked <= paths_after_sync(m)
    digests = {m.call({"op": "status"})["digest"] for m in members}
    assert len(digests) == 1

    # kill -9 the leader: the others elect a new one in a new epoch, nothing acknowledged is lost.
    old_epoch = first[leader_sid]["epoch"]
    ensemble[leader_sid].kill9()
    survivors = [m for m in members if m.sid != leader_sid]
    second = wait_for("a new leader among the survivors", settled(survivors))
    new_leader = next(sid for sid, s in second.items() if s["role"] == "leading")
    assert new_leader != leader_sid
    assert all(s["epoch"] > old_epoch for s in second.values())
    for m in survivors:
        assert acked <= paths_after_sync(m)
    acked |= {write(survivors[k % 2], f"after-{k}")["path"] for k in range(20)}

    # The killed member comes back with an empty data directory: it gets a snapshot.
    dead = ensemble[leader_sid]
    for f in (dead.data / "version-2").iterdir():
        f.unlink()
    dead.start()
    third = wait_for("the restarted member in sync", settled(members))
    assert {s["leader"] for s in third.values()} == {new_leader}
    for m in members:
        assert acked <= paths_after_sync(m)
    assert len({m.call({"op": "status"})["digest"] for m in members}) == 1
    with open(dead.log, "rb") as f:
        log_text = f.read().decode(errors="replace")
    assert "database replaced" in log_text  # installed from the leader's SNAP

    # What is on disk is Apache's format: epoch files, and the log holds the txns.
    v2 = ensemble[new_leader].data / "version-2"
    current = int((v2 / "currentEpoch").read_text())
    assert current == int((v2 / "acceptedEpoch").read_text()) == second[new_leader]["epoch"]
    logged = [e.hdr.zxid for e in TxnLogIterator(v2)]
    assert logged == sorted(logged) and epoch_of(logged[-1]) == current
    with contextlib.suppress(OSError):
        for m in members:
            m.stop()


def test_observer_serves_and_a_leader_with_leader_serves_off_does_not(tmp_path: Path) -> None:
    members = make_ensemble(tmp_path, observers=(4,), extra="leaderServes=no\n")
    try:
        for m in members.values():
            m.start()
        sts = wait_for("three voters and an observer in broadcast", settled(list(members.values()), False))
        assert sts[4]["role"] == "observing" and sts[4]["serving"]
        leader = next(sid for sid, s in sts.items() if s["role"] == "leading")
        assert not sts[leader]["serving"]
        assert not members[leader].call({"op": "write", "data": "x"})["ok"]
        acked = {write(members[sid], f"v{sid}-{k}")["path"] for k in range(5) for sid in (4, *(
            s for s in (1, 2, 3) if s != leader))}
        for sid in (1, 2, 3, 4):
            if sid != leader:
                assert acked <= paths_after_sync(members[sid])
        assert acked <= set(members[leader].call({"op": "paths"})["paths"])
    finally:
        for m in members.values():
            m.stop()
