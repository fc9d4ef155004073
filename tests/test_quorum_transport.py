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
                             lambda c, got: events.extend(("leader got", c, qp) for qp, _ in got),
                             lambda c: events.append(("leader closed", c, None)))
        learner = QuorumLinks(1, peers, lambda c: None, lambda c: events.append(("connected", c, None)),
                              lambda c, got: events.extend(("learner got", c, item) for item in got),
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


def test_quorum_packets_parse_from_any_split_of_the_stream():
    from zkpy.proto.records import Id
    from zkpy.quorum.wire import encode_quorum_packet, parse_quorum_packet

    packets = [wire.packet(wire.PROPOSAL, 5, b"txn bytes"), wire.packet(wire.COMMIT, 5),
               wire.packet(wire.REQUEST, 0, b"req", [Id("digest", "u:x"), Id("ip", "127.0.0.1")]),
               wire.packet(wire.PING, 9, b"")]
    stream = b"".join(encode_quorum_packet(p) for p in packets)
    assert stream == b"".join(p.to_bytes() for p in packets)  # the fast encoder is the record's encoding
    for cut in range(len(stream) + 1):
        got, buf, pos = [], bytearray(stream[:cut]), 0
        while (parsed := parse_quorum_packet(buf, pos)) is not None:
            qp, pos = parsed
            got.append(qp)
        del buf[:pos]
        buf += stream[cut:]
        pos = 0
        while (parsed := parse_quorum_packet(buf, pos)) is not None:
            qp, pos = parsed
            got.append(qp)
        assert got == packets and pos == len(buf), cut


def test_quorum_packet_with_an_impossible_length_is_refused():
    import struct

    import pytest

    from zkpy.quorum.wire import parse_quorum_packet

    with pytest.raises(wire.WireError):
        parse_quorum_packet(struct.pack(">iqi", wire.PROPOSAL, 1, -7) + b"\0" * 8, 0)
    with pytest.raises(wire.WireError):
        parse_quorum_packet(struct.pack(">iqi", wire.PROPOSAL, 1, 0) + struct.pack(">i", 5000), 0)


def test_learner_gets_a_snapshot_and_the_packets_after_it_however_the_bytes_arrive():
    """SNAP, the database, the signature and more packets, written one byte at a time by a raw
    leader socket; then a malformed packet closes the connection and is reported."""
    async def go() -> None:
        peers = addresses()
        events: list[tuple[str, object]] = []
        learner = QuorumLinks(1, peers, lambda c: None, lambda c: events.append(("connected", c)),
                              lambda c, got: events.extend(("got", item) for item in got),
                              lambda c: events.append(("closed", c)))
        body = encode_database(Database())
        stream = (wire.packet(wire.SNAP, 7).to_bytes() + body + signature()
                  + wire.packet(wire.NEWLEADER, 1 << 32).to_bytes() + wire.packet(wire.UPTODATE, 0).to_bytes())
        done = asyncio.Event()

        async def fake_leader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for i in range(len(stream)):
                writer.write(stream[i:i + 1])
                await writer.drain()
                if i % 64 == 0:
                    await asyncio.sleep(0)
            await until(lambda: sum(k == "got" for k, _ in events) == 3, "every packet")
            writer.write(b"\0\0\0\x05" + b"\0" * 8 + b"\xff\xff\xff\xf0")  # data length -16
            await writer.drain()
            await done.wait()
            writer.close()

        server = await asyncio.start_server(fake_leader, peers[2].host, peers[2].quorum_port)
        await learner.start()
        try:
            learner.connect(-2, 2)
            await until(lambda: ("closed", -2) in events, "the close after the malformed packet")
            got = [v for k, v in events if k == "got"]
            assert [(qp.type, snap) for qp, snap in got] == [  # type: ignore[union-attr]
                (wire.SNAP, body), (wire.NEWLEADER, None), (wire.UPTODATE, None)]
        finally:
            done.set()
            await learner.close()
            server.close()

    asyncio.run(go())
