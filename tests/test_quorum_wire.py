"""Bytes of the election and learner protocols, and the database as SNAP streams it."""

from __future__ import annotations

import struct

import pytest

from zkpy.proto.constants import OpCode
from zkpy.proto.records import ACL, CreateSessionTxn, CreateTxn, Id, LearnerInfo, QuorumPacket, TxnHeader
from zkpy.quorum import wire
from zkpy.quorum.snapwire import decode_database, encode_database, read_snapshot_bytes, signature
from zkpy.quorum.wire import parse_quorum_packet
from zkpy.server.database import Database
from zkpy.tree.acl import OPEN_ACL_UNSAFE


def test_packet_types_are_apaches():
    assert (wire.REQUEST, wire.PROPOSAL, wire.ACK, wire.COMMIT, wire.PING, wire.REVALIDATE, wire.SYNC,
            wire.INFORM) == (1, 2, 3, 4, 5, 6, 7, 8)
    assert (wire.NEWLEADER, wire.FOLLOWERINFO, wire.UPTODATE, wire.DIFF, wire.TRUNC, wire.SNAP,
            wire.OBSERVERINFO, wire.LEADERINFO, wire.ACKEPOCH) == (10, 11, 12, 13, 14, 15, 16, 17, 18)


def test_notification_has_fastleaderelection_layout():
    config = b"server.1=127.0.0.11:2888:3888:participant\nversion=0"
    data = wire.Notification(wire.FOLLOWING, 3, 0x200000005, 7, 2, config=config).to_bytes()
    # buildMsg: int state, long leader, long zxid, long electionEpoch, long peerEpoch,
    # int version (2), int configLength, config bytes.
    assert data == struct.pack(">iqqqqii", 1, 3, 0x200000005, 7, 2, 2, len(config)) + config


def test_notification_round_trips():
    n = wire.Notification(wire.LEADING, 2, 9, 4, 1, config=b"x")
    assert wire.Notification.from_bytes(n.to_bytes()) == n


def test_notification_decodes_the_older_layouts():
    old40 = struct.pack(">iqqqq", 0, 2, 0x300000001, 5, 3)
    assert wire.Notification.from_bytes(old40) == wire.Notification(0, 2, 0x300000001, 5, 3, 0)
    old28 = struct.pack(">iqqq", 0, 2, 0x300000001, 5)
    assert wire.Notification.from_bytes(old28).peer_epoch == 3  # taken from the zxid


def test_notification_with_a_lying_config_length_is_refused():
    bad = struct.pack(">iqqqqii", 0, 1, 0, 1, 0, 2, 1000)
    with pytest.raises(wire.WireError):
        wire.Notification.from_bytes(bad)


def test_initial_election_message_layout():
    msg = wire.encode_initial_message(2, "127.0.0.12:3888")
    assert msg == struct.pack(">qqi", -65536, 2, 15) + b"127.0.0.12:3888"
    assert wire.decode_initial_head(msg[:20]) == (-65536, 2, 15)


def test_initial_message_from_an_old_peer_is_a_bare_sid():
    assert wire.decode_initial_head(struct.pack(">qqi", 5, 0, 0))[1] == 5


def test_learner_info_is_the_jute_record():
    data = wire.encode_learner_info(3)
    assert data == LearnerInfo(3, 0x10000, 0).to_bytes()
    assert wire.decode_learner_info(data) == (3, 0x10000)


def test_ping_payload_is_session_touches():
    data = wire.encode_touches({0x100: 3000, 0x200: 4000})
    assert data == struct.pack(">qiqi", 0x100, 3000, 0x200, 4000)
    assert wire.decode_touches(data) == [(0x100, 3000), (0x200, 4000)]


def test_request_packet_carries_session_cxid_type_and_body():
    data = wire.encode_request(7, 42, OpCode.create, b"body")
    assert wire.decode_request_head(data) == (7, 42, OpCode.create)
    assert data[16:] == b"body"


def test_quorum_packet_reads_back_from_a_stream():
    qp = QuorumPacket(wire.PROPOSAL, 0x100000001, b"txn", [Id("digest", "u:p")])
    stream = qp.to_bytes() + wire.packet(wire.PING, 5).to_bytes()
    parsed = parse_quorum_packet(stream, 0)
    assert parsed is not None
    first, pos = parsed
    parsed = parse_quorum_packet(stream, pos)
    assert parsed is not None
    second, end = parsed
    assert first == qp and end == len(stream)
    assert (second.type, second.zxid, second.data) == (wire.PING, 5, None)


@pytest.mark.parametrize("ptype,zxid,data", [(wire.PROPOSAL, 0x100000001, b"txn"), (wire.COMMIT, 0x100000001, None),
                                             (wire.ACK, -1, None), (wire.PING, 5, b"")])
