"""zkpy.client against a 3-member zkpy ensemble: failover keeps the session, its ephemerals and
its watches, and the events missed while moving are delivered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.ensemble import make_ensemble
from zkpy.client import ClientState, CreateMode, EventQueue, ZooKeeperClient
from zkpy.proto.constants import EventType


@pytest.mark.slow
def test_client_fails_over_and_keeps_session_ephemerals_and_watches(tmp_path: Path) -> None:
    ens = make_ensemble("zkpy", tmp_path / "cli", n=3, first_ip=111)
    ens.start()

    async def scenario() -> None:
        states: list[ClientState] = []
        async with ZooKeeperClient(ens.hosts, 6000) as zk, ZooKeeperClient(ens.hosts, 6000) as other:
            zk.add_listener(states.append)
            await zk.create("/mine", b"", mode=CreateMode.EPHEMERAL)
            await zk.create("/watched", b"0")
            events = EventQueue()
            await zk.get_data("/watched", watch=events)
            sid = zk.session_id
            host, port = zk.server  # type: ignore[misc]
            victim = next(s for s, m in ens.members.items() if (m.host, m.port) == (host, port))
            ens.members[victim].kill9()
            # While the client moves to another member, someone changes the watched node.
            for _ in range(100):
                try:
                    await other.set_data("/watched", b"1")
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            # Connection events (Disconnected, SyncConnected) reach watchers too, as in Java.
            seen = []
            for _ in range(10):
                ev = await asyncio.wait_for(events.get(), 30)
                seen.append(ev)
                if ev.type != EventType.None_:
                    break
            assert ev.type == EventType.NodeDataChanged and ev.path == "/watched", seen
            await asyncio.wait_for(zk.wait_connected(), 30)
            assert zk.session_id == sid
            assert zk.server != (host, port)
            assert await zk.exists("/mine") is not None
            assert ClientState.SUSPENDED in states and states[-1] == ClientState.CONNECTED

    try:
        asyncio.run(scenario())
    finally:
        ens.stop()
