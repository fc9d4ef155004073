"""Server processes the bench starts: zkpy and Apache ZooKeeper 3.8, with equivalent settings.

The same approach as the test harness (tests/support/servers.py): a zoo.cfg per server, a
free loopback port, bounded waits, and every process stopped by the PID we started.  Every
started server is also kept in a module registry so :func:`stop_all` (run from ``finally``,
``atexit`` and the SIGTERM handler) leaves nothing running after Ctrl-C or an error.

An :class:`Ensemble` is three such servers with ``server.N`` lines and a ``myid`` each, every
member on an address of its own in 127.0.0.0/8 (client, peer and election ports on it), as
tests/support/ensemble.py starts them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# The test helpers' choice of ports: outside the ephemeral range, so no outgoing connection takes
# one before its server binds it.
from zkpy.testing.server import free_port, free_ports

__all__ = [
    "ENSEMBLE_FIRST_IP",
    "KINDS",
    "Ensemble",
    "ServerProcess",
    "apache_available",
    "apache_heap_used_bytes",
    "four_letter",
    "free_port",
    "free_ports",
    "java_version",
    "make_ensemble",
    "make_server",
    "pinned",
    "rss_bytes",
    "stop_all",
]

KINDS = ("zkpy", "apache")
JAVA_DIR = Path("/usr/share/java")
APACHE_JARS = ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-simple.jar",
               "netty-handler.jar", "netty-common.jar", "netty-buffer.jar", "netty-transport.jar",
               "netty-codec.jar", "netty-resolver.jar", "netty-transport-native-epoll.jar",
               "netty-transport-native-unix-common.jar", "commons-io.jar", "commons-cli.jar"]
# Enough for the memory run (1,000,000 znodes of 100 bytes need ~0.5 GB live); the same for
# every workload so the JVM is configured identically throughout a run.
APACHE_HEAP_DEFAULT = "2g"
_REPO_ROOT = Path(__file__).resolve().parents[2]
# Ensemble members: 127.0.0.<first + myid - 1>, one range per kind so no two members share one.
ENSEMBLE_FIRST_IP = {"zkpy": 71, "apache": 81}
ENSEMBLE_SIZE = 3

_started: dict[int, ServerProcess] = {}


def apache_available() -> bool:
    return (JAVA_DIR / "zookeeper.jar").exists() and shutil.which("java") is not None


def apache_classpath() -> str:
    return ":".join(str(JAVA_DIR / j) for j in APACHE_JARS if (JAVA_DIR / j).exists())


def java_version() -> str:
    if shutil.which("java") is None:
        return "none"
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr
    return out.splitlines()[0] if out else "unknown"


def four_letter(host: str, port: int, cmd: str, timeout_s: float = 5.0) -> str:
    """Send a four-letter word and read the answer until the server closes."""
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.sendall(cmd.encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


@contextlib.contextmanager
def pinned(cpus: set[int] | None) -> Iterator[None]:
    """Run the block with this thread's CPU mask set to ``cpus``: a child forked inside inherits it.

    Setting the mask before exec (rather than on the PID afterwards) also covers every thread
    the JVM starts, which a later sched_setaffinity(pid) would miss.
    """
    if not cpus:
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


_HEAP_USED = re.compile(r"used (\d+)K")


def heap_used_from_heap_info(out: str) -> int:
    """Bytes used in the Java heap, from ``jcmd <pid> GC.heap_info``.

    G1 prints one "garbage-first heap ... used NK" line; Serial and Parallel (what the JVM picks
    on one CPU, e.g. under --pin) print one line per generation, to be added up.  Metaspace and
    class space lines are not heap and are left out.
    """
    total = 0
    found = False
    for line in out.splitlines():
        low = line.lower()
        if "metaspace" in low or "class space" in low:
            continue
        if "heap" in low or "generation" in low or "gen " in low:
            m = _HEAP_USED.search(line)
            if m:
                total += int(m.group(1)) * 1024
                found = True
    if not found:
        raise RuntimeError(f"cannot read the heap size from jcmd GC.heap_info:\n{out}")
    return total


def apache_heap_used_bytes(pid: int, timeout_s: float = 120.0) -> int:
    """The JVM's live heap: a full GC (jcmd GC.run), then the 'used' of GC.heap_info."""
    subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, text=True, timeout=timeout_s, check=True)
    out = subprocess.run(["jcmd", str(pid), "GC.heap_info"], capture_output=True, text=True,
                         timeout=timeout_s, check=True).stdout
    return heap_used_from_heap_info(out)


