"""Expire a client's session from the outside, the way ZooKeeper's own tests do it.

A second connection attaches to the session with the same id and password (the server then
drops the first connection), and closes it.  When the first client reconnects, the server
answers that the session is gone: the client sees SESSION_EXPIRED, exactly as after a real
expiry, without waiting for the timeout.
"""

from __future__ import annotations

import socket
import struct
import time

from zkpy.proto.constants import OpCode
from zkpy.proto.messages import decode_connect_response, encode_connect_request
from zkpy.proto.records import ConnectRequest

_LENGTH = struct.Struct(">i")
_REQUEST_HEADER = struct.Struct(">ii")
_REPLY_HEADER = struct.Struct(">iqi")
_CLOSE_XID = 1
_MAX_FRAME_BYTES = 1 << 20


def expire_session(host: str, port: int, session_id: int, password: bytes, timeout_s: float = 10.0) -> bool:
    """Close ``session_id`` on the server at ``host:port``; False if it was already gone."""
    deadline = time.monotonic() + timeout_s
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        request = encode_connect_request(ConnectRequest(0, 0, 30_000, session_id, bytes(password)), False)
        sock.sendall(_LENGTH.pack(len(request)) + request)
        response, _read_only = decode_connect_response(_read_frame(sock, deadline))
        if response.timeOut <= 0 or response.sessionId == 0:
            return False  # the server no longer knows this session (or the password is wrong)
        sock.sendall(_LENGTH.pack(_REQUEST_HEADER.size) + _REQUEST_HEADER.pack(_CLOSE_XID, OpCode.closeSession))
        while True:  # bounded by the deadline: each frame read checks it
            frame = _read_frame(sock, deadline)
            xid, _zxid, err = _REPLY_HEADER.unpack_from(frame, 0)
            if xid == _CLOSE_XID:
                return err == 0


def _read_frame(sock: socket.socket, deadline: float) -> bytes:
    (length,) = _LENGTH.unpack(_read_exactly(sock, _LENGTH.size, deadline))
    if not 0 < length <= _MAX_FRAME_BYTES:
        raise ConnectionError(f"unexpected frame length {length} from the server")
    return _read_exactly(sock, length, deadline)


def _read_exactly(sock: socket.socket, n: int, deadline: float) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the server did not answer in time")
        sock.settimeout(remaining)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
    return bytes(buf)
