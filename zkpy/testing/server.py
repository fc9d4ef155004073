"""Throw-away zkpy server processes for tests: temporary data, free ports, bounded waits, clean stops.

A :class:`ZkServer` is a real ``python -m zkpy server`` process, so a test talks to it over TCP
exactly as production code talks to ZooKeeper, and can stop, restart or kill -9 it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from zkpy.testing.sessions import expire_session as _expire_session

# Every ZkServer not yet closed, so that a process outlives no interpreter that forgot it.
_live: weakref.WeakSet[ZkServer] = weakref.WeakSet()
_POLL_S = 0.05
_BIND_RETRIES = 3
# Ports chosen for servers start here (above the registered range's busiest part) and skip the
# kernel's ephemeral range; a bounded number of tries, then the kernel chooses.
_FIRST_CHOSEN_PORT = 10000
_PORT_PICKS = 200


class ServerStartError(RuntimeError):
    """The server process exited, or did not serve in time; the message ends with its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (another process may still take it: callers retry)."""
    return free_ports(host, 1)[0]


def free_ports(host: str, n: int) -> list[int]:
    """``n`` different ports nothing is bound to right now, outside the kernel's range of
    ephemeral ports where it can: a port from that range can be taken as the source port of any
    outgoing connection before the server binds it (ensemble members connecting to peers that
    are not listening yet do exactly that), so the bind would fail."""
    low, high = _ephemeral_range()
    candidates = [p for p in range(_FIRST_CHOSEN_PORT, 65536) if p < low or p > high]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    ports: list[int] = []
    with contextlib.ExitStack() as held:  # each held until all are chosen, so they differ
        for port in random.sample(candidates, min(_PORT_PICKS, len(candidates))):
            if len(ports) == n:
                break
            s = held.enter_context(socket.socket(family))
            try:
                s.bind((host, port))
            except OSError:
                continue
            ports.append(port)
        while len(ports) < n:  # no room outside the ephemeral range: any port the kernel gives
            s = held.enter_context(socket.socket(family))
            s.bind((host, 0))
            ports.append(int(s.getsockname()[1]))
    return ports


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default; elsewhere a guess that costs nothing if wrong


def four_letter_word(host: str, port: int, cmd: str, timeout_s: float = 5.0) -> str:
    """Send a four-letter word and read the answer until the server closes the connection."""
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.sendall(cmd.encode("ascii"))
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _package_root() -> str:
    # The directory holding this zkpy package: the child imports the same code, installed or not.
    return str(Path(__file__).resolve().parents[2])


class ZkServer:
    """A standalone zkpy server in its own process.

    ``config`` adds or overrides zoo.cfg keys (``{"maxClientCnxns": "0"}``).  ``admin_port`` and
    ``metrics_port`` turn on the AdminServer and the Prometheus endpoint (0: a free port); both
    are off by default so that tests never fight over 8080 and 7000.  ``tick_time_ms`` sets
    tickTime; a small one (e.g. 100) makes short session timeouts possible, since ZooKeeper
    clamps a session's timeout to [2, 20] ticks.

    Data lives in ``base_dir`` (a fresh temporary directory by default, removed by
    :meth:`close`).  The client port is chosen once and kept across restarts.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, base_dir: str | os.PathLike[str] | None = None,
                 tick_time_ms: int = 2000, config: Mapping[str, object] | None = None,
                 admin_port: int | None = None, metrics_port: int | None = None, server_id: int | None = None,
                 env: Mapping[str, str] | None = None, log_level: str = "INFO",
                 startup_timeout_s: float = 30.0) -> None:
        self.host = host
        self._fixed_port = port != 0
        self.port = port or free_port(host)
        self._owns_base = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="zkpy-test-"))
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.base_dir / "data"
        self.cfg_path = self.base_dir / "zoo.cfg"
        self.log_path = self.base_dir / "server.log"
        self.tick_time_ms = int(tick_time_ms)
        self.extra_config = {str(k): str(v) for k, v in (config or {}).items()}
        self._fixed_admin = bool(admin_port)
        self.admin_port = (admin_port or free_port(host)) if admin_port is not None else None
        self._fixed_metrics = bool(metrics_port)
        self.metrics_port = (metrics_port or free_port(host)) if metrics_port is not None else None
        self.server_id = server_id
        self.env = dict(env or {})
        self.log_level = log_level
        self.startup_timeout_s = float(startup_timeout_s)
        self.proc: subprocess.Popen[bytes] | None = None
        self._closed = False
        _live.add(self)

    # ------------------------------------------------------------------ addresses

    @property
    def hosts(self) -> str:
        """The connect string: ``host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def admin_url(self, command: str = "") -> str:
        """``http://host:port/commands[/command]`` (needs ``admin_port``)."""
        if self.admin_port is None:
            raise RuntimeError("this ZkServer runs without the AdminServer: pass admin_port=0")
        return f"http://{self.host}:{self.admin_port}/commands" + (f"/{command}" if command else "")

    @property
    def metrics_url(self) -> str:
        """``http://host:port/metrics`` (needs ``metrics_port``)."""
        if self.metrics_port is None:
            raise RuntimeError("this ZkServer runs without the Prometheus endpoint: pass metrics_port=0")
        return f"http://{self.host}:{self.metrics_port}/metrics"

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def write_config(self) -> None:
        cfg: dict[str, str] = {
            "tickTime": str(self.tick_time_ms),
            "dataDir": str(self.data_dir),
            "clientPort": str(self.port),
            "clientPortAddress": self.host,
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
        }
        if self.admin_port is not None:
            cfg.update({"admin.enableServer": "true", "admin.serverAddress": self.host,
                        "admin.serverPort": str(self.admin_port)})
        if self.metrics_port is not None:
            cfg.update({"metricsProvider.className":
                        "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider",
                        "metricsProvider.httpHost": self.host, "metricsProvider.httpPort": str(self.metrics_port)})
        cfg.update(self.extra_config)
        self.cfg_path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.server_id is not None:
            (self.data_dir / "myid").write_text(f"{self.server_id}\n")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "zkpy", "server", str(self.cfg_path)]

    def start(self, timeout_s: float | None = None) -> ZkServer:
        """Start the process and wait until it serves; a no-op while it runs."""
        if self._closed:
            raise RuntimeError("this ZkServer is closed")
        if self.is_running:
            return self
        for attempt in range(_BIND_RETRIES):
            self.write_config()
            self._spawn()
            try:
                self.wait_serving(timeout_s if timeout_s is not None else self.startup_timeout_s)
                return self
            except ServerStartError:
                self._reap()
                if attempt + 1 < _BIND_RETRIES and self._lost_a_port_race():
                    continue
                raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def _spawn(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH", "")) if p)
        env["ZKPY_LOG_LEVEL"] = self.log_level
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                         cwd=str(self.base_dir), stdin=subprocess.DEVNULL)

    def _lost_a_port_race(self) -> bool:
        """A port we chose was taken between choosing and binding: choose again."""
        tail = self.log_tail(20)
        if "Address already in use" not in tail and "address already in use" not in tail:
            return False
        if self._fixed_port and self._fixed_admin and self._fixed_metrics:
            return False
        if not self._fixed_port:
            self.port = free_port(self.host)
        if self.admin_port is not None and not self._fixed_admin:
            self.admin_port = free_port(self.host)
        if self.metrics_port is not None and not self._fixed_metrics:
            self.metrics_port = free_port(self.host)
        return True

    def wait_serving(self, timeout_s: float = 30.0) -> None:
        """Wait until ``srvr`` answers with a mode (the database is loaded and the port open)."""
        deadline = time.monotonic() + timeout_s
        last: str = ""
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise ServerStartError(f"zkpy server exited with {code} before serving on {self.hosts}:\n"
                                       f"{self.log_tail()}")
            try:
                text = four_letter_word(self.host, self.port, "srvr", timeout_s=2.0)
                if "Mode:" in text:
                    return
                last = text.strip()
            except OSError as e:
                last = str(e)
            time.sleep(_POLL_S)
        raise ServerStartError(f"zkpy server not serving on {self.hosts} after {timeout_s}s ({last}):\n"
                               f"{self.log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (a clean shutdown: pending writes finish their fsync), SIGKILL after ``timeout_s``.
        Returns the exit code; None when it was not running."""
        return self._signal(signal.SIGTERM, timeout_s)

    def kill(self, timeout_s: float = 15.0) -> int | None:
        """kill -9: what a crash looks like; acknowledged writes survive it."""
        return self._signal(signal.SIGKILL, timeout_s)

    def restart(self, timeout_s: float | None = None) -> ZkServer:
        self.stop()
        return self.start(timeout_s)

    def _signal(self, sig: int, timeout_s: float) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
        self.proc = None
        return proc.returncode

    def _reap(self) -> None:
        with contextlib.suppress(Exception):
            self._signal(signal.SIGKILL, 10.0)

    def close(self) -> None:
        """Stop the process and remove the temporary directory this object created."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            _live.discard(self)
            if self._owns_base:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> ZkServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ poking at it

    def four_letter_word(self, cmd: str, timeout_s: float = 5.0) -> str:
        """``ruok``, ``srvr``, ``mntr``, ... (all are whitelisted on a test server)."""
        return four_letter_word(self.host, self.port, cmd, timeout_s)

    def expire_session(self, session_id: int, password: bytes, timeout_s: float = 10.0) -> bool:
        """End a client's session as if it had expired: attach to it from another connection with
        the same id and password, then close it.  The client sees its connection drop, and then
        SESSION_EXPIRED when it reconnects.  False when the session was already gone."""
        return _expire_session(self.host, self.port, session_id, password, timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.is_running else ("closed" if self._closed else "stopped")
        return f"<ZkServer {self.hosts} {state} data={self.data_dir}>"


@contextlib.contextmanager
def zk_server(**options: Any) -> Iterator[ZkServer]:
    """``with zk_server() as srv:`` - a started :class:`ZkServer`, closed on the way out."""
    server = ZkServer(**options)
    try:
        server.start()
        yield server
    finally:
        server.close()


@atexit.register
def _stop_forgotten_servers() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.kill(timeout_s=5.0)
