"""The AdminServer: ZooKeeper 3.8's administrative commands as JSON over HTTP.

``GET <admin.commandURL>`` (default ``/commands``) lists the commands as links;
``GET <admin.commandURL>/<name>`` runs one (by its primary name or an alias) with the query
parameters as its arguments (``set_trace_mask?traceMask=306``) and answers a JSON object with
the command's fields, ``command`` (the primary name) and ``error``.  It listens on
``admin.serverAddress:admin.serverPort`` (``0.0.0.0:8080``) when ``admin.enableServer`` is true,
which is ZooKeeper's default too; it runs on the server's event loop (aiohttp), so a command
sees the server between two requests, never in the middle of one.

Compared with a running Apache ZooKeeper 3.8.0 (``tests/test_admin.py``):

* The same command set, names, aliases and JSON field names; values come from zkpy's state.
  The JSON is indented as Jackson's default pretty printer does it.
* Errors as 3.8.0 answers them: an unknown command, a command run while the server is not
  serving, or a bad argument answer **200** with ``error`` set in the JSON (3.8.0's servlet never
  sets another status).  Outside the command URL the HTTP status is Jetty's - 404 for another
  path, 405 for POST/PUT/DELETE, 403 for TRACE, 501 for an unknown method - but the body is a
  small JSON object ``{"error": ...}`` instead of Jetty's HTML error page.
* ``environment`` and ``system_properties`` describe the Python runtime with the JVM's key names
  (as ``envi`` does); ``system_properties`` lists the ``zookeeper.*`` properties zoo.cfg and the
  ``-D`` flags set, exactly as ZooKeeper does.
* ``leader``, ``voting_view``, ``zabstate`` and ``observers`` answer as a standalone ZooKeeper
  does.  A quorum server exposes ``server.quorum`` (see :class:`QuorumInfo`) and they report it.
* ``hash`` lists no digests (zkpy keeps no digest log yet), as Apache with digests disabled.
* HTTPS (``admin.forceHttps``, ``admin.portUnification``) is not supported: the server refuses
  to start rather than serve plain HTTP where HTTPS was asked for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from zkpy.server.metrics import latency, packets, server_state, uptime_ms

log = logging.getLogger(__name__)

NOT_SERVING = "This ZooKeeper instance is not currently serving requests"
DEFAULT_TRACE_MASK = 306  # ZooTrace's default: client requests | server packets | sessions | warnings
_U64 = (1 << 64) - 1
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1


class AdminServerError(RuntimeError):
    """The AdminServer could not start (ZooKeeper exits with code 4 then)."""


class QuorumInfo(Protocol):
    """What the quorum commands read of an ensemble member (see :func:`quorum_info`)."""

    my_id: int
    is_leader: bool
    leader_id: int
    leader_address: str | None
    zab_state: str  # election, discovery, synchronization or broadcast
    voting: bool
    quorum_address: object  # as Jackson writes a MultipleAddresses bean
    election_address: object
    client_address: str | None

    def voting_view(self) -> Mapping[int, Mapping[str, object]]:
        """Member id -> {server_addresses, election_addresses, client_address, learner_type}."""
        ...


def quorum_info(server: Any) -> QuorumInfo | None:
    """The member's view for the quorum commands: ``server.quorum`` if it offers one, else one
    built from ``server.quorum_stats()`` and the configuration; None on a standalone server."""
    explicit = getattr(server, "quorum", None)
    if explicit is not None:
        return explicit  # type: ignore[no-any-return]
    stats_fn = getattr(server, "quorum_stats", None)
    cfg = getattr(server, "config", None)
    if not callable(stats_fn) or getattr(cfg, "is_quorum", False) is not True:
        return None
    return _MemberView(server, cfg, dict(stats_fn() or {}))


class _MemberView:
    """QuorumInfo over a zkpy ensemble member (QuorumPeerServer) and its zoo.cfg."""

    def __init__(self, server: Any, cfg: Any, stats: dict[str, Any]) -> None:
        self.server = server
        self.cfg = cfg
        self.servers: Mapping[int, Any] = cfg.servers
        self.my_id = int(cfg.my_id)
        self.is_leader = stats.get("role") == "leading"
        leader = stats.get("leader")
        self.leader_id = int(leader) if leader is not None and stats.get("role") != "looking" else -1
        spec = self.servers.get(self.leader_id)
        # QuorumPeer.getLeaderAddress: the leader's quorum host strings, once a leader is known.
        self.leader_address = "|".join(a.host for a in spec.addresses) if spec is not None else None
        self.zab_state = str(stats.get("phase", "election"))
        me = self.servers.get(self.my_id)
        self.voting = me is not None and getattr(me, "peer_type", "participant") == "participant"
        addresses = tuple(getattr(me, "addresses", ()))
        self.quorum_address = _multiple_addresses([(a.host, a.quorum_port) for a in addresses])
        self.election_address = _multiple_addresses([(a.host, a.election_port) for a in addresses])
        self.client_address = self._own_client_address()

    def _own_client_address(self) -> str | None:
        port = None
        with contextlib.suppress(Exception):
            port = int(self.server.bound_port)
        me = self.servers.get(self.my_id)
        host = getattr(me, "client_host", None) or getattr(self.cfg, "client_port_address", None) or "0.0.0.0"
        port = port or getattr(me, "client_port", None) or getattr(self.cfg, "client_port", None)
        return socket_address((host, port)) if port else None

    def voting_view(self) -> dict[int, dict[str, object]]:
        """QuorumPeer.getVotingView as the voting_view command shows it (participants only)."""
        view: dict[int, dict[str, object]] = {}
        for sid, spec in sorted(self.servers.items()):
            if getattr(spec, "peer_type", "participant") != "participant":
                continue
            if spec.client_port is not None:
                client = _host_port(spec.client_host or "0.0.0.0", spec.client_port)
            elif sid == self.my_id:
                client = self.client_address or ""  # a member knows its own client address
            else:
                client = ""
            view[sid] = {"server_addresses": [_host_port(a.host, a.quorum_port) for a in spec.addresses],
                         "election_addresses": [_host_port(a.host, a.election_port) for a in spec.addresses],
                         "client_address": client,
                         "learner_type": "participant"}
        return view


def _host_port(host: str, port: int) -> str:
    """QuorumServer.delimitedHostString + port."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _multiple_addresses(addresses: list[tuple[str, int]]) -> dict[str, object]:
    """A MultipleAddresses as Jackson serializes the bean (its getters, snake_case)."""
    all_addresses = [_host_port(h, p) for h, p in addresses]
    one = all_addresses[0] if all_addresses else None
    return {
        "empty": not addresses,
        "all_addresses": all_addresses,
        "all_reachable_addresses": all_addresses,
        "one": one,
        "reachable_address": one,
        "wildcard_addresses": [_host_port("0.0.0.0", p) for _h, p in addresses],
        "all_ports": [p for _h, p in addresses],
        "all_host_strings": [h for h, _p in addresses],
        "all_reachable_addresses_or_all": all_addresses,
        "reachable_or_one": one,
    }


