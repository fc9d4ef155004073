"""The peer transport on loopback: election channels and learner connections."""

from __future__ import annotations

import asyncio
import socket

from zkpy.quorum import wire
from zkpy.quorum.snapwire import encode_database, signature
from zkpy.quorum.transport import ElectionChannels, PeerAddress, QuorumLinks
from zkpy.server.database import Database

HOSTS = {1: "127.0.0.21", 2: "127.0.0.22"}
WAIT_S = 10.0


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def addresses() -> dict[int, PeerAddress]:
    return {sid: PeerAddress(h, free_port(h), free_port(h)) for sid, h in HOSTS.items()}


async def until(check, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(WAIT_S / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_election_messages_flow_both_ways_over_the_higher_members_connection():
    async def go() -> None:
        peers = addresses()
        got: dict[int, list[tuple[int, bytes]]] = {1: [], 2: []}
        connected: dict[int, list[int]] = {1: [], 2: []}
        ch = {sid: ElectionChannels(sid, peers, lambda src, data, me=sid: got[me].append((src, data)),
                                    lambda peer, me=sid: connected[me].append(peer)) for sid in peers}
        for c in ch.values():
            await c.start()
        try:
            ch[1].send(2, b"from one")  # the lower id calls, hangs up, and is called back
            await until(lambda: got[2] == [(1, b"from one")], "2 to hear 1")
            ch[2].send(1, b"from two")
            await until(lambda: got[1] == [(2, b"from two")], "1 to hear 2")
            assert connected[1] == [2] and connected[2] == [1]
            w = ch[2]._state[1].writer  # the surviving connection: opened by 2, from 2's own address
            assert w is not None
            assert w.get_extra_info("sockname")[0] == HOSTS[2]
            assert w.get_extra_info("peername") == (HOSTS[1], peers[1].election_port)
        finally:
            for c in ch.values():
                await c.close()

    asyncio.run(go())


def test_election_sends_wait_for_a_member_that_starts_late():
    async def go() -> None:
        peers = addresses()
        got: list[bytes] = []
        one = ElectionChannels(1, peers, lambda src, data: None, lambda peer: None)
        await one.start()
        one.send(2, b"early")  # 2 is not listening yet: queued, retried with backoff
        await asyncio.sleep(0.2)
        two = ElectionChannels(2, peers, lambda src, data: got.append(data), lambda peer: None)
        await two.start()
        try:
            await until(lambda: got == [b"early"], "the queued message")
        finally:
            await one.close()
            await two.close()

    asyncio.run(go())


def test_learner_connection_carries_quorum_packets_and_a_snapshot():
    async def go() -> None:
        peers = addresses()
        events: list[tuple[str, int, object]] = []
        leader = QuorumLinks(2, peers, lambda c: events.append(("accepted", c, None)), lambda c: None,
                             lambda c, qp, snap: events.append(("leader got", c, qp)),
                             lambda c: events.append(("leader closed", c, None)))
        learner = QuorumLinks(1, peers, lambda c: None, lambda c: events.append(("connected", c, None)),
                              lambda c, qp, snap: events.append(("learner got", c, (qp, snap))),
                              lambda c: events.append(("learner closed", c, None)))
        await leader.start()
        await learner.start()
        try:
            learner.connect(-2, 2)
            await until(lambda: ("connected", -2, None) in events, "the connection")
            accepted = next(c for kind, c, _ in events if kind == "accepted")
            learner.send(-2, wire.packet(wire.FOLLOWERINFO, 0, wire.encode_learner_info(1)).to_bytes())
            await until(lambda: any(k == "leader got" for k, _, _ in events), "FOLLOWERINFO")
            body = encode_database(Database())
            leader.send(accepted, wire.packet(wire.SNAP, 7).to_bytes() + body + signature())
            leader.send(accepted, wire.packet(wire.NEWLEADER, 1 << 32).to_bytes())
            await until(lambda: sum(k == "learner got" for k, _, _ in events) == 2, "SNAP and NEWLEADER")
            snap_event, nl_event = [v for k, _, v in events if k == "learner got"]
            assert snap_event[0].type == wire.SNAP and snap_event[1] == body  # type: ignore[index]
            assert nl_event[0].type == wire.NEWLEADER and nl_event[1] is None  # type: ignore[index]
            leader.close_conn(accepted)
            await until(lambda: ("learner closed", -2, None) in events, "the close")
            assert ("leader closed", accepted, None) not in events  # closing on purpose is not news
        finally:
            await learner.close()
            await leader.close()

    asyncio.run(go())
