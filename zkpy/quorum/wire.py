"""Bytes of the quorum protocols, as Apache ZooKeeper 3.8 lays them out.

Two protocols run between members:

- **Election** (``QuorumCnxManager`` + ``FastLeaderElection``): after an initial
  message naming the sender, each message is an int length and a notification
  ``{int state, long leader, long zxid, long electionEpoch, long peerEpoch,
  int version, int configLength, byte[] config}``.
- **Learner <-> leader** (``Leader``, ``LearnerHandler``, ``Learner``): a stream
  of jute ``QuorumPacket`` records ``{int type, long zxid, buffer data,
  vector<Id> authinfo}``, with no length prefix; a SNAP packet is followed by
  the serialized database and the string ``"BenWasHere"``.

Only encoding and decoding here, no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from zkpy.proto.jute import DecodeError
from zkpy.proto.records import Id, LearnerInfo, QuorumPacket

# Packet types (Leader.java).
REQUEST = 1
PROPOSAL = 2
ACK = 3
COMMIT = 4
PING = 5
REVALIDATE = 6
SYNC = 7
INFORM = 8
COMMITANDACTIVATE = 9
NEWLEADER = 10
FOLLOWERINFO = 11
UPTODATE = 12
DIFF = 13
TRUNC = 14
SNAP = 15
OBSERVERINFO = 16
LEADERINFO = 17
ACKEPOCH = 18
INFORMANDACTIVATE = 19

PACKET_NAMES = {
    REQUEST: "REQUEST", PROPOSAL: "PROPOSAL", ACK: "ACK", COMMIT: "COMMIT", PING: "PING",
    REVALIDATE: "REVALIDATE", SYNC: "SYNC", INFORM: "INFORM", COMMITANDACTIVATE: "COMMITANDACTIVATE",
    NEWLEADER: "NEWLEADER", FOLLOWERINFO: "FOLLOWERINFO", UPTODATE: "UPTODATE", DIFF: "DIFF",
    TRUNC: "TRUNC", SNAP: "SNAP", OBSERVERINFO: "OBSERVERINFO", LEADERINFO: "LEADERINFO",
    ACKEPOCH: "ACKEPOCH", INFORMANDACTIVATE: "INFORMANDACTIVATE",
}

# LearnerInfo.protocolVersion / LEADERINFO payload: the ZAB 1.0 protocol.
ZAB_PROTOCOL_VERSION = 0x10000
SNAP_SIGNATURE = "BenWasHere"

# QuorumPeer.ServerState ordinals, as notifications carry them.
LOOKING = 0
FOLLOWING = 1
LEADING = 2
OBSERVING = 3
STATE_NAMES = {LOOKING: "LOOKING", FOLLOWING: "FOLLOWING", LEADING: "LEADING", OBSERVING: "OBSERVING"}

# Notification.CURRENTVERSION: the layout that carries the configuration.
NOTIFICATION_VERSION = 2
# QuorumCnxManager: the initial message starts with a negative "protocol version".
ELECTION_PROTOCOL_V1 = -65536
ELECTION_PROTOCOL_V2 = -65535
# QuorumCnxManager.PACKETMAXSIZE: election messages above this close the connection.
ELECTION_MESSAGE_MAX_BYTES = 512 * 1024
# InitialMessage caps the address string it reads.
INITIAL_ADDRESS_MAX_BYTES = 4096
# What a non-voter proposes in FLE (Long.MIN_VALUE for id, zxid and epoch).
NO_VOTE = -(1 << 63)

_NOTIF_HEAD = struct.Struct(">iqqqqi")  # 40 bytes: state, leader, zxid, electionEpoch, peerEpoch, version
_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_TOUCH = struct.Struct(">qi")
_REVALIDATE_REQ = struct.Struct(">qi")
_REVALIDATE_RESP = struct.Struct(">q?")
_REQUEST_HEAD = struct.Struct(">qii")
_INITIAL_HEAD = struct.Struct(">qqi")
_PACKET_HEAD = struct.Struct(">iqi")  # type, zxid, data length
# type, zxid, data length, then the next int: the auth count when there is no data (-1)
_PACKET_HEAD_INT = struct.Struct(">iqii")
_NO_AUTH = b"\xff\xff\xff\xff"
# QuorumPacket data are txns, sized like any jute buffer (jute.maxbuffer + extrasize).
MAX_PACKET_DATA_BYTES = 2 * 0xFFFFF


class WireError(ValueError):
    """Bytes that are not the message they should be."""


@dataclass(slots=True, frozen=True)
class Notification:
    """One FLE message: the sender's vote and state."""

    state: int
    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    version: int = NOTIFICATION_VERSION
    config: bytes = b""

    def to_bytes(self) -> bytes:
        head = _NOTIF_HEAD.pack(self.state, self.leader, self.zxid, self.election_epoch, self.peer_epoch,
                                self.version)
        if self.version <= 1:
            return head
        return head + _INT.pack(len(self.config)) + self.config

    @classmethod
    def from_bytes(cls, buf: bytes) -> Notification:
        """Decode as FastLeaderElection's WorkerReceiver does, older layouts included."""
        n = len(buf)
        if n < 28:
            raise WireError(f"notification of {n} bytes is shorter than the oldest layout")
        if n == 28:  # before ZOOKEEPER-107: no peer epoch, no version
            state, leader, zxid, election_epoch = struct.unpack_from(">iqqq", buf, 0)
            return cls(state, leader, zxid, election_epoch, zxid >> 32, 0)
        if n < 36:
            raise WireError(f"partial notification of {n} bytes")
        if n < 40:  # peer epoch but no version
            state, leader, zxid, election_epoch, peer_epoch = struct.unpack_from(">iqqqq", buf, 0)
            return cls(state, leader, zxid, election_epoch, peer_epoch, 0)
        state, leader, zxid, election_epoch, peer_epoch, version = _NOTIF_HEAD.unpack_from(buf, 0)
        config = b""
        if version > 1:
            if n < 44:
                raise WireError("notification lacks its config length")
            (clen,) = _INT.unpack_from(buf, 40)
            if clen < 0 or clen > n - 44:
                raise WireError(f"invalid configLength {clen} in a notification of {n} bytes")
            config = bytes(buf[44:44 + clen])
        return cls(state, leader, zxid, election_epoch, peer_epoch, version, config)


