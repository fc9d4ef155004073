"""The server's metrics registry: ZooKeeper 3.8's metric names, read by mntr, the AdminServer and /metrics.

One :class:`ServerMetrics` lives on the server (``server.metrics``).  It holds

* **summaries** - every ``AvgMinMaxCounter`` / ``AvgMinMaxPercentileCounter`` of ZooKeeper's
  ``ServerMetrics`` by its name (``readlatency``, ``updatelatency``, ``fsynctime``,
  ``snapshottime``, ``quorum_ack_latency``, ...): count, total, min, max and a uniform reservoir
  of 4096 samples (Dropwizard's algorithm R, as ``AvgMinMaxPercentileCounter``) for percentiles;
* **counters** by name (``bytes_received_count``, ``connection_request_count``, ...), plus the
  few the server's own state answers (``connection_rejected``, ``unrecoverable_error_count``);
* **summary sets** and **counter sets** (per-key families, e.g. ``ack_latency`` per follower);
* **gauges**: callbacks over the server's state (``znode_count``, ``watch_count``,
  ``outstanding_requests``, ``global_sessions``, ...) and any a component registers with
  :meth:`ServerMetrics.register_gauge` (a quorum peer will add ``quorum_size``, ``learners``...).

Readers:

* ``mntr`` (``fourlw.py``) reads ``gauges`` (the registered ones only: it computes the standard
  gauges itself from the same state), ``counters``, ``summaries``, ``summary_sets`` and
  ``counter_sets`` and calls :meth:`ServerMetrics.reset` on ``srst``;
* the AdminServer's ``monitor`` command reads :meth:`ServerMetrics.monitor_values`;
* the Prometheus endpoint (:func:`start_metrics_http`) reads :class:`PrometheusCollector`.

The hot path pays one method call per request (``read_latency.add(ms)`` /
``update_latency.add(ms)``): a few integer updates and, once the reservoir is full, one
``random()`` - no allocation beyond Python's own ints, no logging, no lock.  The log thread adds
fsync times to its own summary; a reader on the event loop may see a sample half-added, which
costs at most one sample's worth of accuracy in one scrape.

Prometheus: ZooKeeper 3.8.0's ``PrometheusMetricsProvider`` uses the Java simpleclient 0.9.0,
whose text format we reproduce with ``prometheus_client``: counters keep their names (no
``_total`` suffix, no ``_created`` sample), summaries expose ``name{quantile=...}``,
``name_count`` and ``name_sum`` (quantiles 0.5/0.9/0.99 for ADVANCED summaries, 0.5 for BASIC
ones, NaN before the first sample), sets carry the label ``key``, gauges without a value are 0,
and with ``exportJvmInfo`` (the default) the process collector adds the same ``process_*``
metrics Java's does, with Python's ``python_*`` metrics where Java has ``jvm_*``.  Differences,
and why: quantiles come from the same uniform reservoir as mntr's percentiles (over the samples
since start or ``srst``), not from a 10-minute sliding window; ``srst`` resets what Prometheus
sees too (Java's Prometheus provider ignores resets) - Prometheus treats that as a counter reset.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)

PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
# Dropwizard UniformReservoir's size in ZooKeeper's AvgMinMaxPercentileCounter.
RESERVOIR_SIZE = 4096
# Request-path samples buffered before ServerMetrics.tick folds them into their summary.
FOLD_AT = 1024
# The text format Java's simpleclient 0.9.0 serves (no OpenMetrics negotiation before 0.10).
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# ---------------------------------------------------------------------- ZooKeeper's metric names
# In the order ZooKeeper 3.8.0's DefaultMetricsProvider prints them (mntr, AdminServer monitor).

GAUGES: tuple[str, ...] = tuple("""
ephemerals_count num_alive_connections avg_latency outstanding_requests znode_count global_sessions
non_mtls_remote_conn_count last_client_response_size packets_sent packets_received
max_client_response_size connection_drop_probability watch_count auth_failed_count min_latency
max_file_descriptor_count approximate_data_size open_file_descriptor_count local_sessions uptime
max_latency outstanding_tls_handshake min_client_response_size non_mtls_local_conn_count
""".split())
QUOTA_GAUGE_SETS: tuple[str, ...] = ("quota_bytes_limit_per_namespace", "quota_count_usage_per_namespace",
                                     "quota_count_limit_per_namespace", "quota_bytes_usage_per_namespace")
COUNTERS: tuple[str, ...] = tuple("""
proposal_count watch_bytes outstanding_changes_removed throttled_ops stale_requests_dropped
large_requests_rejected insecure_admin_count connection_rejected
cnxn_closed_without_zk_server_running sessionless_connections_expired looking_count
dead_watchers_queued stale_requests connection_drop_count learner_proposal_received_count
digest_mismatches_count dead_watchers_cleared response_packet_cache_hits bytes_received_count
add_dead_watcher_stall_time request_throttle_wait_count requests_not_forwarded_to_commit_processor
response_packet_cache_misses ensemble_auth_success prep_processor_request_queued
learner_commit_received_count stale_replies connection_request_count response_bytes
ensemble_auth_fail diff_count response_packet_get_children_cache_misses connection_revalidate_count
quit_leading_due_to_disloyal_voter snap_count unrecoverable_error_count unsuccessful_handshake
commit_count stale_sessions_expired response_packet_get_children_cache_hits
sync_processor_request_queued outstanding_changes_queued request_commit_queued ensemble_auth_skip
skip_learner_request_to_next_processor_count tls_handshake_exceeded revalidate_count
""".split())
COUNTER_SETS: tuple[str, ...] = ("quota_exceeded_error_per_namespace",)
# DetailLevel.BASIC: avg/min/max/cnt/sum in mntr, only the median in Prometheus.
BASIC_SUMMARIES: tuple[str, ...] = tuple("""
socket_closing_time proposal_process_time leader_unavailable_time node_created_watch_count
session_queues_drained write_commit_proc_req_queued connection_token_deficit
read_commit_proc_req_queued node_deleted_watch_count startup_txns_load_time
sync_processor_queue_size follower_sync_time prep_processor_queue_size fsynctime inflight_snap_count
reads_issued_from_session_queue learner_request_processor_queue_size snapshottime unavailable_time
startup_txns_loaded reads_after_write_in_session_queue requests_in_session_queue
write_commit_proc_issued prep_process_time pending_session_queue_size
time_waiting_empty_pool_in_commit_processor_read_ms commit_process_time dbinittime
inflight_diff_count netty_queued_buffer_capacity election_time commit_commit_proc_req_queued
sync_processor_batch_size node_children_watch_count write_batch_time_in_commit_processor
read_commit_proc_issued concurrent_request_processing_in_commit_processor observer_sync_time
node_changed_watch_count sync_process_time startup_snap_load_time
""".split())
# DetailLevel.ADVANCED: also p50/p95/p99/p999 in mntr, quantiles 0.5/0.9/0.99 in Prometheus.
SUMMARIES: tuple[str, ...] = tuple("""
prep_processor_queue_time_ms jvm_pause_time_ms close_session_prep_time read_commitproc_time_ms
updatelatency local_write_committed_time_ms request_throttle_queue_time_ms readlatency
quorum_ack_latency om_commit_process_time_ms read_final_proc_time_ms commit_propagation_latency
dead_watchers_cleaner_latency write_final_proc_time_ms proposal_ack_creation_latency
proposal_latency om_proposal_process_time_ms sync_processor_queue_and_flush_time_ms
propagation_latency server_write_committed_time_ms sync_processor_queue_time_ms
sync_processor_queue_flush_time_ms write_commitproc_time_ms
""".split())
BASIC_SUMMARY_SETS: tuple[str, ...] = ("write_per_namespace", "read_per_namespace", "learner_handler_qp_size")
SUMMARY_SETS: tuple[str, ...] = ("learner_handler_qp_time_ms", "ack_latency")

_NO_MIN = 1 << 63
_NO_MAX = -(1 << 63)
_MNTR_PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
_PROMETHEUS_QUANTILES_ADVANCED = (("0.5", 0.5), ("0.9", 0.9), ("0.99", 0.99))
_PROMETHEUS_QUANTILES_BASIC = (("0.5", 0.5),)
_U64 = (1 << 64) - 1


# ---------------------------------------------------------------------- summaries


def _unit() -> float:
    """A uniform draw in (0, 1]: log() of it is defined."""
    return 1.0 - random.random()


def _draw_w() -> float:
    """Algorithm L's factor: the largest of RESERVOIR_SIZE uniform draws, kept below 1."""
    return min(math.exp(math.log(_unit()) / RESERVOIR_SIZE), 1.0 - 1e-16)


