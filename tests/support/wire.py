"""A minimal synchronous ZooKeeper wire client for tests: exact requests in, decoded replies out.

It sends precisely the request records a test builds and keeps every reply and
watch notification, so the same script can be replayed against Apache
ZooKeeper and zkpy and the answers compared field by field.  It is not a
general client (see zkpy.client for that): one request at a time unless a test
pipelines on purpose, no reconnects.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

from zkpy.proto.constants import OpCode
from zkpy.proto.framing import FrameReader
from zkpy.proto.jute import Record
from zkpy.proto.messages import decode_connect_response, decode_multi_response, encode_connect_request
from zkpy.proto.records import (
    ConnectRequest,
    Create2Response,
    CreateResponse,
    ErrorResponse,
    ExistsResponse,
    GetACLResponse,
    GetAllChildrenNumberResponse,
    GetChildren2Response,
    GetChildrenResponse,
    GetDataResponse,
    GetEphemeralsResponse,
    ReplyHeader,
    RequestHeader,
    SetACLResponse,
    SetDataResponse,
    SyncResponse,
    WatcherEvent,
    WhoAmIResponse,
)

_LEN = struct.Struct(">i")

RESPONSE_RECORDS: dict[int, type[Record] | None] = {
    OpCode.create: CreateResponse,
    OpCode.create2: Create2Response,
    OpCode.createContainer: Create2Response,
    OpCode.createTTL: Create2Response,
    OpCode.delete: None,
    OpCode.exists: ExistsResponse,
    OpCode.getData: GetDataResponse,
    OpCode.setData: SetDataResponse,
    OpCode.getACL: GetACLResponse,
    OpCode.setACL: SetACLResponse,
    OpCode.getChildren: GetChildrenResponse,
    OpCode.getChildren2: GetChildren2Response,
    OpCode.sync: SyncResponse,
    OpCode.ping: None,
    OpCode.check: None,
    OpCode.checkWatches: None,
    OpCode.removeWatches: None,
    OpCode.setWatches: None,
    OpCode.setWatches2: None,
    OpCode.addWatch: ErrorResponse,
    OpCode.getEphemerals: GetEphemeralsResponse,
    OpCode.getAllChildrenNumber: GetAllChildrenNumberResponse,
    OpCode.whoAmI: WhoAmIResponse,
    OpCode.closeSession: None,
    OpCode.auth: None,
}


@dataclass
class Reply:
    xid: int
    zxid: int
    err: int
    body: object = None  # decoded record, list of multi results, or raw bytes


@dataclass
class WireClient:
    host: str
    port: int
    timeout_ms: int = 10000
    session_id: int = 0
    passwd: bytes = b"\0" * 16
    last_zxid: int = 0
    read_only: bool | None = False
    events: list[WatcherEvent] = field(default_factory=list)
    sock: socket.socket | None = None
    negotiated_timeout: int = 0
    _xid: int = 0
    _reader: FrameReader = field(default_factory=lambda: FrameReader(64 << 20))

    def connect(self) -> WireClient:
        self.sock = socket.create_connection((self.host, self.port), timeout=10)
        req = ConnectRequest(0, self.last_zxid, self.timeout_ms, self.session_id, self.passwd)
        body = encode_connect_request(req, self.read_only)
        self.sock.sendall(_LEN.pack(len(body)) + body)
        frame = self._read_frame()
        resp, _ro = decode_connect_response(frame)
        self.negotiated_timeout = resp.timeOut
        if resp.timeOut <= 0:
            raise ConnectionError("session expired or invalid")
        self.session_id = resp.sessionId
        self.passwd = resp.passwd or b""
        return self

    def close_socket(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # ---------------------------------------------------------------- raw I/O

    def send_raw(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def _read_frame(self, timeout_s: float = 10.0) -> bytes:
        assert self.sock is not None
        deadline = time.monotonic() + timeout_s
        while True:
            frames = self._reader.frames(limit=1)
            if frames:
                return frames[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no reply")
            self.sock.settimeout(remaining)
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("connection closed by server")
            self._reader.feed(data)

    def next_xid(self) -> int:
        self._xid += 1
        return self._xid

    def send_request(self, op: int, record: Record | bytes | None, xid: int | None = None) -> int:
        xid = self.next_xid() if xid is None else xid
        out = bytearray()
        RequestHeader(xid, op).encode_into(out)
        if isinstance(record, Record):
            record.encode_into(out)
        elif record:
            out += record
        self.send_raw(_LEN.pack(len(out)) + out)
        return xid

    def read_reply(self, op: int, timeout_s: float = 10.0) -> Reply:
        """The next reply, collecting watch notifications that come before it."""
        while True:
            frame = self._read_frame(timeout_s)
            hdr, pos = ReplyHeader.decode_from(frame, 0)
            if hdr.xid == -1:
                ev, _ = WatcherEvent.decode_from(frame, pos)
                self.events.append(ev)
                continue
            if hdr.zxid > 0:
                self.last_zxid = max(self.last_zxid, hdr.zxid)
            body: object = None
            if hdr.err == 0 and pos < len(frame):
                if op in (OpCode.multi, OpCode.multiRead):
                    body = decode_multi_response(frame, pos)
                else:
                    cls = RESPONSE_RECORDS.get(op)
                    body = cls.from_bytes(frame[pos:]) if cls is not None else frame[pos:]
            elif op in (OpCode.multi, OpCode.multiRead) and pos < len(frame):
                body = decode_multi_response(frame, pos)
            return Reply(hdr.xid, hdr.zxid, hdr.err, body)

    def call(self, op: int, record: Record | bytes | None = None, timeout_s: float = 10.0) -> Reply:
        self.send_request(op, record)
        return self.read_reply(op, timeout_s)

    def wait_events(self, n: int, timeout_s: float = 5.0) -> list[WatcherEvent]:
        """Read until ``n`` notifications are collected (or the time is up); returns them all."""
        deadline = time.monotonic() + timeout_s
        while len(self.events) < n and time.monotonic() < deadline:
            try:
                frame = self._read_frame(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            hdr, pos = ReplyHeader.decode_from(frame, 0)
            if hdr.xid == -1:
                ev, _ = WatcherEvent.decode_from(frame, pos)
                self.events.append(ev)
        return list(self.events)

    def is_closed_by_server(self, timeout_s: float = 5.0) -> bool:
        """True when the server closes the connection (EOF or reset) within the time."""
        assert self.sock is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True
            if not data:
                return True
            self._reader.feed(data)
        return False

    def close(self) -> Reply | None:
        if self.sock is None:
            return None
        try:
            r = self.call(OpCode.closeSession, None)
        except (ConnectionError, TimeoutError, OSError):
            r = None
        self.close_socket()
        return r