# ------------------------------------------------------------------ election connection handshake


def encode_initial_message(sid: int, address: str, protocol: int = ELECTION_PROTOCOL_V1) -> bytes:
    """What the connecting side of an election connection sends first."""
    addr = address.encode()
    return _INITIAL_HEAD.pack(protocol, sid, len(addr)) + addr


def initial_message_head_size() -> int:
    return _INITIAL_HEAD.size


def decode_initial_head(buf: bytes) -> tuple[int, int, int]:
    """(protocol version or sid, sid, address length) from the first 20 bytes.

    A non-negative first long is an old peer's bare sid (no address follows); the
    caller then treats the remaining 12 bytes as the start of its message stream.
    """
    protocol, sid, alen = _INITIAL_HEAD.unpack_from(buf, 0)
    if protocol >= 0:
        return protocol, protocol, -1
    if protocol not in (ELECTION_PROTOCOL_V1, ELECTION_PROTOCOL_V2):
        raise WireError(f"Got unrecognized protocol version {protocol}")
    if alen < 0 or alen > INITIAL_ADDRESS_MAX_BYTES:
        raise WireError(f"Unreasonable address length {alen} in the initial message")
    return protocol, sid, alen


# ------------------------------------------------------------------ quorum packet payloads


def packet(ptype: int, zxid: int = 0, data: bytes | None = None, authinfo: list | None = None) -> QuorumPacket:
    """A QuorumPacket; only REQUEST carries ``authinfo`` (the client's ids, for the leader's ACL checks)."""
    return QuorumPacket(ptype, zxid, data, authinfo)