def _skip(w: float) -> int:
    """How far the next kept sample is: 1 + the geometric number of samples passed over."""
    return int(math.log(_unit()) / math.log1p(-w)) + 1


class Summary:
    """AvgMinMaxPercentileCounter: count, total, min, max and a uniform sample for percentiles.

    ``min``/``max`` are meaningful only while ``count`` > 0 (readers check; ZooKeeper prints 0).
    The sample is a uniform reservoir of :data:`RESERVOIR_SIZE` values, the distribution of
    ZooKeeper's (Dropwizard's algorithm R), kept with Li's algorithm L: once the reservoir is
    full, samples are only counted until the precomputed index of the next replacement.

    Two ways in: :meth:`add` takes one sample; the request path instead appends to ``pending``
    (a C-level list append, no Python frame) and :meth:`fold` takes the buffered samples in one
    go, once per event-loop turn and before anything reads the summary."""

    __slots__ = ("_next", "_values", "_w", "count", "max", "min", "name", "pending", "total")

    def __init__(self, name: str) -> None:
        self.name = name
        # One list for life: the request path holds its bound ``append``.
        self.pending: list[int] = []
        self.reset()

    def fold(self) -> None:
        """Take the samples buffered in ``pending``, as :meth:`add` would one by one."""
        batch = self.pending
        k = len(batch)
        if not k:
            return
        n0 = self.count
        end = n0 + k
        self.count = end
        self.total += sum(batch)
        lo, hi = min(batch), max(batch)
        if lo < self.min:
            self.min = lo
        if hi > self.max:
            self.max = hi
        values = self._values
        filled = 0
        if n0 < RESERVOIR_SIZE:
            filled = min(RESERVOIR_SIZE - n0, k)
            values.extend(batch if filled == k else batch[:filled])
            if n0 + filled == RESERVOIR_SIZE:
                self._w = _draw_w()
                self._next = RESERVOIR_SIZE + _skip(self._w)
        if n0 + filled >= RESERVOIR_SIZE:
            while self._next <= end:  # bounded: _next grows by at least 1 a pass
                values[random.randrange(RESERVOIR_SIZE)] = batch[self._next - n0 - 1]
                self._w *= _draw_w()
                self._next += _skip(self._w)
        batch.clear()

    def add(self, value: int) -> None:
        if self.pending:
            self.fold()
        n = self.count + 1
        self.count = n
        self.total += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if n <= RESERVOIR_SIZE:
            self._values.append(value)
            if n == RESERVOIR_SIZE:
                self._w = _draw_w()
                self._next = n + _skip(self._w)
        elif n == self._next:
            self._values[random.randrange(RESERVOIR_SIZE)] = value
            self._w *= _draw_w()
            self._next = n + _skip(self._w)

    def reset(self) -> None:
        self.pending.clear()
        self.count = self.total = 0
        self.min = _NO_MIN  # sentinels: the first sample sets both
        self.max = _NO_MAX
        self._values: list[int] = []
        self._w = 1.0
        self._next = 0  # the sample to keep next, once the reservoir is full

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        """Dropwizard UniformSnapshot.getValue over the reservoir (0 without samples)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"{q} is not in [0..1]")
        self.fold()
        values = sorted(self._values)
        n = len(values)
        if n == 0:
            return 0.0
        pos = q * (n + 1)
        index = int(pos)
        if index < 1:
            return float(values[0])
        if index >= n:
            return float(values[-1])
        lower, upper = values[index - 1], values[index]
        return lower + (pos - math.floor(pos)) * (upper - lower)


class SummarySet(dict[str, Summary]):
    """AvgMinMaxCounterSet: one summary per key (a namespace, a follower id)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def add(self, key: str, value: int) -> None:
        summary = self.get(key)
        if summary is None:
            summary = self[key] = Summary(self.name)
        summary.add(value)


