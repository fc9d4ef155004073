"""A small zkpy ensemble for tests.

:class:`ZkEnsemble` writes one zoo.cfg per member (``server.N=127.0.0.1:peer:election``, a
``myid`` each), starts the members as :class:`~zkpy.testing.server.ZkServer` processes and waits
until each serves (which takes an elected leader).  A zkpy too old for quorum mode refuses such
configurations; :meth:`ZkEnsemble.start` then raises :class:`EnsembleUnavailable` (a
``NotImplementedError``) with the server's own message.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from zkpy.testing.server import ServerStartError, ZkServer, free_ports

QUORUM_UNAVAILABLE_HINT = "quorum mode is not available"


class EnsembleUnavailable(NotImplementedError):
    """This zkpy cannot run an ensemble yet (no quorum mode): use a single ZkServer."""


class ZkEnsemble:
    """``size`` zkpy servers forming one ensemble on loopback.

    ``members[i]`` is member ``i + 1`` (its ``myid``).  :meth:`stop_member` / :meth:`kill_member`
    / :meth:`start_member` take one down and bring it back with its data; :meth:`leader` and
    :meth:`wait_leader` find the leader; :attr:`hosts` is the connect string of all.
    """

    def __init__(self, size: int = 3, *, host: str = "127.0.0.1", base_dir: str | Path | None = None,
                 tick_time_ms: int = 2000, config: Mapping[str, object] | None = None,
                 startup_timeout_s: float = 60.0, log_level: str = "INFO") -> None:
        if size < 1:
            raise ValueError("an ensemble has at least one member")
        self.size = size
        self.host = host
        self._owns_base = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="zkpy-ensemble-"))
        self.startup_timeout_s = startup_timeout_s
        chosen = free_ports(host, 2 * size)
        peers = {sid: (chosen[2 * sid - 2], chosen[2 * sid - 1]) for sid in range(1, size + 1)}
        servers = {f"server.{sid}": f"{host}:{peer}:{election}" for sid, (peer, election) in peers.items()}
        common = {"initLimit": "10", "syncLimit": "5", **servers, **{str(k): str(v) for k, v in (config or {}).items()}}
        self.members: list[ZkServer] = [
            ZkServer(host=host, base_dir=self.base_dir / f"member{sid}", tick_time_ms=tick_time_ms, config=common,
                     server_id=sid, startup_timeout_s=startup_timeout_s, log_level=log_level)
            for sid in range(1, size + 1)
        ]

    @property
    def hosts(self) -> str:
        return ",".join(m.hosts for m in self.members)

    def member(self, server_id: int) -> ZkServer:
        return self.members[server_id - 1]

    def start(self) -> ZkEnsemble:
        """Start every member and wait until each serves (which needs a leader)."""
        for m in self.members:
            if not m.is_running:
                m.write_config()
                m._spawn()
        try:
            for m in self.members:
                m.wait_serving(self.startup_timeout_s)
        except ServerStartError as e:
            self.stop()
            if QUORUM_UNAVAILABLE_HINT in str(e):
                raise EnsembleUnavailable(
                    f"this zkpy cannot run a {self.size}-member ensemble (no quorum mode); "
                    "test against one ZkServer (the zk_server fixture)") from e
            raise
        return self

    def stop_member(self, server_id: int) -> int | None:
        return self.member(server_id).stop()

    def kill_member(self, server_id: int) -> int | None:
        return self.member(server_id).kill()

    def start_member(self, server_id: int) -> ZkServer:
        return self.member(server_id).start()

    def leader(self) -> ZkServer | None:
        """The member whose ``srvr`` says ``Mode: leader`` (None during an election)."""
        for m in self.members:
            if m.is_running:
                with contextlib.suppress(OSError):
                    if "Mode: leader" in m.four_letter_word("srvr"):
                        return m
        return None

    def wait_leader(self, timeout_s: float = 30.0) -> ZkServer:
        """The leader, once there is one (an election takes a few ticks); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            time.sleep(0.05)
        raise TimeoutError(f"no leader elected within {timeout_s}s")

    def stop(self) -> None:
        for m in self.members:
            with contextlib.suppress(Exception):
                m.stop()

    def close(self) -> None:
        try:
            for m in self.members:
                with contextlib.suppress(Exception):
                    m.close()
        finally:
            if self._owns_base:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> ZkEnsemble:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@contextlib.contextmanager
def zk_ensemble(size: int = 3, **options: Any) -> Iterator[ZkEnsemble]:
    """``with zk_ensemble(3) as ens:`` - a started :class:`ZkEnsemble`, closed on the way out."""
    ensemble = ZkEnsemble(size, **options)
    try:
        ensemble.start()
        yield ensemble
    finally:
        ensemble.close()
