"""Latency histograms: HdrHistogram in microseconds, merged across worker processes.

Workers record into their own histogram and ship it to the parent in HdrHistogram's
compressed encoding; the parent adds them up.  Values are bounded (1 us .. 10 min), three
significant digits, so a histogram is a fixed few tens of kilobytes however long the run.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

__all__ = ["PERCENTILES", "LatencyHistogram"]

LOWEST_US = 1
HIGHEST_US = 600_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))


class LatencyHistogram:
    """Request latencies in microseconds."""

    __slots__ = ("_h", "record")

    def __init__(self) -> None:
        self._h = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self.record = self._record  # bound once: called on every request

    def _record(self, us: int) -> None:
        # Clamp: a value outside the trackable range would be dropped silently by hdrh.
        if us < LOWEST_US:
            us = LOWEST_US
        elif us > HIGHEST_US:
            us = HIGHEST_US
        self._h.record_value(us)

    @property
    def count(self) -> int:
        return self._h.get_total_count()

    def encode(self) -> bytes:
        return self._h.encode()

    def add_encoded(self, data: bytes) -> None:
        self._h.decode_and_add(data)

    def add(self, other: LatencyHistogram) -> None:
        self._h.add(other._h)

    def summary_ms(self) -> dict[str, float]:
        """p50 / p90 / p99 / p99.9 / max (and mean) in milliseconds; zeros when empty."""
        h = self._h
        if h.get_total_count() == 0:
            return {**{name: 0.0 for name, _ in PERCENTILES}, "max": 0.0, "mean": 0.0}
        out = {name: h.get_value_at_percentile(p) / 1000.0 for name, p in PERCENTILES}
        # hdrh's max is the highest equivalent value of its bucket: never below p99.9.
        out["max"] = h.get_max_value() / 1000.0
        out["mean"] = round(h.get_mean_value() / 1000.0, 4)
        return out
