"""Four-letter words: ZooKeeper 3.8's administrative commands on the client port.

A connection whose first four bytes spell a known command (``ruok``, ``srvr``, ``mntr``, ...)
gets the command's text and is closed.  Names, whitelist rules and output formats are those of
Apache ZooKeeper 3.8.0 (``server/command/*``, ``ServerStats``, ``ServerCnxn.dumpConnectionInfo``,
``DataTree``/``WatchManager`` dumps, the default metrics provider), compared line by line against
a running 3.8.0 in ``tests/test_fourlw.py``.

Whitelist (``4lw.commands.whitelist``, resolved by the config into ``four_letter_words``): only
``srvr`` by default, ``*`` for all; ``srvr`` is always allowed.  A known command that is not
allowed answers ``<cmd> is not executed because it is not in the whitelist.``.  The telnet
close sequence (0xfff4fffd) is a known "command" named ``telnet close`` as in Apache: allowed it
prints nothing, refused it prints the whitelist sentence.

Where zkpy cannot say what Java says, the line keeps its shape and gets an honest value:

* version (``srvr``, ``mntr``, ``envi``): ``3.8.0-zkpy-<version>, built on <date> UTC`` - the
  protocol level first, so parsers that read ``x.y.z`` (kazoo's ``server_version``) see 3.8.0.
* ``envi``: the same keys, with the Python runtime's equivalents: ``java.version`` is the Python
  version, ``java.vendor`` the implementation, ``java.home`` ``sys.prefix``, ``java.class.path``
  ``sys.path``, ``java.library.path`` ``LD_LIBRARY_PATH`` (or libpython's directory),
  ``os.memory.total`` the resident set size, ``os.memory.max`` the memory the process may use
  (physical memory, capped by RLIMIT_AS), ``os.memory.free`` what of that is still available.
* ``dirs`` and ``conf``'s ``dataDirSize``/``dataLogSize``: each is the size of its own
  directory.  Apache 3.8 swaps the two (it measures the log directory for the data directory);
  with the usual single directory both print the same.
* ``Node count``/``zk_znode_count``: Apache's node map holds the root twice ("" and "/"), so it
  counts one more than there are znodes; we print the same number.
* ``stmk`` sets the trace mask from the 8 bytes after the command when the server hands them to
  :meth:`FourLetterWords.run`; without them it answers the current mask.  The mask only feeds
  ``gtmk`` (zkpy has no ZooTrace logging).
* ``hash`` lists the tree digests Apache logs every 128 zxids; zkpy keeps no digest log yet, so it
  prints nothing, as Apache does with ``zookeeper.digest.enabled=false``.
* Orders Java leaves to ``HashMap`` iteration (watched paths, ephemeral paths, quota namespaces)
  follow Java's bucket order for the same contents, so small dumps match Apache line for line.
  Orders that depend on Java object identity (connections, watchers) are by session id.

``mntr`` prints ``zk_version`` and ``zk_server_state``, then every metric ZooKeeper 3.8's default
metrics provider prints, in its order (gauges, quota gauge sets, counters, summaries with
avg/min/max/cnt/sum, summaries with p50/p95/p99/p999).  Values come from the server's state; a
server that exposes ``metrics`` (see :class:`MetricsSource`) fills gauges, counters and
summaries by their ZooKeeper names.  Without that, these keys have no source in zkpy yet and
print 0 (``-1`` for the response sizes, BufferStats' "no sample"):

* gauges ``last_client_response_size``, ``max_client_response_size``, ``min_client_response_size``;
* counters ``watch_bytes``, ``outstanding_changes_queued``, ``outstanding_changes_removed``,
  ``sessionless_connections_expired``, ``stale_sessions_expired``, ``bytes_received_count``,
  ``prep_processor_request_queued``, ``sync_processor_request_queued``,
  ``connection_request_count``, ``response_bytes``;
* summaries ``fsynctime``, ``snapshottime``, ``dbinittime``, ``startup_snap_load_time``,
  ``startup_txns_loaded``, ``startup_txns_load_time``, ``readlatency``, ``updatelatency``,
  ``propagation_latency``, ``prep_process_time``, ``prep_processor_queue_size``,
  ``prep_processor_queue_time_ms``, ``proposal_process_time``, ``close_session_prep_time``,
  ``sync_process_time``, ``sync_processor_batch_size``, ``sync_processor_queue_size``,
  ``sync_processor_queue_time_ms``, ``sync_processor_queue_flush_time_ms``,
  ``sync_processor_queue_and_flush_time_ms``, ``request_throttle_queue_time_ms``,
  ``connection_token_deficit``, ``socket_closing_time``, ``node_created_watch_count``,
  ``node_deleted_watch_count``, ``node_changed_watch_count``, ``node_children_watch_count``;
* the per-namespace sets ``<ns>_read_per_namespace``/``<ns>_write_per_namespace`` and
  ``<ns>_quota_exceeded_error_per_namespace`` (omitted, as on a server that saw no traffic).

Every other metric is 0 because zkpy, like a standalone ZooKeeper, has no such thing: quorum
(proposals, learners, elections, sync, ensemble auth), the commit processor, request
throttling, the response cache, the dead-watcher queue, TLS, netty, the admin server, JVM pauses,
connection dropping and digests.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import platform
import socket
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from importlib import metadata
from ipaddress import IPv6Address, ip_address
from pathlib import Path
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

ZK_NOT_SERVING = "This ZooKeeper instance is not currently serving requests"
PROTOCOL_VERSION = "3.8.0"  # the Apache release whose behaviour zkpy reproduces
TELNET_CLOSE = "telnet close"
# ZooTrace's default mask: client requests | server packets | sessions | warnings.
DEFAULT_TRACE_MASK = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 8)
# NIOServerCnxnFactory's cnxnExpiryQueue interval (zookeeper.nio.sessionlessCnxnTimeout).
SESSIONLESS_TIMEOUT_MS = 10_000
# BufferedWriter in front of SendBufferWriter: Apache sends a 4lw answer in 8 KiB packets.
_SEND_CHUNK_CHARS = 8192
_U64 = (1 << 64) - 1
T = TypeVar("T")


def _code(word: bytes) -> int:
    return int.from_bytes(word, "big", signed=True)


_WORDS = ("conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr",
          "stat", "wchc", "wchp", "wchs", "mntr", "isro", "hash")
COMMANDS: dict[int, str] = {_code(w.encode()): w for w in _WORDS}
COMMANDS[_code(b"\xff\xf4\xff\xfd")] = TELNET_CLOSE
ALL_COMMANDS = frozenset(COMMANDS.values())

# mntr keys after version/state, in the order ZooKeeper 3.8.0's DefaultMetricsProvider iterates
# its ConcurrentHashMaps (taken from a running 3.8.0; registration order decides bucket order).
_GAUGES = tuple("""
ephemerals_count num_alive_connections avg_latency outstanding_requests znode_count global_sessions
non_mtls_remote_conn_count last_client_response_size packets_sent packets_received
max_client_response_size connection_drop_probability watch_count auth_failed_count min_latency
max_file_descriptor_count approximate_data_size open_file_descriptor_count local_sessions uptime
max_latency outstanding_tls_handshake min_client_response_size non_mtls_local_conn_count
""".split())
_QUOTA_GAUGE_SETS = ("quota_bytes_limit_per_namespace", "quota_count_usage_per_namespace",
                     "quota_count_limit_per_namespace", "quota_bytes_usage_per_namespace")
_COUNTERS = tuple("""
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
_COUNTER_SETS = ("quota_exceeded_error_per_namespace",)
_BASIC_SUMMARIES = tuple("""
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
_SUMMARIES = tuple("""
prep_processor_queue_time_ms jvm_pause_time_ms close_session_prep_time read_commitproc_time_ms
updatelatency local_write_committed_time_ms request_throttle_queue_time_ms readlatency
quorum_ack_latency om_commit_process_time_ms read_final_proc_time_ms commit_propagation_latency
dead_watchers_cleaner_latency write_final_proc_time_ms proposal_ack_creation_latency
proposal_latency om_proposal_process_time_ms sync_processor_queue_and_flush_time_ms
propagation_latency server_write_committed_time_ms sync_processor_queue_time_ms
sync_processor_queue_flush_time_ms write_commitproc_time_ms
""".split())
_BASIC_SUMMARY_SETS = ("write_per_namespace", "read_per_namespace", "learner_handler_qp_size")
_SUMMARY_SETS = ("learner_handler_qp_time_ms", "ack_latency")

QUOTA_ROOT = "/zookeeper/quota"
_LIMIT_NODE = "zookeeper_limits"
_STAT_NODE = "zookeeper_stats"


class SummaryLike(Protocol):
    """A distribution as ZooKeeper's AvgMinMax(Percentile)Counter keeps it."""

    count: int
    total: int
    min: int
    max: int


class MetricsSource(Protocol):
    """What ``server.metrics`` may offer, by ZooKeeper metric name (all optional).

    ``gauges`` override the values computed here (e.g. ``last_client_response_size``); a summary
    may also offer ``percentile(q)`` for the p50..p999 lines."""

    gauges: Mapping[str, int | float]
    counters: Mapping[str, int]
    summaries: Mapping[str, SummaryLike]
    summary_sets: Mapping[str, Mapping[str, SummaryLike]]
    counter_sets: Mapping[str, Mapping[str, int]]

    def reset(self) -> None: ...


# ---------------------------------------------------------------------- Java look-alikes


def java_double(x: float) -> str:
    """``Double.toString``: shortest round-trip digits, ``E`` notation outside [1e-3, 1e7)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        s = repr(x)
        return s if "." in s or "e" in s else s + ".0"
    sign, digits, exp = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits))
    e10 = exp + len(text) - 1
    mantissa = text[0] + "." + (text[1:] or "0")
    return ("-" if sign else "") + f"{mantissa}E{e10}"


def java_avg(total: int, count: int) -> float:
    """AvgMinMaxCounter.getAvg: the mean rounded half-up to 4 decimals, 0 without samples."""
    if count <= 0:
        return 0.0
    return float(Decimal(total / count).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def java_string_hash(s: str) -> int:
    h = 0
    units = s.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return h


def java_long_hash(v: int) -> int:
    v &= _U64
    return (v ^ (v >> 32)) & 0xFFFFFFFF


def java_hash_order(keys: Iterable[T], hash_of: Callable[[T], int], initial_capacity: int = 16,
                       concurrent: bool = False) -> list[T]:
    """Keys in the order a Java ``HashMap`` (or ``ConcurrentHashMap``) of them iterates.

    Buckets come in index order; within a bucket Java keeps insertion order, which we do not
    know, so ties keep the order given (callers pass keys sorted)."""
    keys = list(keys)
    cap = 1
    while cap < initial_capacity:
        cap <<= 1
    n = len(keys)
    # HashMap grows once size exceeds 3/4 of the table, ConcurrentHashMap once it reaches it.
    while (n >= cap - (cap >> 2)) if concurrent else (n > cap * 3 // 4):
        cap <<= 1

    def bucket(k: T) -> int:
        h = hash_of(k)
        return (h ^ (h >> 16)) & (cap - 1)

    return sorted(keys, key=bucket)


def java_address(remote: tuple[Any, ...] | None) -> str:
    """InetSocketAddress.toString of a resolved peer: ``/ip:port`` (IPv6 unabridged, bracketed)."""
    if not remote or not remote[0]:
        return "null"
    host, port = remote[0], remote[1]
    try:
        addr = ip_address(host.split("%", 1)[0])
    except ValueError:
        return f"{host}/<unresolved>:{port}"
    if isinstance(addr, IPv6Address):
        if addr.ipv4_mapped is not None:
            return f"/{addr.ipv4_mapped}:{port}"
        text = ":".join(format(int(group, 16), "x") for group in addr.exploded.split(":"))
        scope = "%" + host.split("%", 1)[1] if "%" in host else ""
        return f"/[{text}{scope}]:{port}"
    return f"/{addr}:{port}"


def java_date(epoch_ms: int) -> str:
    """``java.util.Date.toString`` in the local time zone."""
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(epoch_ms / 1000))


def _hex(v: int) -> str:
    """Long.toHexString: two's complement for negatives."""
    return format(v & _U64, "x")


# ---------------------------------------------------------------------- version, whitelist


def zkpy_version() -> str:
    """What ZooKeeper's Version.getFullVersion says, for zkpy: ``3.8.0-zkpy-X.Y.Z, built on ...``."""
    try:
        release = metadata.version("zkpy")
    except metadata.PackageNotFoundError:
        release = "unknown"
    try:
        built = os.stat(Path(__file__).resolve().parent.parent / "__init__.py").st_mtime
    except OSError:
        built = time.time()
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(built))
    return f"{PROTOCOL_VERSION}-zkpy-{release}, built on {when} UTC"


