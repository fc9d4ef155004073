"""Helpers for tests that use kazoo (imported only when kazoo is installed)."""

from __future__ import annotations

import time
from typing import Any

from zkpy.testing.server import ZkServer


def connect_kazoo(server: ZkServer | str, timeout_s: float = 15.0, **options: Any) -> Any:
    """A started ``KazooClient`` for ``server`` (a :class:`ZkServer` or a connect string)."""
    from kazoo.client import KazooClient

    hosts = server.hosts if isinstance(server, ZkServer) else server
    client = KazooClient(hosts=hosts, **options)
    try:
        client.start(timeout=timeout_s)
    except BaseException:
        client.close()
        raise
    return client


def expire_kazoo_session(server: ZkServer, client: Any, timeout_s: float = 15.0) -> None:
    """Expire ``client``'s session now and wait until the client has noticed.

    Kazoo then reports ``KazooState.LOST`` to its listeners (ephemerals are gone, watches with
    them) and, with its default retry policy, goes on with a new session."""
    session_id, password = client.client_id
    server.expire_session(session_id, password, timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = client.client_id  # None while kazoo is between sessions
        if current is not None and current[0] != session_id:
            return
        time.sleep(0.05)
    raise TimeoutError(f"kazoo still uses session 0x{session_id & (2**64 - 1):x} after {timeout_s}s")
