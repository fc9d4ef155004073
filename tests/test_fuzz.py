"""Fuzzing a running server: random and mutated frames must never hurt anyone else.

Seeded, bounded rounds throw garbage handshakes, mutated requests, random
opcodes and broken lengths at a real `zkpy server`; after every round a normal
client must still get correct answers and a canary subtree must be intact.
"""

from __future__ import annotations

import random
import socket
import struct
import time

import pytest

from tests.support.servers import ServerProcess, four_letter
from tests.support.wire import WireClient
from zkpy.proto.constants import OpCode
from zkpy.proto.messages import encode_multi_request
from zkpy.proto.records import (
    ACL,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    GetChildrenRequest,
    GetDataRequest,
    Id,
    SetDataRequest,
    SetWatches2,
)

OPEN = [ACL(31, Id("world", "anyone"))]
_LEN = struct.Struct(">i")


def valid_requests(rng: random.Random) -> list[tuple[int, bytes]]:
    """A pool of well-formed requests to mutate, touching only /fuzz."""
    p = f"/fuzz/n{rng.randrange(20)}"
    multi = bytearray()
    encode_multi_request([(OpCode.create, CreateRequest(p + "m", b"x", OPEN, 0)),
                          (OpCode.check, CheckVersionRequest("/fuzz", -1))], multi)
    return [
        (OpCode.create, CreateRequest(p, b"data", OPEN, rng.choice([0, 1, 2, 3, 4])).to_bytes()),
        (OpCode.setData, SetDataRequest(p, b"y" * rng.randrange(100), -1).to_bytes()),
        (OpCode.delete, DeleteRequest(p, -1).to_bytes()),
        (OpCode.getData, GetDataRequest(p, rng.random() < 0.5).to_bytes()),
        (OpCode.getChildren, GetChildrenRequest("/fuzz", True).to_bytes()),
        (OpCode.multi, bytes(multi)),
        (OpCode.setWatches2, SetWatches2(0, [p], [p], ["/fuzz"], [], []).to_bytes()),
    ]


def mutate(rng: random.Random, body: bytes) -> bytes:
    b = bytearray(body)
    choice = rng.randrange(5)
    if choice == 0 and b:
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif choice == 1 and b:
        del b[rng.randrange(len(b)):]
    elif choice == 2:
        b += rng.randbytes(rng.randrange(1, 16))
    elif choice == 3 and len(b) >= 4:
        i = rng.randrange(len(b) - 3)
        b[i:i + 4] = _LEN.pack(rng.choice([-1, -2, 0, 0x7FFFFFFF, 1 << 20, rng.randrange(-100, 100)]))
    else:
        b = bytearray(rng.randbytes(rng.randrange(0, 40)))
    return bytes(b)


def send_and_drain(s: socket.socket, data: bytes, wait_s: float = 0.02) -> None:
    try:
        s.sendall(data)
        s.settimeout(wait_s)
        while s.recv(65536):
            pass
    except (TimeoutError, OSError):
        pass


def attack(srv: ServerProcess, rng: random.Random) -> None:
    kind = rng.randrange(4)
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        if kind == 0:  # garbage instead of a handshake
            send_and_drain(s, rng.randbytes(rng.randrange(1, 80)))
            return
        if kind == 1:  # a handshake with broken fields
            hs = struct.pack(">iqiq", 0, rng.choice([0, -1, 1 << 40]), rng.randrange(-5, 100000),
                             rng.choice([0, rng.getrandbits(63)])) + _LEN.pack(16) + b"\0" * 16 + b"\0"
            send_and_drain(s, _LEN.pack(len(hs)) + mutate(rng, hs))
            return
        # A valid handshake, then mutated or random requests.
        hs = struct.pack(">iqiq", 0, 0, 10000, 0) + _LEN.pack(16) + b"\0" * 16 + b"\0"
        send_and_drain(s, _LEN.pack(len(hs)) + hs)
        for xid in range(1, rng.randrange(2, 12)):
            if kind == 2:
                op, body = rng.choice(valid_requests(rng))
                body = mutate(rng, body) if rng.random() < 0.8 else body
            else:
                op, body = rng.choice([rng.randrange(-20, 120), *OpCode]), rng.randbytes(rng.randrange(0, 30))
            frame = struct.pack(">ii", xid, op) + body
            length = len(frame) if rng.random() < 0.9 else rng.choice([-7, 0, len(frame) + 5, 1 << 21])
            send_and_drain(s, _LEN.pack(length) + frame)


def check_healthy(srv: ServerProcess) -> None:
    c = WireClient(srv.host, srv.port).connect()
    try:
        r = c.call(OpCode.getData, GetDataRequest("/canary", False))
        assert r.err == 0 and r.body.data == b"tweet"
        kids = c.call(OpCode.getChildren, GetChildrenRequest("/canary", False))
        assert sorted(kids.body.children) == [f"c{i}" for i in range(5)]
        assert c.call(OpCode.setData, SetDataRequest("/fuzz", b"ok", -1)).err == 0
    finally:
        c.close()


@pytest.mark.slow
def test_random_and_mutated_frames_do_not_hurt_other_clients(zkpy_server: ServerProcess) -> None:
    c = WireClient(zkpy_server.host, zkpy_server.port).connect()
    c.call(OpCode.create, CreateRequest("/canary", b"tweet", OPEN, 0))
    for i in range(5):
        c.call(OpCode.create, CreateRequest(f"/canary/c{i}", b"", OPEN, 0))
    c.call(OpCode.create, CreateRequest("/fuzz", b"", OPEN, 0))
    c.close()
    rng = random.Random(0x2181)
    deadline = time.monotonic() + 120
    rounds_done = 0
    while rounds_done < 40 and time.monotonic() < deadline:
        for _ in range(15):
            attack(zkpy_server, rng)
        check_healthy(zkpy_server)
        rounds_done += 1
    assert rounds_done >= 10
    assert zkpy_server.proc is not None and zkpy_server.proc.poll() is None
    assert "imok" in four_letter(zkpy_server.host, zkpy_server.port, "ruok")
    assert "Traceback" not in zkpy_server.log_tail(2000)