def encode_packet(ptype: int, zxid: int, data: bytes | None = None, authinfo: list[Id] | None = None) -> bytes:
    """A packet as its bytes on the stream, with no QuorumPacket made: PROPOSAL, COMMIT and ACK
    go out this way, encoded once however many learners get them, and a learner's REQUESTs."""
    if authinfo is None:
        if data is None:
            return _PACKET_HEAD_INT.pack(ptype, zxid, -1, -1)
        return b"".join((_PACKET_HEAD.pack(ptype, zxid, len(data)), data, _NO_AUTH))
    parts = [_PACKET_HEAD.pack(ptype, zxid, -1 if data is None else len(data)), data or b"",
             _INT.pack(len(authinfo))]
    for ident in authinfo:
        for text in (ident.scheme, ident.id):
            if text is None:
                parts.append(_NO_AUTH)  # a null string is length -1 too
            else:
                raw = text.encode()
                parts.append(_INT.pack(len(raw)))
                parts.append(raw)
    return b"".join(parts)


def encode_quorum_packet(qp: QuorumPacket) -> bytes:
    """``qp.to_bytes()``."""
    return encode_packet(qp.type, qp.zxid, qp.data, qp.authinfo)


def parse_quorum_packets(buf: bytes, stop_after: int = -1) -> tuple[list[QuorumPacket], int, WireError | None]:
    """Every whole packet at the start of ``buf``, up to and including one of type
    ``stop_after``: (packets, where the rest starts, the error that stopped it or None).

    One struct call reads a head with the int after it (the auth count when there is no data);
    no packet is read twice."""
    out: list[QuorumPacket] = []
    append = out.append
    unpack = _PACKET_HEAD_INT.unpack_from
    unpack_int = _INT.unpack_from
    qp_new = QuorumPacket
    pos = 0
    end = len(buf)
    while end - pos >= 16:
        if end - pos < 20:  # a head alone: its length may already be one no packet has
            try:
                parse_quorum_packet(buf, pos)
            except WireError as e:
                return out, pos, e
            break
        ptype, zxid, n, count = unpack(buf, pos)
        if n == -1:
            data = None
            at = pos + 16
        elif n < 0 or n > MAX_PACKET_DATA_BYTES:
            return out, pos, WireError(f"quorum packet with data length {n}")
        elif end - pos < n + 20:
            break
        else:
            at = pos + 16 + n
            data = buf[pos + 16:at]
            (count,) = unpack_int(buf, at)
        if count == -1 or count == 0:
            append(qp_new(ptype, zxid, data, None if count == -1 else []))
            pos = at + 4
        else:  # a learner's REQUEST carries its client's ids
            try:
                read = _read_auth(buf, at + 4, count)
            except WireError as e:
                return out, pos, e
            if read is None:
                break
            append(qp_new(ptype, zxid, data, read[0]))
            pos = read[1]
        if ptype == stop_after:
            break
    return out, pos, None


def parse_quorum_packet(buf: bytes | bytearray, pos: int) -> tuple[QuorumPacket, int] | None:
    """The packet starting at ``buf[pos]`` and where the next one starts, or None while it is
    incomplete; raises WireError on lengths no packet has."""
    end = len(buf)
    if end - pos < 16:
        return None
    ptype, zxid, n = _PACKET_HEAD.unpack_from(buf, pos)
    pos += 16
    if n == -1:
        if end - pos < 4:
            return None
        data = None
    elif n < 0 or n > MAX_PACKET_DATA_BYTES:
        raise WireError(f"quorum packet with data length {n}")
    elif end - pos < n + 4:
        return None
    else:
        data = buf[pos:pos + n]
        if type(data) is not bytes:
            data = bytes(data)
        pos += n
    (count,) = _INT.unpack_from(buf, pos)
    pos += 4
    if count == -1:
        return QuorumPacket(ptype, zxid, data, None), pos
    read = _read_auth(buf, pos, count)
    if read is None:
        return None
    return QuorumPacket(ptype, zxid, data, read[0]), read[1]


