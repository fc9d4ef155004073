"""Real server processes for tests: zkpy and Apache ZooKeeper 3.8 (Debian's packages).

Each server gets its own data directory and free ports on loopback; every
wait is bounded; processes are stopped by the PID we started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zkpy.bench.servers import free_port

JAVA_DIR = Path("/usr/share/java")
APACHE_JARS = ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-simple.jar",
               "netty-handler.jar", "netty-common.jar", "netty-buffer.jar", "netty-transport.jar",
               "netty-codec.jar", "netty-resolver.jar", "netty-transport-native-epoll.jar",
               "netty-transport-native-unix-common.jar", "commons-io.jar", "commons-cli.jar"]
ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")
CLI_MT = Path("/usr/lib/zookeeper/bin/cli_mt")


def apache_available() -> bool:
    return (JAVA_DIR / "zookeeper.jar").exists() and shutil.which("java") is not None


def apache_missing_reason() -> str:
    return ("Apache ZooKeeper 3.8 is not installed (apt-get install -y zookeeper zookeeper-bin; "
            "`make test` does it when run as root)")


def apache_classpath() -> str:
    return ":".join(str(JAVA_DIR / j) for j in APACHE_JARS if (JAVA_DIR / j).exists())


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
    return b"".join(chunks).decode()


@dataclass
class ServerProcess:
    """A running server: its address, data directory, config and process."""

    kind: str  # "zkpy" or "apache"
    host: str
    port: int
    data_dir: Path
    cfg_path: Path
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    extra_cfg: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.port}"

    def write_cfg(self) -> None:
        cfg = {
            "tickTime": "2000",
            "dataDir": str(self.data_dir),
            "clientPort": str(self.port),
            "clientPortAddress": self.host,
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
        }
        cfg.update(self.extra_cfg)
        self.cfg_path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))

    def command(self) -> list[str]:
        if self.kind == "zkpy":
            return [sys.executable, "-m", "zkpy", "server", str(self.cfg_path)]
        return ["java", "-Xmx512m", "-Dzookeeper.admin.enableServer=false",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                *[f"-D{k}={v}" for k, v in self.env.items() if k.startswith("zookeeper.")],
                "-cp", apache_classpath(), "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(self.cfg_path)]

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        self.start_background()
        self.wait_serving(timeout_s)
        return self

    def start_background(self) -> ServerProcess:
        """Launch the process without waiting for it (ensemble members need each other)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.cfg_path.exists() or self.extra_cfg:
            self.write_cfg()
        self.log_path = self.cfg_path.with_suffix(".log")
        env = dict(os.environ)
        env.update({k: v for k, v in self.env.items() if not k.startswith("zookeeper.")})
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(Path(__file__).resolve().parents[2]))
        log.close()
        return self

    def wait_serving(self, timeout_s: float = 30.0) -> None:
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
            time.sleep(0.1)
        raise TimeoutError(f"{self.kind} server not serving on {self.hosts} after {timeout_s}s: "
                           f"{last_err}\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)


def make_server(kind: str, base: Path, host: str = "127.0.0.1", port: int | None = None,
                extra_cfg: dict[str, str] | None = None, env: dict[str, str] | None = None) -> ServerProcess:
    port = port or free_port(host)
    base.mkdir(parents=True, exist_ok=True)
    return ServerProcess(kind=kind, host=host, port=port, data_dir=base / "data",
                         cfg_path=base / "zoo.cfg", extra_cfg=dict(extra_cfg or {}), env=dict(env or {}))


@contextlib.contextmanager
def running(kind: str, base: Path, **kw) -> Iterator[ServerProcess]:
    srv = make_server(kind, base, **kw)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
