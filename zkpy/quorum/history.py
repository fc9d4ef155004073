"""The tail of the transaction log a consensus core keeps in memory.

ZAB identifies a history prefix by its last zxid: two members that logged the same
zxid logged the same txns before it.  The leader therefore decides DIFF / TRUNC / SNAP
for a learner from the learner's last zxid alone, by looking it up here; the window
is bounded, so a learner further behind gets a snapshot.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right


class History:
    """Log entries ``(base, last]`` in zxid order, plus how far they are durable.

    ``floor`` is the lowest zxid the log can be rewound to (the snapshot the on-disk log
    starts from); ``base`` (>= floor) is the zxid just before the first entry held here.
    """

    __slots__ = ("_next", "base", "durable", "entries", "floor", "generation", "limit", "zxids")

    def __init__(self, floor: int = 0, base: int | None = None,
                 entries: list[tuple[int, bytes]] | None = None, limit: int = 100_000) -> None:
        self.floor = floor
        self.base = floor if base is None else base
        if self.base < floor:
            raise ValueError("history base below its floor")
        self.zxids: list[int] = []
        self.entries: list[bytes] = []
        self.limit = max(1, limit)
        # Where the previous between() stopped: applying commits asks for the range right after
        # it each time, which then costs no search of the (up to limit-long) zxid list.
        self._next = 0
        for z, e in entries or ():
            self.append(z, e)
        self.durable = self.last  # what a driver loads from disk is durable
        # Bumped by every rewind, so a late "appended entries are durable" for entries a
        # truncation has since removed does not move ``durable`` forward.
        self.generation = 0

    @property
    def last(self) -> int:
        return self.zxids[-1] if self.zxids else self.base

    def __len__(self) -> int:
        return len(self.zxids)

    def contains(self, zxid: int) -> bool:
        """Whether ``zxid`` names a point of this history (the base or an entry)."""
        if zxid == self.base:
            return True
        i = bisect_left(self.zxids, zxid)
        return i < len(self.zxids) and self.zxids[i] == zxid

    def last_before(self, zxid: int) -> int:
        """The greatest point (base or entry) below ``zxid``; ``zxid`` must exceed the base."""
        i = bisect_left(self.zxids, zxid)
        return self.zxids[i - 1] if i else self.base

    def entry(self, zxid: int) -> bytes:
        i = bisect_left(self.zxids, zxid)
        if i == len(self.zxids) or self.zxids[i] != zxid:
            raise KeyError(f"zxid 0x{zxid:x} is not in the history")
        return self.entries[i]

    def between(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """Entries with lo < zxid <= hi; ``lo`` must not be below the base."""
        if lo < self.base:
            raise ValueError(f"0x{lo:x} is before the history held (base 0x{self.base:x})")
        zxids = self.zxids
        i = self._next
        # The hint is only trusted when it checks out, so trims and rewinds need not maintain it.
        if not ((0 < i <= len(zxids) and zxids[i - 1] == lo) or (i == 0 and lo == self.base)):
            i = bisect_right(zxids, lo)
        n = len(zxids)
        j = i
        while j < n and zxids[j] <= hi:  # as long as the copy below: no search
            j += 1
        self._next = j
        return list(zip(zxids[i:j], self.entries[i:j], strict=True))

    def append(self, zxid: int, entry: bytes) -> None:
        if zxid <= self.last:
            raise ValueError(f"zxid 0x{zxid:x} appended after 0x{self.last:x}")
        self.zxids.append(zxid)
        self.entries.append(entry)

    def truncate(self, zxid: int) -> None:
        """Drop entries after ``zxid`` (TRUNC); ``zxid`` must not be below the floor."""
        if zxid < self.floor:
            raise ValueError(f"cannot truncate to 0x{zxid:x}, below the floor 0x{self.floor:x}")
        if zxid < self.base:
            # Rewinding below what memory holds: the disk still has it, memory starts afresh.
            self.base = zxid
            self.zxids.clear()
            self.entries.clear()
        else:
            i = bisect_right(self.zxids, zxid)
            del self.zxids[i:]
            del self.entries[i:]
        self.durable = min(self.durable, zxid)
        self.generation += 1

    def reset(self, zxid: int) -> None:
        """A snapshot at ``zxid`` replaces everything (SNAP)."""
        self.floor = self.base = zxid
        self.zxids.clear()
        self.entries.clear()
        self.durable = min(self.durable, zxid)
        self.generation += 1

    def mark_durable(self, zxid: int, generation: int) -> None:
        if generation == self.generation and zxid > self.durable:
            self.durable = min(zxid, self.last)

    def trim(self, keep_after: int) -> None:
        """Forget old entries beyond ``limit``, but never any after ``keep_after`` (unapplied)."""
        excess = len(self.zxids) - self.limit
        if excess <= self.limit // 4:  # trim in chunks so appends stay amortized O(1)
            return
        cut = min(excess, bisect_right(self.zxids, keep_after))
        if cut <= 0:
            return
        self.base = self.zxids[cut - 1]
        del self.zxids[:cut]
        del self.entries[:cut]