# ---------------------------------------------------------------------- the registry


class ServerMetrics:
    """Every ZooKeeper metric of one server; see the module docstring for who reads what."""

    def __init__(self, server: Any = None) -> None:
        self.server = server
        self._summaries: dict[str, Summary] = {name: Summary(name) for name in (*BASIC_SUMMARIES, *SUMMARIES)}
        self.summary_sets: dict[str, SummarySet] = {name: SummarySet(name)
                                                    for name in (*BASIC_SUMMARY_SETS, *SUMMARY_SETS)}
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.counter_sets: dict[str, dict[str, int]] = {name: {} for name in COUNTER_SETS}
        self._gauges: dict[str, Callable[[], int | float | None]] = {}
        # The summaries instrumented by the server and persistence, by attribute.
        self.read_latency = self._summaries["readlatency"]
        self.update_latency = self._summaries["updatelatency"]
        self.fsync_time = self._summaries["fsynctime"]
        self.snapshot_time = self._summaries["snapshottime"]
        self.db_init_time = self._summaries["dbinittime"]
        self.startup_snap_load_time = self._summaries["startup_snap_load_time"]
        self.startup_txns_loaded = self._summaries["startup_txns_loaded"]
        self.startup_txns_load_time = self._summaries["startup_txns_load_time"]
        self.quorum_ack_latency = self._summaries["quorum_ack_latency"]
        self.ack_latency = self.summary_sets["ack_latency"]
        # The request path: one C-level list append per request; fold() does the rest per turn.
        self._read_pending = self.read_latency.pending
        self._update_pending = self.update_latency.pending
        self.record_read_latency = self._read_pending.append
        self.record_update_latency = self._update_pending.append
        self._buffered = (self.read_latency, self.update_latency)

    def fold(self) -> None:
        """Fold everything the request path buffered (before any read of the summaries)."""
        for summary in self._buffered:
            if summary.pending:
                summary.fold()

    def tick(self) -> None:
        """Once per event-loop turn: fold a buffer that has grown to FOLD_AT samples.

        Folding in large batches keeps the per-request cost at one list append; the threshold
        bounds the buffers at FOLD_AT plus one turn's requests."""
        if len(self._read_pending) >= FOLD_AT or len(self._update_pending) >= FOLD_AT:
            self.fold()

    @property
    def summaries(self) -> dict[str, Summary]:
        """Every summary by ZooKeeper name, with buffered samples folded in."""
        self.fold()
        return self._summaries

    # ------------------------------------------------------------------ writing

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` (a ZooKeeper counter name)."""
        self.counts[name] = self.counts.get(name, 0) + n

    def register_gauge(self, name: str, fn: Callable[[], int | float | None]) -> None:
        """ZooKeeper's registerGauge: ``fn`` is called whenever the gauge is read."""
        self._gauges[name] = fn

    def unregister_gauge(self, name: str) -> None:
        self._gauges.pop(name, None)

    def reset(self) -> None:
        """srst: every counter and summary back to zero (DefaultMetricsProvider.resetAllValues)."""
        for name in self.counts:
            self.counts[name] = 0
        for summary in self._summaries.values():
            summary.reset()
        for summary_set in self.summary_sets.values():
            summary_set.clear()
        for counter_set in self.counter_sets.values():
            counter_set.clear()

    # ------------------------------------------------------------------ reading (mntr's interface)

    @property
    def gauges(self) -> dict[str, int | float | None]:
        """The registered gauges; mntr computes the standard ones from the same server state."""
        return {name: _call_gauge(name, fn) for name, fn in list(self._gauges.items())}

    @property
    def counters(self) -> dict[str, int]:
        out = dict(self.counts)
        server = self.server
        if server is not None:
            out["connection_rejected"] = int(getattr(getattr(server, "stats", None), "connections_rejected", 0))
            # A failed log write stops the server from committing: ZooKeeper's unrecoverable error.
            pipeline = getattr(server, "pipeline", None)
            out["unrecoverable_error_count"] = 1 if getattr(pipeline, "failed", None) is not None else 0
        return out

    def gauge_values(self) -> dict[str, int | float | None]:
        """Every gauge - standard, an ensemble member's, registered - in ZooKeeper's order (the
        hash order of its gauge map; None: no value here, which ZooKeeper's dump skips)."""
        from zkpy.server.fourlw import java_hash_order, java_string_hash

        values: dict[str, int | float | None] = {}
        if self.server is not None:
            values.update(standard_gauges(self.server))
        values.update(self.gauges)  # an ensemble member registers its own (quorum_server.py)
        # Registration order breaks ties within a hash bucket, as in ZooKeeper's map.
        names = [*GAUGES, *QUORUM_GAUGES, *(g for g in values if g not in _KNOWN_GAUGES)]
        return {name: values[name] for name in java_hash_order(names, java_string_hash, concurrent=True)
                if name in values}

    def quota_gauges(self) -> dict[str, list[tuple[str, int]]]:
        """The quota gauge sets per top-level namespace (QuotaMetricsUtils)."""
        if self.server is None:
            return {}
        from zkpy.server.fourlw import _quota_gauges  # the one parser of /zookeeper/quota

        try:
            return _quota_gauges(self.server)
        except Exception:  # a gauge must never break a scrape
            log.exception("quota gauges")
            return {}

    def monitor_values(self) -> list[tuple[str, object]]:
        """What ZooKeeper's AdminServer ``monitor`` (and mntr) report, as typed (key, value) pairs."""
        from zkpy.server.fourlw import java_hash_order, java_string_hash, zkpy_version

        server = self.server
        out: list[tuple[str, object]] = [("version", zkpy_version()), ("server_state", server_state(server))]
        detailed = peer_state(server)
        if detailed is not None:
            out.append(("peer_state", detailed))  # QuorumZooKeeperServer.dumpMonitorValues
        if is_prometheus(getattr(server, "config", None)):
            # PrometheusMetricsProvider.dump: every sample, keyed as in the exposition.
            out.extend(PrometheusCollector(self).dump())
            return out
        out.extend((name, value) for name, value in self.gauge_values().items() if value is not None)
        quota = self.quota_gauges()
        for name in java_hash_order(QUOTA_GAUGE_SETS, java_string_hash, concurrent=True):
            out.extend((f"{ns}_{name}", value) for ns, value in quota.get(name, []))
        counters = self.counters
        out.extend((name, counters.get(name, 0)) for name in COUNTERS)
        for name in COUNTER_SETS:
            members = self.counter_sets.get(name, {})
            for key in java_hash_order(sorted(members), java_string_hash, concurrent=True):
                out.append((f"{key}_{name}", members[key]))
        summaries = self.summaries
        for name in BASIC_SUMMARIES:
            out.extend(_summary_values(name, summaries[name], percentiles=False))
        for name in SUMMARIES:
            out.extend(_summary_values(name, summaries[name], percentiles=True))
        for names, percentiles in ((BASIC_SUMMARY_SETS, False), (SUMMARY_SETS, True)):
            for name in names:
                members = self.summary_sets[name]
                for key in java_hash_order(sorted(members), java_string_hash, concurrent=True):
                    out.extend(_summary_values(f"{key}_{name}", members[key], percentiles))
        return out


def _call_gauge(name: str, fn: Callable[[], int | float | None]) -> int | float | None:
    try:
        return fn()
    except Exception:  # a broken gauge reads as absent, as ZooKeeper skips a null gauge
        log.exception("gauge %s", name)
        return None


def _summary_values(name: str, s: Summary, percentiles: bool) -> list[tuple[str, object]]:
    """AvgMinMaxCounter.values (+ AvgMinMaxPercentileCounter's p50..p999)."""
    from zkpy.server.fourlw import java_avg

    count = s.count
    out: list[tuple[str, object]] = [
        (f"avg_{name}", java_avg(s.total, count)),
        (f"min_{name}", s.min if count else 0),
        (f"max_{name}", s.max if count else 0),
        (f"cnt_{name}", count),
        (f"sum_{name}", s.total),
    ]
    if percentiles:
        out.extend((f"{label}_{name}", math.floor(s.percentile(q) + 0.5) if count else 0)
                   for label, q in _MNTR_PERCENTILES)
    return out


# ---------------------------------------------------------------------- gauges over server state

# The gauges an ensemble member registers (QuorumZooKeeperServer, then LeaderZooKeeperServer),
# in ZooKeeper's registration order, which decides their order within a hash bucket.
QUORUM_GAUGES: tuple[str, ...] = ("quorum_size", "learners", "synced_followers", "synced_non_voting_followers",
                                  "synced_observers", "pending_syncs", "leader_uptime", "last_proposal_size",
                                  "max_proposal_size", "min_proposal_size")
_KNOWN_GAUGES = frozenset(GAUGES) | frozenset(QUORUM_GAUGES)


def _quorum_stats(server: Any) -> dict[str, Any] | None:
    """The consensus core's figures when ``server`` is an ensemble member, else None."""
    stats = getattr(server, "quorum_stats", None)
    if not callable(stats) or getattr(getattr(server, "config", None), "is_quorum", False) is not True:
        return None
    try:
        return dict(stats() or {})
    except Exception:  # a member between states must not break a scrape
        log.exception("quorum stats")
        return None


def peer_state(server: Any) -> str | None:
    """QuorumPeer.getDetailedPeerState: ``following - broadcast``; None on a standalone server."""
    stats = _quorum_stats(server)
    if stats is None:
        return None
    role, phase = str(stats.get("role", "looking")), str(stats.get("phase", "election"))
    return role if phase == "election" else f"{role} - {phase}"



def server_state(server: Any) -> str:
    state = getattr(server, "server_state", None)
    return str(state) if state else "standalone"


def is_prometheus(config: Any) -> bool:
    return getattr(config, "metrics_provider_class", None) == PROMETHEUS_PROVIDER


def packets(server: Any) -> tuple[int, int]:
    """(received, sent) as ZooKeeper's ServerStats counts them: client packets and 4lw commands."""
    stats = server.stats
    words = getattr(server, "four_letter_words", None)
    return (int(stats.packets_received) + int(getattr(words, "packets_received", 0)),
            int(stats.packets_sent) + int(getattr(words, "packets_sent", 0)))


def latency(server: Any) -> tuple[int, float, int]:
    """ServerStats' (min, avg, max) request latency in ms."""
    from zkpy.server.fourlw import java_avg

    stats = server.stats
    count = int(getattr(stats, "latency_count", 0))
    if not count:
        return 0, 0.0, int(getattr(stats, "max_latency_ms", 0))
    return (int(stats.min_latency_ms), java_avg(int(stats.total_latency_ms), count), int(stats.max_latency_ms))


def uptime_ms(server: Any) -> int:
    return int((time.time() - float(getattr(server, "started_at", time.time()))) * 1000)


def file_descriptors() -> tuple[int | None, int | None]:
    """UnixOperatingSystemMXBean's (open, max) file descriptor counts; None off Linux/BSD."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None, None
    for fd_dir in ("/proc/self/fd", "/dev/fd"):
        try:
            open_fds = len(os.listdir(fd_dir))
            break
        except OSError:
            continue
    else:
        return None, None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return open_fds, (soft if soft != resource.RLIM_INFINITY else _U64 >> 1)


def standard_gauges(server: Any) -> dict[str, int | float | None]:
    """ZooKeeperServer.registerMetrics' gauges, from the server's state."""
    tree = server.db.tree
    lo, avg, hi = latency(server)
    received, sent = packets(server)
    open_fds, max_fds = file_descriptors()
    values: dict[str, int | float | None] = {
        "ephemerals_count": sum(len(paths) for paths in tree.ephemerals.values()),
        "num_alive_connections": len(server.connections),
        "avg_latency": avg,
        "outstanding_requests": int(server.outstanding_requests()),
        # ZooKeeper's node map holds the root twice ("" and "/"): getNodeCount is one more.
        "znode_count": int(tree.node_count) + 1,
        "global_sessions": len(server.sessions.sessions),
        "non_mtls_remote_conn_count": 0,
        "last_client_response_size": -1,  # BufferStats' "no sample": zkpy does not track sizes yet
        "packets_sent": sent,
        "packets_received": received,
        "max_client_response_size": -1,
        "connection_drop_probability": 0.0,
        "watch_count": int(server.watches.count()),
        "auth_failed_count": int(getattr(server.stats, "auth_failed", 0)),
        "min_latency": lo,
        "max_file_descriptor_count": max_fds,
        "approximate_data_size": int(tree.approximate_data_size),
        "open_file_descriptor_count": open_fds,
        "local_sessions": 0,  # every session is global, as in a standalone ZooKeeper
        "uptime": uptime_ms(server),
        "max_latency": hi,
        "outstanding_tls_handshake": 0,
        "min_client_response_size": -1,
        "non_mtls_local_conn_count": 0,
    }
    return values


# ---------------------------------------------------------------------- Prometheus


class PrometheusCollector:
    """A prometheus_client collector over a :class:`ServerMetrics`, shaped as ZooKeeper exports.

    Built per scrape from the live registry (gauges are callbacks in ZooKeeper too)."""

    def __init__(self, metrics: ServerMetrics, export_process_info: bool | None = None) -> None:
        self.metrics = metrics
        if export_process_info is None:
            cfg = getattr(metrics.server, "config", None)
            export_process_info = bool(getattr(cfg, "metrics_export_jvm_info", True))
        self.export_process_info = export_process_info

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily, Metric

        m = self.metrics
        for name, value in m.gauge_values().items():
            yield GaugeMetricFamily(name, name, value=_as_float(value))
        quota = m.quota_gauges()
        for name in QUOTA_GAUGE_SETS:
            family = GaugeMetricFamily(name, name, labels=["key"])
            for key, value in quota.get(name, []):
                family.add_metric([key], float(value))
            yield family
        for name, value in m.counters.items():
            counter = Metric(name, name, "counter")
            counter.add_sample(name, {}, float(value))
            yield counter
        for name, members in m.counter_sets.items():
            counter = Metric(name, name, "counter")
            for key, value in sorted(members.items()):
                counter.add_sample(name, {"key": key}, float(value))
            yield counter
        summaries = m.summaries
        for names, quantiles in ((BASIC_SUMMARIES, _PROMETHEUS_QUANTILES_BASIC),
                                 (SUMMARIES, _PROMETHEUS_QUANTILES_ADVANCED)):
            for name in names:
                summary = Metric(name, name, "summary")
                _add_summary_samples(summary, name, summaries[name], quantiles, {})
                yield summary
        for names, quantiles in ((BASIC_SUMMARY_SETS, _PROMETHEUS_QUANTILES_BASIC),
                                 (SUMMARY_SETS, _PROMETHEUS_QUANTILES_ADVANCED)):
            for name in names:
                summary = Metric(name, name, "summary")
                for key, member in sorted(m.summary_sets[name].items()):
                    _add_summary_samples(summary, name, member, quantiles, {"key": key})
                yield summary
        if self.export_process_info:
            yield from _process_collectors()

    def legacy_counter_names(self) -> set[str]:
        """Counter families that simpleclient 0.9.0 exposes without a ``_total`` suffix."""
        return set(self.metrics.counters) | set(self.metrics.counter_sets)

    def dump(self) -> list[tuple[str, object]]:
        """PrometheusMetricsProvider.dump: ``name{label="v",...}`` -> value for every sample."""
        out: list[tuple[str, object]] = []
        for family in self.collect():
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
                out.append((f"{sample.name}{{{labels}}}" if labels else sample.name, float(sample.value)))
        return out

    def render(self, names: Iterable[str] | None = None) -> bytes:
        """The text exposition, as ZooKeeper's /metrics serves it (optionally only ``names``)."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Only(self, set(names)) if names else self)
        text = generate_latest(registry).decode("utf-8")
        return _legacy_counters(text, self.legacy_counter_names()).encode("utf-8")


class _Only:
    """The families a ``name[]`` query asks for (by family or sample name, as MetricsServlet)."""

    def __init__(self, inner: PrometheusCollector, names: set[str]) -> None:
        self.inner = inner
        self.names = names

    def collect(self) -> Iterator[Any]:
        for family in self.inner.collect():
            if family.name in self.names or any(s.name in self.names for s in family.samples):
                yield family


def _as_float(value: int | float | None) -> float:
    # PrometheusGaugeWrapper.sample: a null gauge reads as 0.
    return float(value) if value is not None else 0.0


def _add_summary_samples(family: Any, name: str, s: Summary, quantiles: tuple[tuple[str, float], ...],
                         labels: dict[str, str]) -> None:
    for label, q in quantiles:
        value = s.percentile(q) if s.count else math.nan
        family.add_sample(name, {**labels, "quantile": label}, float(value))
    family.add_sample(f"{name}_count", dict(labels), float(s.count))
    family.add_sample(f"{name}_sum", dict(labels), float(s.total))


_process_registry: list[Any] = []


def _process_collectors() -> Iterator[Any]:
    """DefaultExports' process metrics (and Python's stand-ins for the JVM ones)."""
    if not _process_registry:
        from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

        registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        _process_registry.append(registry)
    yield from _process_registry[0].collect()


def _legacy_counters(text: str, names: set[str]) -> str:
    """prometheus_client names a counter family ``x_total`` in its HELP/TYPE lines; simpleclient
    0.9.0 (ZooKeeper 3.8's) keeps ``x``.  Put ZooKeeper's names back on those two lines."""
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith(("# HELP ", "# TYPE ")):
            head, name, rest = line[:7], *line[7:].split(" ", 1)
            if name.endswith("_total") and name[:-6] in names:
                line = f"{head}{name[:-6]} {rest}"
        out.append(line)
    return "".join(out)


# ---------------------------------------------------------------------- the /metrics endpoint


class MetricsHttpServer:
    """The PrometheusMetricsProvider's HTTP endpoint: GET /metrics on httpHost:httpPort."""

    def __init__(self, metrics: ServerMetrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_route("GET", "/metrics", self._handle)
        # No access log: a scrape every few seconds is not news, and logging is not free.
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("Prometheus /metrics endpoint on %s:%d", self.host, self.port)

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        names = request.query.getall("name[]", []) or None
        body = PrometheusCollector(self.metrics).render(names)
        return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            with contextlib.suppress(Exception):
                await runner.cleanup()


class MetricsProviderError(RuntimeError):
    """The metrics provider could not start ("Cannot boot MetricsProvider" in ZooKeeper)."""


async def start_metrics_http(config: Any, metrics: ServerMetrics) -> MetricsHttpServer | None:
    """Start /metrics when zoo.cfg names the Prometheus provider; None otherwise."""
    if not is_prometheus(config):
        return None
    host = getattr(config, "metrics_http_host", "0.0.0.0") or "0.0.0.0"
    port = int(getattr(config, "metrics_http_port", 7000))
    server = MetricsHttpServer(metrics, host, port)
    try:
        await server.start()
    except OSError as e:
        raise MetricsProviderError(f"Cannot boot MetricsProvider {PROMETHEUS_PROVIDER}: "
                                   f"cannot listen on {host}:{port}: {e}") from e
    return server


__all__ = [
    "BASIC_SUMMARIES",
    "BASIC_SUMMARY_SETS",
    "COUNTERS",
    "COUNTER_SETS",
    "GAUGES",
    "PROMETHEUS_CONTENT_TYPE",
    "PROMETHEUS_PROVIDER",
    "QUORUM_GAUGES",
    "QUOTA_GAUGE_SETS",
    "SUMMARIES",
    "SUMMARY_SETS",
    "MetricsHttpServer",
    "MetricsProviderError",
    "PrometheusCollector",
    "ServerMetrics",
    "Summary",
    "SummarySet",
    "start_metrics_http",
]
