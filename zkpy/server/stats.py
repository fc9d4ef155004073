"""Server-wide counters behind srvr / stat / mntr (ZooKeeper's ServerStats)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class ServerStats:
    started_at: float = field(default_factory=time.time)
    packets_received: int = 0
    packets_sent: int = 0
    min_latency_ms: int = 0
    max_latency_ms: int = 0
    total_latency_ms: int = 0
    latency_count: int = 0
    fsync_threshold_exceeded: int = 0
    auth_failed: int = 0
    connections_rejected: int = 0

    def record_latency(self, ms: int) -> None:
        if self.latency_count == 0 or ms < self.min_latency_ms:
            self.min_latency_ms = ms
        if ms > self.max_latency_ms:
            self.max_latency_ms = ms
        self.total_latency_ms += ms
        self.latency_count += 1

    @property
    def avg_latency_ms(self) -> float:
        return self.total_latency_ms / self.latency_count if self.latency_count else 0.0

    def reset_latency(self) -> None:
        self.min_latency_ms = self.max_latency_ms = self.total_latency_ms = self.latency_count = 0

    def reset(self) -> None:
        self.reset_latency()
        self.packets_received = self.packets_sent = 0
        self.fsync_threshold_exceeded = 0
        self.auth_failed = 0