def _read_auth(buf: bytes | bytearray, pos: int, count: int) -> tuple[list[Id], int] | None:
    """``count`` auth ids (scheme and id strings) from ``buf[pos]`` and where they end, or None
    while incomplete; raises WireError on counts and lengths no packet has."""
    if count < 0 or count > 1024:
        raise WireError(f"quorum packet with {count} auth ids")
    end = len(buf)
    auth: list[Id] = []
    for _ in range(count):
        parts: list[str | None] = []
        for _ in range(2):
            if end - pos < 4:
                return None
            (k,) = _INT.unpack_from(buf, pos)
            pos += 4
            if k == -1:
                parts.append(None)
                continue
            if k < 0 or k > MAX_PACKET_DATA_BYTES:
                raise WireError(f"string of {k} bytes in a quorum packet")
            if end - pos < k:
                return None
            parts.append(bytes(buf[pos:pos + k]).decode("utf-8", "replace"))
            pos += k
        auth.append(Id(parts[0], parts[1]))
    return auth, pos


def encode_learner_info(sid: int, config_version: int = 0) -> bytes:
    return LearnerInfo(sid, ZAB_PROTOCOL_VERSION, config_version).to_bytes()


def decode_learner_info(data: bytes | None) -> tuple[int, int]:
    """(sid, protocol version) as LearnerHandler reads them (shorter payloads are older peers)."""
    if data is None or len(data) < 8:
        raise WireError("LearnerInfo without a server id")
    (sid,) = _LONG.unpack_from(data, 0)
    version = _INT.unpack_from(data, 8)[0] if len(data) >= 12 else 0
    return sid, version


def encode_int(value: int) -> bytes:
    return _INT.pack(value)


def decode_int(data: bytes | None, what: str) -> int:
    if data is None or len(data) < 4:
        raise WireError(f"{what} lacks its int")
    return _INT.unpack_from(data, 0)[0]


def encode_touches(touches: dict[int, int]) -> bytes:
    """A learner's PING reply: (long session id, int timeout) per touched session."""
    return b"".join(_TOUCH.pack(s, t) for s, t in touches.items())


def decode_touches(data: bytes | None) -> list[tuple[int, int]]:
    if not data:
        return []
    if len(data) % _TOUCH.size:
        raise WireError(f"PING payload of {len(data)} bytes is not whole session touches")
    return [_TOUCH.unpack_from(data, i) for i in range(0, len(data), _TOUCH.size)]


def encode_revalidate_request(session_id: int, timeout_ms: int) -> bytes:
    return _REVALIDATE_REQ.pack(session_id, timeout_ms)


def decode_revalidate_request(data: bytes | None) -> tuple[int, int]:
    if data is None or len(data) < _REVALIDATE_REQ.size:
        raise WireError("short REVALIDATE request")
    return _REVALIDATE_REQ.unpack_from(data, 0)


def encode_revalidate_response(session_id: int, valid: bool) -> bytes:
    return _REVALIDATE_RESP.pack(session_id, valid)


def decode_revalidate_response(data: bytes | None) -> tuple[int, bool]:
    if data is None or len(data) < _REVALIDATE_RESP.size:
        raise WireError("short REVALIDATE response")
    return _REVALIDATE_RESP.unpack_from(data, 0)


def encode_request(session_id: int, cxid: int, op_type: int, body: bytes) -> bytes:
    """A REQUEST packet's data: the client request a learner forwards to the leader."""
    return _REQUEST_HEAD.pack(session_id, cxid, op_type) + body


def decode_request_head(data: bytes | None) -> tuple[int, int, int]:
    """(session id, cxid, op type) of a forwarded request."""
    if data is None or len(data) < _REQUEST_HEAD.size:
        raise WireError("short REQUEST packet")
    return _REQUEST_HEAD.unpack_from(data, 0)


def describe(qp: QuorumPacket) -> str:
    name = PACKET_NAMES.get(qp.type, str(qp.type))
    size = 0 if qp.data is None else len(qp.data)
    return f"{name} zxid=0x{qp.zxid & 0xFFFFFFFFFFFFFFFF:x} data={size}B"


__all__ = [
    "ACK", "ACKEPOCH", "COMMIT", "DIFF", "FOLLOWERINFO", "FOLLOWING", "INFORM", "LEADERINFO",
    "LEADING", "LOOKING", "NEWLEADER", "OBSERVERINFO", "OBSERVING", "PING", "PROPOSAL", "REQUEST",
    "REVALIDATE", "SNAP", "SYNC", "TRUNC", "UPTODATE", "DecodeError", "Notification", "WireError",
]
