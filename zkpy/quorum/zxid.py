"""zxid arithmetic: epoch in the high 32 bits, a per-epoch counter in the low 32 (ZxidUtils)."""

from __future__ import annotations

COUNTER_MASK = 0xFFFFFFFF
# Leader.propose refuses the proposal whose counter would be all ones and forces a new
# election, so the last counter a leader ever hands out is 0xfffffffe.
COUNTER_MAX = COUNTER_MASK - 1


def make_zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | (counter & COUNTER_MASK)


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def counter_of(zxid: int) -> int:
    return zxid & COUNTER_MASK


def zxid_str(zxid: int) -> str:
    """As ZooKeeper logs it: hex, two's complement for negatives."""
    return f"0x{zxid & 0xFFFFFFFFFFFFFFFF:x}"
