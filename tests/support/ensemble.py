"""A real ensemble of `zkpy server` (or Apache ZooKeeper) processes, each on its own 127.0.0.x."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import ServerProcess, four_letter
from zkpy.bench.servers import free_ports


@dataclass
class Ensemble:
    members: dict[int, ServerProcess]
    observers: set[int] = field(default_factory=set)

    @property
    def hosts(self) -> str:
        return ",".join(m.hosts for m in self.members.values())

    def start(self, timeout_s: float = 60.0) -> Ensemble:
        for m in self.members.values():
            m.start_background()
        for sid in self.members:
            self.wait_serving(sid, timeout_s)
        return self

    def stop(self) -> None:
        for m in self.members.values():
            m.stop()

    def mode(self, sid: int) -> str | None:
        m = self.members[sid]
        try:
            text = four_letter(m.host, m.port, "srvr", timeout_s=2.0)
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Mode: "):
                return line[6:].strip()
        return None

    def leader(self, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for sid, m in self.members.items():
                if m.proc is not None and m.proc.poll() is None and self.mode(sid) == "leader":
                    return sid
            time.sleep(0.1)
        raise TimeoutError("no leader elected")

    def wait_serving(self, sid: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        m = self.members[sid]
        while time.monotonic() < deadline:
            if m.proc is not None and m.proc.poll() is not None:
                raise RuntimeError(f"member {sid} exited with {m.proc.returncode}:\n{m.log_tail()}")
            if self.mode(sid) in ("leader", "follower", "observer"):
                return
            time.sleep(0.1)
        raise TimeoutError(f"member {sid} not serving:\n{m.log_tail()}")


def make_ensemble(kind: str, base: Path, n: int = 3, observers: int = 0, first_ip: int = 11,
                  extra_cfg: dict[str, str] | None = None) -> Ensemble:
    """``n`` voters (+ ``observers``) on 127.0.0.<first_ip>..., ports picked free on each address."""
    ids = list(range(1, n + observers + 1))
    hosts = {sid: f"127.0.0.{first_ip + sid - 1}" for sid in ids}
    ports = {sid: tuple(free_ports(hosts[sid], 3)) for sid in ids}
    servers = {}
    for sid in ids:
        role = ":observer" if sid > n else ""
        servers[f"server.{sid}"] = f"{hosts[sid]}:{ports[sid][1]}:{ports[sid][2]}{role}"
    members = {}
    for sid in ids:
        cfg = {"initLimit": "10", "syncLimit": "5", "tickTime": "200", **servers, **(extra_cfg or {})}
        if sid > n:
            cfg["peerType"] = "observer"
        member_dir = base / f"m{sid}"
        m = ServerProcess(kind=kind, host=hosts[sid], port=ports[sid][0], data_dir=member_dir / "data",
                          cfg_path=member_dir / "zoo.cfg", extra_cfg=cfg)
        m.data_dir.mkdir(parents=True, exist_ok=True)
        (m.data_dir / "myid").write_text(f"{sid}\n")
        members[sid] = m
    return Ensemble(members, set(ids[n:]))


@contextlib.contextmanager
def running_ensemble(kind: str, base: Path, **kw) -> Iterator[Ensemble]:
    ens = make_ensemble(kind, base, **kw)
    try:
        ens.start()
        yield ens
    finally:
        ens.stop()