@dataclass
class ServerProcess:
    """One server we start: address, data directory, config, and the process."""

    kind: str  # "zkpy" or "apache"
    host: str
    port: int
    base: Path
    extra_cfg: dict[str, str] = field(default_factory=dict)
    cpus: set[int] | None = None
    apache_heap: str = APACHE_HEAP_DEFAULT
    proc: subprocess.Popen[bytes] | None = None
    myid: int | None = None  # an ensemble member: its server.N
    peers: dict[int, str] = field(default_factory=dict)  # N -> "host:peerPort:electionPort"

    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def cfg_path(self) -> Path:
        return self.base / "zoo.cfg"

    @property
    def log_path(self) -> Path:
        return self.base / "server.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []

    def write_cfg(self) -> None:
        cfg = {
            "tickTime": "2000",
            "dataDir": str(self.data_dir),
            "clientPort": str(self.port),
            "clientPortAddress": self.host,
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
            "forceSync": "yes",
            # Apache's default; both servers get the same per-IP limit, high enough for a storm.
            "maxClientCnxns": "0",
        }
        if self.peers:
            cfg.update({"initLimit": "10", "syncLimit": "5"})
            cfg.update({f"server.{sid}": addr for sid, addr in sorted(self.peers.items())})
        cfg.update(self.extra_cfg)
        self.cfg_path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
        if self.myid is not None:
            (self.data_dir / "myid").write_text(f"{self.myid}\n")

    def command(self) -> list[str]:
        if self.kind == "zkpy":
            return [sys.executable, "-m", "zkpy", "server", str(self.cfg_path), "--log-level", "WARNING"]
        return ["java", f"-Xmx{self.apache_heap}", "-Dzookeeper.admin.enableServer=false",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", apache_classpath(), "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(self.cfg_path)]

    def start(self, timeout_s: float = 120.0) -> float:
        """Start and wait until it answers; the seconds from spawn to serving."""
        t0 = time.monotonic()
        self.spawn()
        self.wait_serving(timeout_s)
        return time.monotonic() - t0

    def spawn(self) -> None:
        """Start the process (registered for :func:`stop_all` at once); do not wait for it."""
        if self.proc is not None:
            raise RuntimeError(f"{self.kind} server already running (pid {self.proc.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_cfg()
        log = open(self.log_path, "ab")
        try:
            with pinned(self.cpus):
                self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=str(_REPO_ROOT))
        finally:
            log.close()
        _started[self.proc.pid] = self

    def mode(self) -> str | None:
        """``srvr``'s Mode (standalone, leader, follower...); None while not serving."""
        try:
            text = four_letter(self.host, self.port, "srvr", timeout_s=2.0)
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def wait_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last_err: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if "Mode:" in four_letter(self.host, self.port, "srvr", timeout_s=2.0):
                    return
            except OSError as e:
                last_err = e
            time.sleep(0.02)
        raise TimeoutError(f"{self.kind} server not serving on {self.hosts} after {timeout_s}s: "
                           f"{last_err}\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM the PID we started (SIGKILL if it does not exit in time) and reap it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        _started.pop(proc.pid, None)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)

    def wipe(self) -> None:
        """Remove the data directory (the server must be stopped)."""
        assert self.proc is None
        shutil.rmtree(self.data_dir, ignore_errors=True)


def make_server(kind: str, base: Path, *, host: str = "127.0.0.1", extra_cfg: dict[str, str] | None = None,
                cpus: set[int] | None = None, apache_heap: str = APACHE_HEAP_DEFAULT) -> ServerProcess:
    if kind not in KINDS:
        raise ValueError(f"unknown server kind {kind!r}")
    base.mkdir(parents=True, exist_ok=True)
    return ServerProcess(kind=kind, host=host, port=free_port(host), base=base,
                         extra_cfg=dict(extra_cfg or {}), cpus=cpus, apache_heap=apache_heap)


@dataclass
class Ensemble:
    """Members of one ensemble, all of one kind; ``hosts`` is the connect string of every member."""

    kind: str
    members: list[ServerProcess]

    @property
    def hosts(self) -> str:
        return ",".join(m.hosts for m in self.members)

    @property
    def pids(self) -> list[int]:
        return [pid for m in self.members for pid in m.pids]

    @property
    def pid(self) -> int | None:
        """The leader's PID (the member a profile samples); None between leaders."""
        for m in self.members:
            if m.proc is not None and m.mode() == "leader":
                return m.pid
        return None

    def start(self, timeout_s: float = 120.0) -> float:
        """Start every member, then wait until each serves (which takes an elected leader)."""
        t0 = time.monotonic()
        for m in self.members:
            m.spawn()
        deadline = t0 + timeout_s
        for m in self.members:
            m.wait_serving(max(1.0, deadline - time.monotonic()))
        return time.monotonic() - t0

    def roles(self) -> dict[str, str | None]:
        return {m.host: m.mode() for m in self.members}

    def stop(self, timeout_s: float = 60.0) -> None:
        for m in self.members:
            m.stop(timeout_s)


def make_ensemble(kind: str, base: Path, *, size: int = ENSEMBLE_SIZE, first_ip: int | None = None,
                  extra_cfg: dict[str, str] | None = None, cpus: set[int] | None = None,
                  apache_heap: str = APACHE_HEAP_DEFAULT) -> Ensemble:
    """``size`` members of ``kind`` on 127.0.0.<first_ip>..., each with free ports on its address."""
    if kind not in KINDS:
        raise ValueError(f"unknown server kind {kind!r}")
    first = ENSEMBLE_FIRST_IP[kind] if first_ip is None else first_ip
    if first < 1 or first + size - 1 > 254:
        raise ValueError(f"no room for {size} members from 127.0.0.{first}")
    hosts = {sid: f"127.0.0.{first + sid - 1}" for sid in range(1, size + 1)}
    ports = {sid: tuple(free_ports(h, 3)) for sid, h in hosts.items()}
    peers = {sid: f"{hosts[sid]}:{ports[sid][1]}:{ports[sid][2]}" for sid in hosts}
    members = []
    for sid in hosts:
        member_base = base / f"member{sid}"
        member_base.mkdir(parents=True, exist_ok=True)
        members.append(ServerProcess(kind=kind, host=hosts[sid], port=ports[sid][0], base=member_base,
                                     extra_cfg=dict(extra_cfg or {}), cpus=cpus, apache_heap=apache_heap,
                                     myid=sid, peers=peers))
    return Ensemble(kind, members)


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet."""
    for srv in list(_started.values()):
        with contextlib.suppress(Exception):
            srv.stop(timeout_s=20.0)
