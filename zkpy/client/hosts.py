"""Connect strings ("h1:2181,h2:2181/app") and the order in which servers are tried."""

from __future__ import annotations

import random
from dataclasses import dataclass

from zkpy.client.paths import Chroot

__all__ = ["ConnectString", "HostProvider", "parse_connect_string"]

DEFAULT_PORT = 2181


@dataclass(frozen=True, slots=True)
class ConnectString:
    hosts: tuple[tuple[str, int], ...]
    chroot: Chroot


def _parse_host(item: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [ipv6]:port
        end = item.find("]")
        if end < 0:
            raise ValueError(f"Invalid host {item!r}: missing ']'")
        host, rest = item[1:end], item[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"Invalid host {item!r}")
        port_s = rest[1:] if rest else ""
    elif item.count(":") == 1:
        host, port_s = item.split(":")
    else:
        host, port_s = item, ""
    if not host:
        raise ValueError(f"Invalid host {item!r}")
    try:
        port = int(port_s) if port_s else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"Invalid port in {item!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"Invalid port in {item!r}")
    return host, port


def parse_connect_string(connect: str) -> ConnectString:
    """Split "h1:p1,h2:p2/chroot" the way ZooKeeper's ConnectStringParser does."""
    slash = connect.find("/")
    chroot: str | None = None
    if slash >= 0:
        chroot = connect[slash:]
        connect = connect[:slash]
    hosts = tuple(_parse_host(h) for h in connect.split(",") if h.strip())
    if not hosts:
        raise ValueError("A server address is missing")
    return ConnectString(hosts, Chroot(chroot))


class HostProvider:
    """Cycles through the servers in a random order, as StaticHostProvider does.

    ``next()`` says whether a whole round has failed, so the caller can pause
    before hammering the same servers again.
    """

    __slots__ = ("_hosts", "_index", "_last_connected")

    def __init__(self, hosts: tuple[tuple[str, int], ...], rng: random.Random | None = None) -> None:
        shuffled = list(hosts)
        (rng or random).shuffle(shuffled)
        self._hosts = shuffled
        self._index = -1
        self._last_connected = -1

    def __len__(self) -> int:
        return len(self._hosts)

    @property
    def hosts(self) -> list[tuple[str, int]]:
        return list(self._hosts)

    def next(self) -> tuple[tuple[str, int], bool]:
        """The next server, and True when every server has been tried since the last success."""
        self._index = (self._index + 1) % len(self._hosts)
        wrapped = self._index == self._last_connected
        if self._last_connected == -1:
            # No success yet: count a round from the first server tried.
            self._last_connected = self._index
            wrapped = False
        return self._hosts[self._index], wrapped

    def on_connected(self) -> None:
        self._last_connected = self._index

    def set_order(self, hosts: list[tuple[str, int]]) -> None:
        """Fix the order (tests use it to put a dead server first)."""
        self._hosts = list(hosts)
        self._index = -1
        self._last_connected = -1
