"""Sessions: ids and passwords as ZooKeeper makes them, expiry in tick-sized buckets.

The tracker owns the live session state (timeouts, expiry deadlines, which are
closing).  Expiring a session is not done here: the server turns an expired
session into a closeSession transaction so that ephemerals go through the log.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

SUPER_SECRET = 0xB3415C00  # ZooKeeperServer.superSecret
_JAVA_MULT = 0x5DEECE66D
_JAVA_MASK = (1 << 48) - 1
_U64 = (1 << 64) - 1


def _to_signed64(n: int) -> int:
    n &= _U64
    return n - (1 << 64) if n >> 63 else n


def session_password(session_id: int) -> bytes:
    """16 bytes of ``java.util.Random(sessionId ^ superSecret).nextBytes``.

    ZooKeeper never stores passwords; it derives them from the id, so the same
    derivation lets a session survive a switch between Apache ZooKeeper and zkpy."""
    seed = ((session_id ^ SUPER_SECRET) ^ _JAVA_MULT) & _JAVA_MASK
    out = bytearray()
    while len(out) < 16:
        seed = (seed * _JAVA_MULT + 0xB) & _JAVA_MASK
        rnd = seed >> 16  # next(32)
        for _ in range(min(16 - len(out), 4)):
            out.append(rnd & 0xFF)
            rnd >>= 8
    return bytes(out)


def initial_session_id(server_id: int, now_ms: int | None = None) -> int:
    """SessionTrackerImpl.initializeNextSessionId: server id in the top byte, time below."""
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    sid = ((now_ms << 24) & _U64) >> 8
    sid |= (server_id & 0xFF) << 56
    sid = _to_signed64(sid)
    if sid == -0x8000000000000000:  # would look like a container's owner
        sid += 1
    return sid


@dataclass(slots=True)
class Session:
    session_id: int
    timeout_ms: int
    expire_at_ms: int = 0
    closing: bool = False
    owner: object | None = field(default=None, repr=False)  # the connection serving it, if any


class SessionTracker:
    """Live sessions with deadlines rounded up to the next tick (SessionTrackerImpl)."""

    def __init__(self, tick_ms: int, server_id: int = 1, now_ms: int | None = None) -> None:
        self.tick_ms = max(1, tick_ms)
        self.sessions: dict[int, Session] = {}
        self._buckets: dict[int, set[int]] = {}
        self._next_id = initial_session_id(server_id, now_ms)

    def _round_up(self, t_ms: int) -> int:
        return (t_ms // self.tick_ms + 1) * self.tick_ms

    def new_session_id(self) -> int:
        while True:
            sid = self._next_id
            self._next_id = _to_signed64(self._next_id + 1)
            if sid not in self.sessions and sid != 0:
                return sid

    def add(self, session_id: int, timeout_ms: int, now_ms: int) -> Session:
        """Track ``session_id`` (a createSession txn committed, or a session loaded from disk)."""
        sess = self.sessions.get(session_id)
        if sess is None:
            sess = self.sessions[session_id] = Session(session_id, timeout_ms)
        else:
            sess.timeout_ms = timeout_ms
        self._schedule(sess, now_ms)
        return sess

    def touch_session(self, sess: Session, now_ms: int) -> None:
        """touch() for a Session object the caller holds (a connection's): no id lookup."""
        tick = self.tick_ms
        new_at = ((now_ms + sess.timeout_ms) // tick + 1) * tick
        if new_at != sess.expire_at_ms:
            self._move(sess, new_at)

    def _schedule(self, sess: Session, now_ms: int) -> None:
        new_at = self._round_up(now_ms + sess.timeout_ms)
        if new_at == sess.expire_at_ms:
            return
        self._move(sess, new_at)

    def _move(self, sess: Session, new_at: int) -> None:
        old = self._buckets.get(sess.expire_at_ms)
        if old is not None:
            old.discard(sess.session_id)
            if not old:
                del self._buckets[sess.expire_at_ms]
        sess.expire_at_ms = new_at
        self._buckets.setdefault(new_at, set()).add(sess.session_id)

    def touch(self, session_id: int, now_ms: int, timeout_ms: int | None = None) -> bool:
        """Push the session's deadline out; False when it is unknown or closing."""
        sess = self.sessions.get(session_id)
        if sess is None or sess.closing:
            return False
        if timeout_ms is not None:
            sess.timeout_ms = timeout_ms
        self._schedule(sess, now_ms)
        return True

    def get(self, session_id: int) -> Session | None:
        return self.sessions.get(session_id)

    def is_live(self, session_id: int) -> bool:
        sess = self.sessions.get(session_id)
        return sess is not None and not sess.closing

    def set_closing(self, session_id: int) -> None:
        sess = self.sessions.get(session_id)
        if sess is not None:
            sess.closing = True

    def remove(self, session_id: int) -> None:
        sess = self.sessions.pop(session_id, None)
        if sess is None:
            return
        sess.closing = True  # a connection still holding the object sees it is gone
        bucket = self._buckets.get(sess.expire_at_ms)
        if bucket is not None:
            bucket.discard(session_id)
            if not bucket:
                del self._buckets[sess.expire_at_ms]

    def expired(self, now_ms: int) -> list[Session]:
        """Sessions whose bucket deadline has passed; they are marked closing."""
        out: list[Session] = []
        for at in sorted(t for t in self._buckets if t <= now_ms):
            for sid in self._buckets.pop(at):
                sess = self.sessions.get(sid)
                if sess is not None and not sess.closing:
                    sess.closing = True
                    out.append(sess)
        return out

    def next_deadline_ms(self) -> int | None:
        return min(self._buckets) if self._buckets else None

    def ids(self) -> Iterable[int]:
        return self.sessions.keys()