def test_encoded_packets_are_the_jute_record(ptype: int, zxid: int, data: bytes | None):
    assert wire.encode_packet(ptype, zxid, data) == QuorumPacket(ptype, zxid, data, None).to_bytes()
    stream = wire.encode_packet(ptype, zxid, data)
    for cut in range(len(stream)):  # a packet cut short anywhere is incomplete, not misread
        assert parse_quorum_packet(stream[:cut], 0) is None
    assert parse_quorum_packet(bytearray(stream), 0) == (QuorumPacket(ptype, zxid, data, None), len(stream))


@pytest.mark.parametrize("auth", [[], [Id("digest", "u:p")], [Id("ip", "127.0.0.1"), Id("sasl", "zk/h@R")],
                                  [Id("x", None)]])
def test_requests_with_auth_ids_encode_as_the_jute_record(auth: list[Id]):
    data = wire.encode_request(7, 1, OpCode.setData, b"body")
    assert wire.encode_packet(wire.REQUEST, -1, data, auth) == QuorumPacket(wire.REQUEST, -1, data, auth).to_bytes()
    assert parse_quorum_packet(wire.encode_packet(wire.REQUEST, -1, data, auth), 0) is not None


def test_a_stream_parses_whole_as_packet_by_packet():
    packets = [QuorumPacket(wire.PROPOSAL, 1, b"txn", None), QuorumPacket(wire.ACK, 1, None, None),
               QuorumPacket(wire.REQUEST, -1, b"req", [Id("digest", "u:p")]), QuorumPacket(wire.REQUEST, -1, b"r", []),
               QuorumPacket(wire.SNAP, 7, None, None), QuorumPacket(wire.COMMIT, 1, None, None)]
    stream = b"".join(wire.encode_quorum_packet(p) for p in packets)
    got, pos, error = wire.parse_quorum_packets(stream)
    assert got == packets and pos == len(stream) and error is None
    got, pos, error = wire.parse_quorum_packets(stream, stop_after=wire.SNAP)
    assert got == packets[:5] and stream[pos:] == wire.encode_quorum_packet(packets[5])
    for cut in range(len(stream)):  # a cut anywhere leaves the whole packets before it, and the rest
        got, pos, error = wire.parse_quorum_packets(stream[:cut])
        assert error is None and got == packets[:len(got)]
        assert pos == len(b"".join(wire.encode_quorum_packet(p) for p in got))


def test_a_bad_length_stops_the_stream_after_the_packets_before_it():
    good = wire.encode_packet(wire.ACK, 1)
    got, pos, error = wire.parse_quorum_packets(good + struct.pack(">iqi", wire.PROPOSAL, 2, -7) + bytes(8))
    assert got == [QuorumPacket(wire.ACK, 1, None, None)] and pos == len(good) and isinstance(error, wire.WireError)
    got, pos, error = wire.parse_quorum_packets(good + struct.pack(">iqi", wire.PROPOSAL, 2, -7))  # the head alone
    assert len(got) == 1 and isinstance(error, wire.WireError)


def sample_db() -> Database:
    db = Database()
    acl = [ACL(31, Id("digest", "bob:xyz"))]
    db.apply(TxnHeader(0x11, 1, 1, 10, OpCode.createSession), CreateSessionTxn(30000))
    db.apply(TxnHeader(0x11, 2, 2, 11, OpCode.create), CreateTxn("/a", b"one", list(OPEN_ACL_UNSAFE), False, -1))
    db.apply(TxnHeader(0x11, 3, 3, 12, OpCode.create), CreateTxn("/a/b", None, acl, False, -1))
    db.apply(TxnHeader(0x11, 4, 4, 13, OpCode.create), CreateTxn("/e", b"", list(OPEN_ACL_UNSAFE), True, -1))
    return db


def test_snap_stream_round_trips_the_database():
    db = sample_db()
    body = encode_database(db)
    copy = decode_database(body, 4)
    assert copy.sessions == {0x11: 30000}
    assert copy.last_zxid == 4
    for path in ("/", "/a", "/a/b", "/e", "/zookeeper", "/zookeeper/quota"):
        a, b = db.tree.get_node(path), copy.tree.get_node(path)
        assert a is not None and b is not None
        assert (a.data, a.stat, db.tree.acl_of(a)) == (b.data, b.stat, copy.tree.acl_of(b))
    assert copy.tree.session_ephemerals(0x11) == {"/e"}


def test_snap_stream_reader_finds_the_end_and_checks_the_signature():
    body = encode_database(sample_db())
    stream = body + signature() + b"NEXT"
    got, used = read_snapshot_bytes(stream)
    assert got == body
    assert stream[used:] == b"NEXT"


def test_snap_stream_without_the_signature_is_refused():
    body = encode_database(sample_db())
    with pytest.raises(wire.WireError):
        read_snapshot_bytes(body + struct.pack(">i", 4) + b"Ben!")
