"""Latency histograms: HdrHistogram in microseconds, merged across worker processes.

Workers record into their own histogram and ship it to the parent in HdrHistogram's
compressed encoding; the parent adds them up.  Values are bounded (1 us .. 10 min), three
significant digits, so a histogram is a fixed few tens of kilobytes however long the run.

Recording is on the load generator's hot path, and hdrh's ``record_value`` is pure Python
(~2 us, a tenth of a request's client cost): values are first counted in a dict keyed by
the microsecond value cut to hdrh's own precision and folded into the HdrHistogram with
their counts once the dict holds :data:`FOLD_KEYS` distinct values, and before any read.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

__all__ = ["PERCENTILES", "LatencyHistogram"]

LOWEST_US = 1
HIGHEST_US = 600_000_000
SIGNIFICANT_DIGITS = 3
_SIGNIFICANT_BITS = 11
_EXACT_BELOW = 1 << _SIGNIFICANT_BITS
FOLD_KEYS = 20_000  # bounds the dict: at most this many distinct values wait to be folded
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))


class LatencyHistogram:
    """Request latencies in microseconds."""

    __slots__ = ("_h", "_pending")

    def __init__(self) -> None:
        self._h = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self._pending: dict[int, int] = {}

    def record(self, us: int) -> None:
        if us >= _EXACT_BELOW:
            # Keep 11 significant bits: hdrh's own bucket width at 3 significant digits (its
            # sub-bucket count is 2048), so nothing is lost and few distinct keys remain.
            shift = us.bit_length() - _SIGNIFICANT_BITS
            us = (us >> shift) << shift
        pending = self._pending
        pending[us] = pending.get(us, 0) + 1
        if len(pending) > FOLD_KEYS:
            self._fold()

    def _fold(self) -> None:
        h = self._h
        for us, n in self._pending.items():
            # Clamp: a value outside the trackable range would be dropped silently by hdrh.
            h.record_value(min(max(us, LOWEST_US), HIGHEST_US), n)
        self._pending.clear()

    @property
    def count(self) -> int:
        self._fold()
        return self._h.get_total_count()

    def encode(self) -> bytes:
        self._fold()
        return self._h.encode()

    def add_encoded(self, data: bytes) -> None:
        self._fold()
        self._h.decode_and_add(data)

    def add(self, other: LatencyHistogram) -> None:
        self._fold()
        other._fold()
        self._h.add(other._h)

    def summary_ms(self) -> dict[str, float]:
        """p50 / p90 / p99 / p99.9 / max (and mean) in milliseconds; zeros when empty."""
        self._fold()
        h = self._h
        if h.get_total_count() == 0:
            return {**{name: 0.0 for name, _ in PERCENTILES}, "max": 0.0, "mean": 0.0}
        out = {name: h.get_value_at_percentile(p) / 1000.0 for name, p in PERCENTILES}
        # hdrh's max is the highest equivalent value of its bucket: never below p99.9.
        out["max"] = h.get_max_value() / 1000.0
        out["mean"] = round(h.get_mean_value() / 1000.0, 4)
        return out