# ---------------------------------------------------------------------- JSON as Jackson writes it


def to_json(value: object) -> str:
    """Jackson's ObjectMapper with INDENT_OUTPUT: objects one field a line, arrays inline."""
    out: list[str] = []
    _write(out, value, 0)
    return "".join(out)


def _write(out: list[str], value: object, depth: int) -> None:
    if isinstance(value, Mapping):
        if not value:
            out.append("{ }")
            return
        pad = "  " * (depth + 1)
        out.append("{\n")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",\n")
            first = False
            out.append(f"{pad}{json.dumps(str(key), ensure_ascii=False)} : ")
            _write(out, item, depth + 1)
        out.append("\n" + "  " * depth + "}")
    elif isinstance(value, list | tuple | set | frozenset):
        if not value:
            out.append("[ ]")
            return
        out.append("[ ")
        for i, item in enumerate(value):
            if i:
                out.append(", ")
            _write(out, item, depth + 1)
        out.append(" ]")
    elif value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        from zkpy.server.fourlw import java_double

        # Jackson quotes NaN and infinities (QUOTE_NON_NUMERIC_NUMBERS); JSON has no such numbers.
        text = java_double(value)
        out.append(text if math.isfinite(value) else f'"{text}"')
    else:
        out.append(json.dumps(str(value), ensure_ascii=False))