def enabled_commands(config: Any) -> frozenset[str]:
    """FourLetterCommands.isEnabled's set: the configured words (``*`` = all) plus ``srvr``."""
    words = getattr(config, "four_letter_words", None)
    if words is None:
        words = frozenset()
    elif isinstance(words, str):
        words = frozenset(w.strip() for w in words.split(","))
    out = set()
    for word in words:
        if word == "*":
            out |= ALL_COMMANDS
        elif word:
            out.add(word)
    if getattr(config, "read_only_mode_enabled", False):
        out.add("isro")
    out.add("srvr")  # zkServer.sh status needs it, so ZooKeeper never refuses it
    return frozenset(out)


# ---------------------------------------------------------------------- the commands


class FourLetterWords:
    """The four-letter words of one server: whitelist, trace mask and their own packet counts.

    Apache counts a command as a packet received and each 8 KiB of its answer as a packet sent
    in the server's Received/Sent; the server's counters do not see 4lw traffic, so we keep
    those two numbers here and add them when printing."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.enabled = enabled_commands(config)
        self.trace_mask = DEFAULT_TRACE_MASK
        self.packets_received = 0
        self.packets_sent = 0
        self.version = zkpy_version()
        self._handlers: dict[str, Callable[[Any, Any], str]] = {
            "ruok": lambda s, c: "imok",
            "srvr": lambda s, c: self._stat(s, c, clients=False),
            "stat": lambda s, c: self._stat(s, c, clients=True),
            "mntr": self._mntr,
            "conf": self._conf,
            "cons": self._cons,
            "crst": self._crst,
            "srst": self._srst,
            "envi": lambda s, c: self._envi(),
            "dump": self._dump,
            "wchs": self._wchs,
            "wchc": lambda s, c: self._wch(s, by_path=False),
            "wchp": lambda s, c: self._wch(s, by_path=True),
            "dirs": self._dirs,
            "isro": self._isro,
            "gtmk": lambda s, c: str(self.trace_mask),
            "hash": self._hash,
            TELNET_CLOSE: lambda s, c: "",
        }

    def command_for(self, length: int) -> str | None:
        """The command spelled by a connection's first four bytes (as a signed int), if any."""
        return COMMANDS.get(length)

    def is_enabled(self, cmd: str) -> bool:
        return cmd in self.enabled

    def run(self, server: Any, cmd: str, conn: Any = None, payload: bytes = b"") -> str:
        """The whole answer to ``cmd``; ``conn`` is the asking connection, ``payload`` what
        followed the four bytes (``stmk``'s mask)."""
        self.packets_received += 1
        if cmd not in self.enabled:
            text = f"{cmd} is not executed because it is not in the whitelist.\n"
        elif cmd == "stmk":
            if len(payload) >= 8:
                self.trace_mask = int.from_bytes(payload[:8], "big", signed=True)
            text = str(self.trace_mask)
        else:
            handler = self._handlers.get(cmd)
            try:
                text = handler(server, conn) if handler is not None else ""
            except Exception:
                # As AbstractFourLetterCommand: log it, and the connection just closes.
                log.exception("Error in running command %s", cmd)
                text = ""
        self.packets_sent += -(-len(text) // _SEND_CHUNK_CHARS)
        return text

    # ------------------------------------------------------------------ srvr / stat / cons

    def _stat(self, server: Any, conn: Any, clients: bool) -> str:
        if not _running(server):
            return ZK_NOT_SERVING + "\n"
        out = [f"Zookeeper version: {self.version}\n"]
        if getattr(server, "read_only", False):
            out.append("READ-ONLY mode; serving only read-only clients\n")
        if clients:
            out.append("Clients:\n")
            for c in _connections(server):
                out.append(self._connection_info(c, conn, brief=True) + "\n")
            out.append("\n")
        stats = server.stats
        lo, avg, hi = _latency(stats)
        out.append(f"Latency min/avg/max: {lo}/{java_double(avg)}/{hi}\n")
        out.append(f"Received: {self._received(server)}\n")
        out.append(f"Sent: {self._sent(server)}\n")
        out.append(f"Connections: {len(server.connections)}\n")
        out.append(f"Outstanding: {server.outstanding_requests()}\n")
        out.append(f"Zxid: 0x{_hex(server.last_zxid)}\n")
        out.append(f"Mode: {_server_state(server)}\n")
        out.append(f"Node count: {_node_count(server)}\n")
        return "".join(out)

    def _received(self, server: Any) -> int:
        return int(server.stats.packets_received) + self.packets_received

    def _sent(self, server: Any) -> int:
        return int(server.stats.packets_sent) + self.packets_sent

    def _cons(self, server: Any, conn: Any) -> str:
        if not _running(server):
            return ZK_NOT_SERVING + "\n"
        lines = [self._connection_info(c, conn, brief=False) + "\n" for c in _connections(server)]
        return "".join(lines) + "\n"

    def _connection_info(self, c: Any, asking: Any, brief: bool) -> str:
        """ServerCnxn.dumpConnectionInfo."""
        this = c is asking
        # The asking connection has left the selector (interest 0) and sent its 4 bytes.
        interest = 0 if this or getattr(c, "closed", False) else (
            (0 if getattr(c, "paused_reading", False) else 1) | (4 if getattr(c, "out", None) else 0))
        received = int(getattr(c, "packets_received", 0)) + (1 if this else 0)
        parts = [f" {java_address(getattr(c, 'remote', None))}[{interest:x}]",
                 f"(queued={len(getattr(c, 'queue', ()))},recved={received},"
                 f"sent={int(getattr(c, 'packets_sent', 0))}"]
        sid = int(getattr(c, "session_id", 0) or 0)
        if not brief and sid:
            count = int(getattr(c, "latency_count", 0))
            total = int(getattr(c, "total_latency_ms", 0))
            parts.append(f",sid=0x{_hex(sid)},lop={getattr(c, 'last_op', 'NA')}"
                         f",est={int(getattr(c, 'established_at', 0) * 1000)}"
                         f",to={int(getattr(c, 'session_timeout_ms', 0))}")
            last_cxid = int(getattr(c, "last_cxid", -1))
            if last_cxid >= 0:
                parts.append(f",lcxid=0x{_hex(last_cxid)}")
            parts.append(f",lzxid=0x{_hex(int(getattr(c, 'last_zxid', -1)))}"
                         f",lresp={_elapsed_ms(getattr(c, 'last_response_time', 0.0))}"
                         f",llat={int(getattr(c, 'last_latency_ms', 0))}"
                         f",minlat={int(getattr(c, 'min_latency_ms', 0)) if count else 0}"
                         f",avglat={total // count if count else 0}"
                         f",maxlat={int(getattr(c, 'max_latency_ms', 0))}")
        parts.append(")")
        return "".join(parts)

    # ------------------------------------------------------------------ resets

    def _crst(self, server: Any, conn: Any) -> str:
        if not _running(server):
            return ZK_NOT_SERVING + "\n"
        for c in list(server.connections):
            reset = getattr(c, "reset_stats", None)
            if reset is not None:
                reset()
        return "Connection stats reset.\n"

    def _srst(self, server: Any, conn: Any) -> str:
        """ServerStats.reset: latency, packet counts, response sizes and every metric - but not
        the auth failure count, which only a restart clears."""
        if not _running(server):
            return ZK_NOT_SERVING + "\n"
        stats = server.stats
        stats.reset_latency()
        stats.packets_received = 0
        stats.packets_sent = 0
        self.packets_received = 0
        self.packets_sent = 0
        metrics = getattr(server, "metrics", None)
        reset = getattr(metrics, "reset", None)
        if reset is not None:
            reset()
        return "Server stats reset.\n"

    # ------------------------------------------------------------------ mntr

    def _mntr(self, server: Any, conn: Any) -> str:
        if not _running(server):
            return ZK_NOT_SERVING + "\n"
        out: list[str] = []

        def put(key: str, value: object) -> None:
            if isinstance(value, bool):
                value = int(value)
            if isinstance(value, float):
                text = java_double(value)
            else:
                text = str(value)
            out.append(f"zk_{key}\t{text}\n")

        put("version", self.version)
        put("server_state", _server_state(server))
        metrics = getattr(server, "metrics", None)
        gauges = {**self._gauges(server), **_mapping(metrics, "gauges")}
        # A quorum member registers more gauges (learners, synced_followers, quorum_size...):
        # they all print in the order of ZooKeeper's registry, a ConcurrentHashMap.
        extra = [name for name in gauges if name not in _GAUGE_SET]
        names = java_hash_order([*_GAUGES, *extra], java_string_hash, concurrent=True) if extra else _GAUGES
        for name in names:
            value = gauges.get(name)
            if value is not None:  # Apache skips gauges without a value (no fd counts off Unix)
                put(name, value)
        quota = _quota_gauges(server)
        for name in java_hash_order(_QUOTA_GAUGE_SETS, java_string_hash, concurrent=True):
            for namespace, value in quota.get(name, []):
                put(f"{namespace}_{name}", value)
        counters = _mapping(metrics, "counters")
        builtin = _builtin_counters(server)
        for name in _COUNTERS:
            put(name, int(counters.get(name, builtin.get(name, 0))))
        counter_sets = _mapping(metrics, "counter_sets")
        for name in _COUNTER_SETS:
            for key in java_hash_order(sorted(counter_sets.get(name, {})), java_string_hash, concurrent=True):
                put(f"{key}_{name}", int(counter_sets[name][key]))
        summaries = _mapping(metrics, "summaries")
        for name in _BASIC_SUMMARIES:
            _put_summary(put, name, summaries.get(name), percentiles=False)
        for name in _SUMMARIES:
            _put_summary(put, name, summaries.get(name), percentiles=True)
        summary_sets = _mapping(metrics, "summary_sets")
        for names, percentiles in ((_BASIC_SUMMARY_SETS, False), (_SUMMARY_SETS, True)):
            for name in names:
                members = summary_sets.get(name, {})
                for key in java_hash_order(sorted(members), java_string_hash, concurrent=True):
                    _put_summary(put, f"{key}_{name}", members[key], percentiles)
        return "".join(out)

    def _gauges(self, server: Any) -> dict[str, object]:
        stats = server.stats
        tree = server.db.tree
        lo, avg, hi = _latency(stats)
        open_fds, max_fds = _file_descriptors()
        return {
            "avg_latency": avg,
            "max_latency": hi,
            "min_latency": lo,
            "packets_received": self._received(server),
            "packets_sent": self._sent(server),
            "num_alive_connections": len(server.connections),
            "outstanding_requests": int(server.outstanding_requests()),
            "uptime": int((time.time() - float(getattr(server, "started_at", time.time()))) * 1000),
            "znode_count": _node_count(server),
            "watch_count": int(server.watches.count()),
            "ephemerals_count": sum(len(paths) for paths in tree.ephemerals.values()),
            "approximate_data_size": int(tree.approximate_data_size),
            "global_sessions": len(server.sessions.sessions),
            "local_sessions": 0,  # no local sessions: every session is global, as in standalone
            "open_file_descriptor_count": open_fds,
            "max_file_descriptor_count": max_fds,
            "connection_drop_probability": 0.0,
            "last_client_response_size": -1,
            "max_client_response_size": -1,
            "min_client_response_size": -1,
            "outstanding_tls_handshake": 0,
            "auth_failed_count": int(getattr(stats, "auth_failed", 0)),
            "non_mtls_remote_conn_count": 0,
            "non_mtls_local_conn_count": 0,
        }

    # ------------------------------------------------------------------ conf / dirs / envi

    def _conf(self, server: Any, conn: Any) -> str:
        if not _running(server):
            return ZK_NOT_SERVING + "\n"
        cfg = server.config
        data_size, log_size = _dir_sizes(cfg)
        describe = getattr(cfg, "describe", None)
        if callable(describe):
            pairs = describe(data_dir_size=data_size, data_log_size=log_size)
        else:
            pairs = _describe_fallback(cfg, data_size, log_size)
        lines = [f"{k}={v}\n" for k, v in pairs]
        membership = getattr(cfg, "membership", None)
        if callable(membership) and getattr(cfg, "is_quorum", False) is True:
            # QuorumZooKeeperServer.dumpConf: the verifier's text ends without a newline.
            lines.append("membership: \n")
            lines.append("\n".join(f"{k}={v}" for k, v in membership()))
        return "".join(lines)

    def _dirs(self, server: Any, conn: Any) -> str:
        if not _running(server):
            return ZK_NOT_SERVING + "\n"
        data_size, log_size = _dir_sizes(server.config)
        return f"datadir_size: {data_size}\nlogdir_size: {log_size}\n"

    def _envi(self) -> str:
        lines = ["Environment:"]
        for key, value in environment(self.version):
            lines.append(f"{key}={value}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ dump / watches / misc

    def _dump(self, server: Any, conn: Any) -> str:
        if not _running(server):
            return ZK_NOT_SERVING + "\n"
        out = ["SessionTracker dump:\n"]
        buckets: dict[int, list[int]] = {}
        for sess in server.sessions.sessions.values():
            buckets.setdefault(int(sess.expire_at_ms), []).append(int(sess.session_id))
        out.append(_expiry_dump("Session", buckets, len(server.sessions.sessions), lambda sid: f"0x{_hex(sid)}"))
        out.append("ephemeral nodes dump:\n")
        ephemerals = server.db.tree.ephemerals
        out.append(f"Sessions with Ephemerals ({len(ephemerals)}):\n")
        for sid in java_hash_order(sorted(ephemerals, key=lambda s: s & _U64), java_long_hash, concurrent=True):
            out.append(f"0x{_hex(sid)}:\n")
            for path in java_hash_order(sorted(ephemerals[sid]), java_string_hash):
                out.append(f"\t{path}\n")
        out.append("Connections dump:\n")
        now_wall, now_mono = time.time(), time.monotonic()
        by_expiry: dict[int, list[Any]] = {}
        for c in _connections(server):
            last_ms = int((now_wall - (now_mono - float(getattr(c, "last_activity", now_mono)))) * 1000)
            timeout = int(getattr(c, "session_timeout_ms", 0) or 0) if getattr(c, "session_id", 0) else 0
            at = _round_up(last_ms + (timeout or SESSIONLESS_TIMEOUT_MS), SESSIONLESS_TIMEOUT_MS)
            by_expiry.setdefault(at, []).append(c)
        out.append(_expiry_dump("Connections", by_expiry, len(server.connections),
                                lambda c: f"ip: {java_address(getattr(c, 'remote', None))} "
                                          f"sessionId: 0x{_hex(int(getattr(c, 'session_id', 0) or 0))}"))
        return "".join(out)

    def _wchs(self, server: Any, conn: Any) -> str:
        """WatchManager.toString of the data/exists table only, as DataTree.dumpWatchesSummary."""
        if not _running(server):
            return ZK_NOT_SERVING + "\n"
        table = server.watches.data
        total = sum(len(paths) for paths in table.by_watcher.values())
        return (f"{len(table.by_watcher)} connections watching {len(table.by_path)} paths\n"
                f"Total watches:{total}\n")

    def _wch(self, server: Any, by_path: bool) -> str:
        if not _running(server):
            return ZK_NOT_SERVING + "\n"
        table = server.watches.data
        out: list[str] = []
        if by_path:
            for path in java_hash_order(sorted(table.by_path), java_string_hash):
                out.append(path + "\n")
                for sid in sorted(_sid(w) & _U64 for w in table.by_path[path]):
                    out.append(f"\t0x{_hex(sid)}\n")
        else:
            for watcher in sorted(table.by_watcher, key=lambda w: _sid(w) & _U64):
                out.append(f"0x{_hex(_sid(watcher))}\n")
                for path in java_hash_order(sorted(table.by_watcher[watcher]), java_string_hash):
                    out.append(f"\t{path}\n")
        return "".join(out) + "\n"

    def _isro(self, server: Any, conn: Any) -> str:
        if not _running(server):
            return "null"
        return "ro" if getattr(server, "read_only", False) else "rw"

    def _hash(self, server: Any, conn: Any) -> str:
        if not _running(server):
            return ZK_NOT_SERVING
        log = getattr(server.db.tree, "digest_log", None) or ()
        return "".join(f"{_hex(zxid)}: {digest}\n" for zxid, digest in log)


# ---------------------------------------------------------------------- helpers over the server


_GAUGE_SET = frozenset(_GAUGES)


def _running(server: Any) -> bool:
    # A quorum member between leaders is not serving, as ZooKeeper's isZKServerRunning says.
    return bool(getattr(server, "running", True)) and bool(getattr(server, "serving", True))


def _server_state(server: Any) -> str:
    # A quorum peer will say leader / follower / observer; a standalone server says standalone.
    state = getattr(server, "server_state", None)
    return str(state) if state else "standalone"


def _node_count(server: Any) -> int:
    # ZooKeeper's DataTree maps both "" and "/" to the root, and getNodeCount counts map entries.
    return int(server.db.tree.node_count) + 1


def _latency(stats: Any) -> tuple[int, float, int]:
    count = int(getattr(stats, "latency_count", 0))
    if count:
        avg = java_avg(int(getattr(stats, "total_latency_ms", 0)), count)
    else:
        avg = 0.0
    return int(getattr(stats, "min_latency_ms", 0)), avg, int(getattr(stats, "max_latency_ms", 0))


def _connections(server: Any) -> list[Any]:
    # Apache iterates a set keyed by object identity; any order is as good, so make it stable.
    return sorted(server.connections, key=lambda c: (int(getattr(c, "session_id", 0) or 0) & _U64,
                                                     tuple(getattr(c, "remote", ("", 0)) or ("", 0))))


def _sid(watcher: Any) -> int:
    return int(getattr(watcher, "session_id", 0) or 0)


def _elapsed_ms(wall_s: float) -> int:
    """A wall-clock instant on Apache's Time.currentElapsedTime clock (CLOCK_MONOTONIC, ms)."""
    if not wall_s:
        return 0
    return int((time.monotonic() - (time.time() - wall_s)) * 1000)


def _round_up(t_ms: int, interval_ms: int) -> int:
    return (t_ms // interval_ms + 1) * interval_ms


def _expiry_dump(what: str, buckets: Mapping[int, list[Any]], members: int, show: Callable[[Any], str]) -> str:
    """ExpiryQueue.dump: sets of members by deadline, earliest first."""
    out = [f"{what} Sets ({len(buckets)})/({members}):\n"]
    for at in sorted(buckets):
        group = buckets[at]
        out.append(f"{len(group)} expire at {java_date(at)}:\n")
        out.extend(f"\t{show(m)}\n" for m in group)
    return "".join(out)


def _mapping(obj: Any, name: str) -> Mapping[str, Any]:
    value = getattr(obj, name, None)
    return value if isinstance(value, Mapping) else {}


def _builtin_counters(server: Any) -> dict[str, int]:
    """Counters the server's own state already answers."""
    stats = server.stats
    pipeline = getattr(server, "pipeline", None)
    return {
        "connection_rejected": int(getattr(stats, "connections_rejected", 0)),
        # A failed log write stops the server from committing: ZooKeeper's unrecoverable error.
        "unrecoverable_error_count": 1 if getattr(pipeline, "failed", None) is not None else 0,
    }


def _put_summary(put: Callable[[str, object], None], name: str, summary: Any, percentiles: bool) -> None:
    """AvgMinMaxCounter.values (+ AvgMinMaxPercentileCounter's p50/p95/p99/p999)."""
    count = int(getattr(summary, "count", 0) or 0)
    total = int(getattr(summary, "total", 0) or 0)
    put(f"avg_{name}", java_avg(total, count))
    put(f"min_{name}", int(getattr(summary, "min", 0) or 0) if count else 0)
    put(f"max_{name}", int(getattr(summary, "max", 0) or 0) if count else 0)
    put(f"cnt_{name}", count)
    put(f"sum_{name}", total)
    if percentiles:
        percentile = getattr(summary, "percentile", None)
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)):
            value = percentile(q) if count and callable(percentile) else 0
            put(f"{label}_{name}", math.floor(float(value) + 0.5))  # Math.round


def _quota_gauges(server: Any) -> dict[str, list[tuple[str, int]]]:
    """QuotaMetricsUtils: per top-level namespace, the limits and usage under /zookeeper/quota."""
    tree = server.db.tree
    sums: dict[str, dict[str, int]] = {name: {} for name in _QUOTA_GAUGE_SETS}
    root = tree.get_node(QUOTA_ROOT)
    stack: list[tuple[str, Any]] = [(QUOTA_ROOT, root)] if root is not None else []
    steps = 0
    while stack and steps < 1_000_000:  # bounded: the quota subtree is small
        steps += 1
        path, node = stack.pop()
        children = getattr(node, "children", None)
        if children:
            stack.extend((f"{path}/{name}", child) for name, child in children.items())
            continue
        leaf = path.rsplit("/", 1)[1]
        if leaf not in (_LIMIT_NODE, _STAT_NODE):
            continue
        target = path[len(QUOTA_ROOT):path.rfind("/")]
        parts = target.split("/")
        namespace = parts[1] if len(parts) > 1 and parts[1] else None
        data = getattr(node, "data", None)
        if namespace is None or data is None:
            continue
        track = _parse_stats_track(bytes(data))
        if track is None:
            continue
        if leaf == _LIMIT_NODE:
            count_limit = track.get("countHardLimit", -1)
            bytes_limit = track.get("byteHardLimit", -1)
            values = {"quota_count_limit_per_namespace": count_limit if count_limit > -1 else track.get("count", -1),
                      "quota_bytes_limit_per_namespace": bytes_limit if bytes_limit > -1 else track.get("bytes", -1)}
        else:
            values = {"quota_count_usage_per_namespace": track.get("count", -1),
                      "quota_bytes_usage_per_namespace": track.get("bytes", -1)}
        for name, value in values.items():
            sums[name][namespace] = sums[name].get(namespace, 0) + value
    return {name: [(ns, per_ns[ns]) for ns in java_hash_order(sorted(per_ns), java_string_hash, concurrent=True)]
            for name, per_ns in sums.items()}


def _parse_stats_track(data: bytes) -> dict[str, int] | None:
    """StatsTrack's ``key=value,...``; None when Java would fail to parse it."""
    if not data:
        return {}
    out: dict[str, int] = {}
    try:
        for pair in data.decode("utf-8").split(","):
            key, _, value = pair.partition("=")
            out[key] = int(value) if value else -1
    except (UnicodeDecodeError, ValueError):
        return None
    return out


def _file_descriptors() -> tuple[int | None, int | None]:
    """UnixOperatingSystemMXBean's open/max file descriptor counts (None off Unix, as Java)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
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


def _dir_size(path: Path) -> int:
    """ZooKeeperServer.getDirSize: the bytes of every file below ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
    return total


def _dir_sizes(cfg: Any) -> tuple[int, int]:
    data_dir = getattr(cfg, "data_dir", None)
    if data_dir is None:
        return 0, 0
    log_dir = getattr(cfg, "data_log_dir", None) or data_dir
    return _dir_size(Path(data_dir) / "version-2"), _dir_size(Path(log_dir) / "version-2")


def _describe_fallback(cfg: Any, data_size: int, log_size: int) -> list[tuple[str, str]]:
    """ZooKeeperServer.dumpConf for a config without ``describe()``."""
    def version2(path: Any) -> str:
        return str((Path(path) / "version-2").absolute()) if path is not None else ""

    tick = int(getattr(cfg, "tick_time_ms", 2000))
    secure = getattr(cfg, "secure_client_port", None)
    data_dir = getattr(cfg, "data_dir", None)
    return [
        ("clientPort", str(getattr(cfg, "client_port", 0))),
        ("secureClientPort", str(secure if secure else -1)),
        ("dataDir", version2(data_dir)),
        ("dataDirSize", str(data_size)),
        ("dataLogDir", version2(getattr(cfg, "data_log_dir", None) or data_dir)),
        ("dataLogSize", str(log_size)),
        ("tickTime", str(tick)),
        ("maxClientCnxns", str(getattr(cfg, "max_client_cnxns", 60))),
        ("minSessionTimeout", str(getattr(cfg, "min_session_timeout_ms", 2 * tick))),
        ("maxSessionTimeout", str(getattr(cfg, "max_session_timeout_ms", 20 * tick))),
        ("clientPortListenBacklog", str(getattr(cfg, "client_port_listen_backlog", -1))),
        ("serverId", str(getattr(cfg, "my_id", None) or 0)),
    ]


def environment(version: str) -> list[tuple[str, str]]:
    """Environment.list with the Python runtime standing in for the JVM (see module docstring)."""
    def prop(fn: Callable[[], object]) -> str:
        try:
            value = fn()
        except Exception:  # a fact we cannot learn prints <NA>, as Java does
            return "<NA>"
        return "<NA>" if value is None or value == "" else str(value)

    machine = platform.machine()
    arch = {"x86_64": "amd64", "AMD64": "amd64", "i386": "x86", "i686": "x86"}.get(machine, machine)
    total_b, max_b, free_b = _memory()
    mb = 1024 * 1024
    return [
        ("zookeeper.version", version),
        ("host.name", prop(_host_name)),
        ("java.version", platform.python_version()),
        ("java.vendor", prop(platform.python_implementation)),
        ("java.home", sys.prefix),
        ("java.class.path", os.pathsep.join(sys.path)),
        ("java.library.path", prop(lambda: os.environ.get("LD_LIBRARY_PATH") or sysconfig.get_config_var("LIBDIR"))),
        ("java.io.tmpdir", tempfile.gettempdir()),
        ("java.compiler", "<NA>"),  # no JIT, as on a JVM without one
        ("os.name", prop(platform.system)),
        ("os.arch", arch or "<NA>"),
        ("os.version", prop(platform.release)),
        ("user.name", prop(_user_name)),
        ("user.home", prop(lambda: os.path.expanduser("~"))),
        ("user.dir", prop(os.getcwd)),
        ("os.memory.free", f"{free_b // mb}MB"),
        ("os.memory.max", f"{max_b // mb}MB"),
        ("os.memory.total", f"{total_b // mb}MB"),
    ]


@functools.cache
def _host_name() -> str:
    # A reverse lookup can stall on a broken resolver; pay for it once, not on every envi.
    return socket.getfqdn()


def _user_name() -> str:
    import getpass

    return getpass.getuser()


def _memory() -> tuple[int, int, int]:
    """(resident bytes, bytes the process may use, bytes of that still available)."""
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    rss = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * page
    physical = 0
    with contextlib.suppress(OSError, ValueError, AttributeError):
        physical = os.sysconf("SC_PHYS_PAGES") * page
    limit = physical
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and (not limit or soft < limit):
            limit = soft
    available = max(limit - rss, 0)
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = min(available, int(line.split()[1]) * 1024)
                break
    return rss, limit, available