# ---------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Command:
    names: tuple[str, ...]  # the primary name first
    run: Callable[[AdminContext, dict[str, str], dict[str, object]], str | None]
    server_required: bool = True

    @property
    def primary(self) -> str:
        return self.names[0]


@dataclass(slots=True)
class AdminContext:
    """What the commands read: the server, its config and storage, the start-up config text."""

    server: Any
    config: Any
    storage: Any = None
    initial_config: str | None = None
    trace_mask: int = DEFAULT_TRACE_MASK

    def get_trace_mask(self) -> int:
        words = getattr(self.server, "four_letter_words", None)
        return int(getattr(words, "trace_mask", self.trace_mask)) if words is not None else self.trace_mask

    def set_trace_mask(self, mask: int) -> None:
        # ZooTrace is one global in ZooKeeper: the 4lw gtmk sees what set_trace_mask set.
        self.trace_mask = mask
        words = getattr(self.server, "four_letter_words", None)
        if words is not None:
            words.trace_mask = mask


def run_command(ctx: AdminContext, name: str, kwargs: Mapping[str, str] | None = None) -> dict[str, object]:
    """Commands.runCommand: the response map, errors included (never raises)."""
    command = COMMANDS.get(name)
    if command is None:
        return _response(name, {}, f"Unknown command: {name}")
    if command.server_required and not is_serving(ctx.server):
        return _response(name, {}, NOT_SERVING)
    data: dict[str, object] = {}
    try:
        error = command.run(ctx, dict(kwargs or {}), data)
    except Exception as e:  # a command must answer; Jetty would print a 500 page
        log.exception("Error running admin command %s", command.primary)
        return _response(command.primary, {}, f"{type(e).__name__}: {e}")
    if error is not None:
        data = {"error": error, **data}
    return _response(command.primary, data, None)


def is_serving(server: Any) -> bool:
    """ZooKeeper's isRunning: started, and (an ensemble member) synced with a leader."""
    return bool(getattr(server, "running", False)) and bool(getattr(server, "serving", True))


def _response(command: str, data: Mapping[str, object], error: str | None) -> dict[str, object]:
    """CommandResponse.toMap: the data, then command and error - unless the data set ``error``
    itself, which then keeps its place (LinkedHashMap re-insertion does not move a key)."""
    out = dict(data)
    out["command"] = command
    out.setdefault("error", error)
    return out


def _cmd_crst(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    for conn in list(ctx.server.connections):
        reset = getattr(conn, "reset_stats", None)
        if reset is not None:
            reset()


def _cmd_conf(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    cfg, server = ctx.config, ctx.server
    data_dir = Path(getattr(cfg, "data_dir", "."))
    log_dir = Path(getattr(cfg, "data_log_dir", None) or data_dir)
    tick = int(getattr(cfg, "tick_time_ms", 2000))
    port = getattr(cfg, "client_port", 0)
    with contextlib.suppress(Exception):
        port = server.bound_port
    my_id = getattr(cfg, "my_id", None) if getattr(cfg, "is_quorum", False) is True else None
    out.update({
        "client_port": int(port),
        "data_dir": str((data_dir / "version-2").absolute()),
        "data_log_dir": str((log_dir / "version-2").absolute()),
        "tick_time": tick,
        "max_client_cnxns": int(getattr(cfg, "max_client_cnxns", 60)),
        "min_session_timeout": int(getattr(cfg, "min_session_timeout_ms", 2 * tick)),
        "max_session_timeout": int(getattr(cfg, "max_session_timeout_ms", 20 * tick)),
        "server_id": int(my_id or 0),
        "client_port_listen_backlog": int(getattr(cfg, "client_port_listen_backlog", -1)),
    })


def _cmd_cons(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    out["connections"] = [connection_info(c, brief=False) for c in _connections(ctx.server)]
    out["secure_connections"] = []


def _cmd_dirs(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    data_size, log_size = dir_sizes(ctx.config)
    out["datadir_size"] = data_size
    out["logdir_size"] = log_size


def _cmd_dump(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    server = ctx.server
    tick = max(1, int(getattr(server.sessions, "tick_ms", 2000)))
    buckets: dict[int, list[int]] = {}
    for sess in list(server.sessions.sessions.values()):
        # ZooKeeper's ExpiryQueue keys sessions by a deadline on its monotonic clock.
        at = elapsed_ms(int(sess.expire_at_ms) / 1000)
        at = (at // tick + 1) * tick
        buckets.setdefault(at, []).append(_signed(sess.session_id))
    out["expiry_time_to_session_ids"] = {str(at): sorted(ids) for at, ids in sorted(buckets.items())}
    ephemerals = server.db.tree.ephemerals
    out["session_id_to_ephemeral_paths"] = {str(_signed(sid)): sorted(paths)
                                            for sid, paths in sorted(ephemerals.items())}


def _cmd_env(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    from zkpy.server.fourlw import environment, zkpy_version

    out.update(environment(zkpy_version()))


def _cmd_hash(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    digests = getattr(ctx.server.db.tree, "digest_log", None) or ()
    out["digests"] = [{"zxid": int(zxid), "digest_version": 2, "digest": int(digest)} for zxid, digest in digests]


def _cmd_gtmk(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    out["tracemask"] = ctx.get_trace_mask()


def _cmd_stmk(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> str | None:
    if "traceMask" not in kw:
        return "setTraceMask requires long traceMask argument"
    mask = parse_java_long(kw["traceMask"])
    if mask is None:
        return f"setTraceMask requires long traceMask argument, got {kw['traceMask']}"
    ctx.set_trace_mask(mask)
    out["tracemask"] = mask
    return None


def _cmd_icfg(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    out["initial_configuration"] = ctx.initial_config


def _cmd_isro(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    out["read_only"] = bool(getattr(ctx.server, "read_only", False))


def _cmd_lsnp(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    zxid, timestamp = last_snapshot(ctx)
    out["zxid"] = format(zxid & _U64, "x")
    out["timestamp"] = timestamp


def _cmd_leader(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> str | None:
    quorum = quorum_info(ctx.server)
    if quorum is None:
        return "server is not initialized"
    out["is_leader"] = bool(quorum.is_leader)
    out["leader_id"] = int(quorum.leader_id)
    out["leader_ip"] = quorum.leader_address or ""
    return None


def _cmd_monitor(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    metrics = getattr(ctx.server, "metrics", None)
    if metrics is None:
        from zkpy.server.metrics import ServerMetrics

        metrics = ServerMetrics(ctx.server)
    for key, value in metrics.monitor_values():
        out[key] = value


def _cmd_obsr(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    out["synced_observers"] = 0
    out["observers"] = []


def _cmd_noop(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    return None


def _cmd_srvr(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    from zkpy.server.fourlw import zkpy_version

    server = ctx.server
    out["version"] = zkpy_version()
    out["read_only"] = bool(getattr(server, "read_only", False))
    out["server_stats"] = server_stats(ctx)
    out["client_response"] = _client_response()
    quorum = quorum_info(server)
    if quorum is not None and quorum.is_leader:
        out["proposal_stats"] = _client_response()  # Leader's proposal BufferStats: not tracked yet
    out["node_count"] = int(server.db.tree.node_count) + 1  # ZooKeeper counts the root twice


def _cmd_stat(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    _cmd_srvr(ctx, kw, out)
    out["connections"] = [connection_info(c, brief=True) for c in _connections(ctx.server)]
    out["secure_connections"] = []


def _cmd_srst(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    """ServerStats.reset: latency, packet counts, response sizes and every metric."""
    server = ctx.server
    server.stats.reset_latency()
    server.stats.packets_received = server.stats.packets_sent = 0
    words = getattr(server, "four_letter_words", None)
    if words is not None:
        words.packets_received = words.packets_sent = 0
    metrics = getattr(server, "metrics", None)
    if metrics is not None:
        metrics.reset()


def _cmd_sysp(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    out.update(sorted(system_properties(ctx.config).items()))


def _cmd_voting_view(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    quorum = quorum_info(ctx.server)
    view = quorum.voting_view() if quorum is not None else {}
    out["current_config"] = {str(sid): dict(member) for sid, member in sorted(view.items())}


def _cmd_wchc(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    table = ctx.server.watches.data  # DataTree.getWatches: the data/exists watches
    out["session_id_to_watched_paths"] = {
        str(sid): sorted(paths) for sid, paths in sorted(_by_session(table.by_watcher).items())}


def _cmd_wchp(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    table = ctx.server.watches.data
    out["path_to_session_ids"] = {path: sorted(_signed(_sid(w)) for w in watchers)
                                  for path, watchers in sorted(table.by_path.items())}


def _cmd_wchs(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    table = ctx.server.watches.data
    out["num_connections"] = len(table.by_watcher)
    out["num_paths"] = len(table.by_path)
    out["num_total_watches"] = sum(len(paths) for paths in table.by_watcher.values())


def _cmd_zabstate(ctx: AdminContext, kw: dict[str, str], out: dict[str, object]) -> None:
    quorum = quorum_info(ctx.server)
    if quorum is None:
        out["voting"] = False
        out["zabstate"] = ""
        return
    zxid = int(ctx.server.last_zxid)
    out.update({
        "myid": int(quorum.my_id),
        "is_leader": bool(quorum.is_leader),
        "quorum_address": quorum.quorum_address,
        "election_address": quorum.election_address,
        "client_address": quorum.client_address,
        "voting": bool(quorum.voting),
        "last_zxid": f"0x{zxid:x}",
        "zab_epoch": zxid >> 32,
        "zab_counter": zxid & 0xFFFFFFFF,
        "zabstate": str(quorum.zab_state).lower(),
    })


_COMMAND_LIST = [
    Command(("connection_stat_reset", "crst"), _cmd_crst),
    Command(("configuration", "conf", "config"), _cmd_conf),
    Command(("connections", "cons"), _cmd_cons),
    Command(("hash",), _cmd_hash),
    Command(("dirs",), _cmd_dirs),
    Command(("dump",), _cmd_dump),
    Command(("environment", "env", "envi"), _cmd_env, server_required=False),
    Command(("get_trace_mask", "gtmk"), _cmd_gtmk, server_required=False),
    Command(("initial_configuration", "icfg"), _cmd_icfg),
    Command(("is_read_only", "isro"), _cmd_isro),
    Command(("last_snapshot", "lsnp"), _cmd_lsnp),
    Command(("leader", "lead"), _cmd_leader),
    Command(("monitor", "mntr"), _cmd_monitor, server_required=False),
    Command(("observer_connection_stat_reset", "orst"), _cmd_noop),
    Command(("ruok",), _cmd_noop),
    Command(("set_trace_mask", "stmk"), _cmd_stmk, server_required=False),
    Command(("server_stats", "srvr"), _cmd_srvr),
    Command(("stats", "stat"), _cmd_stat),
    Command(("stat_reset", "srst"), _cmd_srst),
    Command(("observers", "obsr"), _cmd_obsr),
    Command(("system_properties", "sysp"), _cmd_sysp, server_required=False),
    Command(("voting_view",), _cmd_voting_view),
    Command(("watches", "wchc"), _cmd_wchc),
    Command(("watches_by_path", "wchp"), _cmd_wchp),
    Command(("watch_summary", "wchs"), _cmd_wchs),
    Command(("zabstate",), _cmd_zabstate, server_required=False),
]
COMMANDS: dict[str, Command] = {name: c for c in _COMMAND_LIST for name in c.names}
PRIMARY_NAMES: tuple[str, ...] = tuple(sorted(c.primary for c in _COMMAND_LIST))


# ---------------------------------------------------------------------- views of the server


def server_stats(ctx: AdminContext) -> dict[str, object]:
    """ServerStats as Jackson serializes it (bean getters, snake_case, in this order)."""
    server = ctx.server
    lo, avg, hi = latency(server)
    received, sent = packets(server)
    data_size, log_size = dir_sizes(ctx.config)
    return {
        "packets_sent": sent,
        "packets_received": received,
        "fsync_threshold_exceed_count": _fsync_threshold_exceeded(ctx),
        "client_response_stats": _client_response(),
        "data_dir_size": data_size,
        "log_dir_size": log_size,
        "provider_null": False,
        "server_state": server_state(server),
        "last_processed_zxid": int(server.last_zxid),
        "outstanding_requests": int(server.outstanding_requests()),
        "avg_latency": avg,
        "max_latency": hi,
        "min_latency": lo,
        "num_alive_client_connections": len(server.connections),
        "uptime": uptime_ms(server),
        "auth_failed_count": int(getattr(server.stats, "auth_failed", 0)),
        "non_mtlsremote_conn_count": 0,
        "non_mtlslocal_conn_count": 0,
    }


def _client_response() -> dict[str, int]:
    # BufferStats without samples: zkpy does not track response sizes yet.
    return {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1}


def _fsync_threshold_exceeded(ctx: AdminContext) -> int:
    stats = getattr(ctx.storage, "stats", None)
    if stats is not None:
        return int(getattr(stats, "fsync_threshold_exceeded", 0))
    return int(getattr(ctx.server.stats, "fsync_threshold_exceeded", 0))


def connection_info(c: Any, brief: bool) -> dict[str, object]:
    """ServerCnxn.getConnectionInfo."""
    closed = bool(getattr(c, "closed", False))
    # NIO interest ops: OP_READ unless reading is paused, OP_WRITE while output waits.
    reading = 0 if getattr(c, "paused_reading", False) else 1
    interest = 0 if closed else reading | (4 if getattr(c, "out", None) else 0)
    info: dict[str, object] = {
        "remote_socket_address": socket_address(getattr(c, "remote", None)),
        "interest_ops": interest,
        "outstanding_requests": len(getattr(c, "queue", ())),
        "packets_received": int(getattr(c, "packets_received", 0)),
        "packets_sent": int(getattr(c, "packets_sent", 0)),
    }
    if not brief:
        count = int(getattr(c, "latency_count", 0))
        total = int(getattr(c, "total_latency_ms", 0))
        info.update({
            "session_id": _signed(int(getattr(c, "session_id", 0) or 0)),
            "last_operation": str(getattr(c, "last_op", "NA")),
            "established": int(float(getattr(c, "established_at", 0.0)) * 1000),
            "session_timeout": int(getattr(c, "session_timeout_ms", 0)),
            "last_cxid": int(getattr(c, "last_cxid", -1)),
            "last_zxid": int(getattr(c, "last_zxid", -1)),
            "last_response_time": elapsed_ms(float(getattr(c, "last_response_time", 0.0))),
            "last_latency": int(getattr(c, "last_latency_ms", 0)),
            "min_latency": int(getattr(c, "min_latency_ms", 0)) if count else 0,
            "avg_latency": total // count if count else 0,
            "max_latency": int(getattr(c, "max_latency_ms", 0)),
        })
    return info


def socket_address(remote: tuple[Any, ...] | None) -> str | None:
    """Jackson's InetSocketAddress serialization: ``ip:port``, IPv6 as ``[full:form]:port``."""
    from zkpy.server.fourlw import java_address

    if not remote or not remote[0]:
        return None
    return java_address(remote).lstrip("/")


def _connections(server: Any) -> list[Any]:
    return sorted(list(server.connections), key=lambda c: (_signed(int(getattr(c, "session_id", 0) or 0)) & _U64,
                                                           tuple(getattr(c, "remote", ("", 0)) or ("", 0))))


def _sid(watcher: Any) -> int:
    return int(getattr(watcher, "session_id", 0) or 0)


def _by_session(by_watcher: Mapping[Any, Iterable[str]]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for watcher, paths in list(by_watcher.items()):
        out.setdefault(_signed(_sid(watcher)), set()).update(paths)
    return out


def _signed(v: int) -> int:
    """A session id as Java's long prints it."""
    v &= _U64
    return v - (1 << 64) if v >> 63 else v


def elapsed_ms(wall_s: float) -> int:
    """A wall-clock instant on ZooKeeper's Time.currentElapsedTime clock (CLOCK_MONOTONIC, ms)."""
    if not wall_s:
        return 0
    return int((time.monotonic() - (time.time() - wall_s)) * 1000)


def parse_java_long(text: str) -> int | None:
    """Long.parseLong: an optional sign and decimal digits within 64 bits; None otherwise."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    return value if _LONG_MIN <= value <= _LONG_MAX else None


def dir_sizes(cfg: Any) -> tuple[int, int]:
    """(bytes under dataDir/version-2, bytes under dataLogDir/version-2), as ``dirs``."""
    data_dir = getattr(cfg, "data_dir", None)
    if data_dir is None:
        return 0, 0
    log_dir = getattr(cfg, "data_log_dir", None) or data_dir
    return _dir_size(Path(data_dir) / "version-2"), _dir_size(Path(log_dir) / "version-2")


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
    return total


def last_snapshot(ctx: AdminContext) -> tuple[int, int]:
    """(zxid, file mtime in seconds) of the newest snapshot written or loaded; (-1, -1) if none."""
    stats = getattr(ctx.storage, "stats", None)
    path = getattr(stats, "last_snapshot_path", "") if stats is not None else ""
    if path:
        with contextlib.suppress(OSError):
            return int(stats.last_snapshot_zxid), int(os.stat(path).st_mtime)
    data_dir = getattr(ctx.config, "data_dir", None)
    if data_dir is not None:
        newest: tuple[int, Path] | None = None
        for p in (Path(data_dir) / "version-2").glob("snapshot.*"):
            try:
                zxid = int(p.name.split(".")[1], 16)
            except (IndexError, ValueError):
                continue
            if newest is None or zxid > newest[0]:
                newest = (zxid, p)
        if newest is not None:
            with contextlib.suppress(OSError):
                return newest[0], int(newest[1].stat().st_mtime)
    return -1, -1


def system_properties(cfg: Any) -> dict[str, str]:
    """System.getProperties for this process: the JVM's standard keys with the Python runtime's
    values, and the ``zookeeper.*`` (and other) properties from zoo.cfg and ``-D`` flags."""
    props: dict[str, str] = {
        "file.encoding": sys.getfilesystemencoding().upper().replace("UTF8", "UTF-8"),
        "file.separator": os.sep,
        "java.class.path": os.pathsep.join(sys.path),
        "java.home": sys.prefix,
        "java.io.tmpdir": tempfile.gettempdir(),
        "java.version": platform.python_version(),
        "java.vendor": platform.python_implementation(),
        "line.separator": os.linesep,
        "os.arch": {"x86_64": "amd64", "AMD64": "amd64"}.get(platform.machine(), platform.machine()),
        "os.name": platform.system(),
        "os.version": platform.release(),
        "path.separator": os.pathsep,
        "user.dir": os.getcwd(),
        "user.home": os.path.expanduser("~"),
    }
    with contextlib.suppress(Exception):
        import getpass

        props["user.name"] = getpass.getuser()
    props.update({str(k): str(v) for k, v in (getattr(cfg, "system_properties", None) or {}).items()})
    return props


def read_initial_config(cfg: Any) -> str | None:
    """The configuration file's text as read at start-up (QuorumPeerConfig.initialConfig)."""
    source = getattr(cfg, "source", None)
    if source is None:
        return None
    try:
        return Path(source).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


# ---------------------------------------------------------------------- HTTP


def command_links(url: str) -> str:
    """The page ``GET <commandURL>`` answers: a link per primary name, sorted."""
    return "".join(f'<a href="{url}/{name}">{name}</a>\n<br/>\n' for name in PRIMARY_NAMES)


class AdminServer:
    """The HTTP side: one aiohttp application on the server's event loop."""

    def __init__(self, config: Any, server: Any, storage: Any = None) -> None:
        self.config = config
        self.host = getattr(config, "admin_server_address", "0.0.0.0") or "0.0.0.0"
        self.port = int(getattr(config, "admin_server_port", 8080))
        url = str(getattr(config, "admin_command_url", "/commands") or "/commands")
        self.command_url = url.rstrip("/") if url != "/" else ""
        self.idle_timeout_s = max(0.001, int(getattr(config, "admin_idle_timeout_ms", 30_000)) / 1000)
        self.context = AdminContext(server, config, storage, read_initial_config(config))
        self._runner: Any = None

    async def start(self) -> None:
        if getattr(self.config, "admin_force_https", False) or getattr(self.config, "admin_port_unification", False):
            raise AdminServerError("admin.forceHttps / admin.portUnification: zkpy's AdminServer serves plain "
                                   "HTTP only and will not start where HTTPS was asked for")
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=self.idle_timeout_s)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise AdminServerError(f"Problem starting AdminServer on address {self.host}, port {self.port} "
                                   f"and command URL {self.command_url or '/'}: {e}") from e
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("Started AdminServer on address %s, port %d and command URL %s", self.host, self.port,
                 self.command_url or "/")

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            with contextlib.suppress(Exception):
                await runner.cleanup()

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        path: str = request.path
        url = self.command_url
        if not (path == url or path.startswith(url + "/") or (url == "" and path.startswith("/"))):
            return _error(web, 404, "Not Found")
        method = request.method
        if method == "TRACE":
            return web.Response(status=403)  # ZooKeeper's security constraint on TRACE
        if method == "OPTIONS":
            return web.Response(status=200, headers={"Allow": "GET, HEAD, TRACE, OPTIONS"})
        if method in ("POST", "PUT", "DELETE"):
            return _error(web, 405, f"HTTP method {method} is not supported by this URL")
        if method not in ("GET", "HEAD"):
            return _error(web, 501, f"HTTP method {method} is not implemented")
        name = path[len(url):]
        if name in ("", "/"):
            return web.Response(body=command_links(url or "").encode("utf-8"),
                                headers={"Content-Type": "text/html;charset=utf-8"})
        kwargs = {key: request.query.getone(key) for key in request.query}
        response = run_command(self.context, name[1:], kwargs)
        return web.Response(body=to_json(response).encode("utf-8"), headers={"Content-Type": "application/json"})


def _error(web: Any, status: int, message: str) -> Any:
    body = to_json({"error": message, "status": status}).encode("utf-8")
    return web.Response(status=status, body=body, headers={"Content-Type": "application/json"})


async def start_admin_server(config: Any, server: Any, storage: Any = None) -> AdminServer | None:
    """Start the AdminServer when ``admin.enableServer`` is true (the default); None otherwise."""
    if not getattr(config, "admin_enable_server", True):
        return None
    admin = AdminServer(config, server, storage)
    await admin.start()
    return admin


__all__ = [
    "COMMANDS",
    "NOT_SERVING",
    "PRIMARY_NAMES",
    "AdminContext",
    "AdminServer",
    "AdminServerError",
    "Command",
    "QuorumInfo",
    "command_links",
    "run_command",
    "start_admin_server",
    "to_json",
]
