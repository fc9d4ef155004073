"""The server's configuration, read the way Apache ZooKeeper 3.8 reads it.

``load_config(path, env)`` gives a :class:`ServerConfig` from a standard ``zoo.cfg`` plus the
``-Dname=value`` words in the ``SERVER_JVMFLAGS`` and ``JVMFLAGS`` environment variables, which is
everything a ZooKeeper 3.8 server started by ``bin/zkServer.sh`` would see. ``default_config()``
is ``zkpy server`` without a file: standalone on 127.0.0.1:2181 with data in ``./zkpy-data``.

Where a value comes from (lowest precedence first), as the JVM that ``zkServer.sh`` starts sees it:

1. ZooKeeper 3.8's built-in default.
2. ``ZOO_DATADIR_AUTOCREATE_DISABLE`` (non-empty): ``zkServer.sh`` turns it into
   ``-Dzookeeper.datadir.autocreate=false``, placed before the flags below.
3. ``-D`` words of ``SERVER_JVMFLAGS``, then of ``JVMFLAGS``: ``zkServer.sh`` runs
   ``java ... $JVMFLAGS`` after ``JVMFLAGS="$SERVER_JVMFLAGS $JVMFLAGS"``, and the JVM keeps the
   last ``-D`` for a name. The variables are expanded unquoted, so they are split at blanks and
   quotes inside them are literal characters (:func:`parse_jvm_flags` does the same).
4. ``zoo.cfg``. ``QuorumPeerConfig`` reads the keys it knows itself (``tickTime``, ``dataDir``,
   ``server.N``, ``metricsProvider.*``, ...; see ``_DIRECT_KEYS``) and hands every other key ``k``
   to ``System.setProperty("zookeeper." + k, value)``. That runs after the JVM started, so
   ``snapCount=5`` in zoo.cfg overwrites ``-Dzookeeper.snapCount=7``. Keys QuorumPeerConfig reads
   itself are not system properties: ``-Dzookeeper.tickTime`` does nothing (we warn).

Consequences, checked against a running Apache ZooKeeper 3.8.0:

* zoo.cfg ``4lw.commands.whitelist`` beats ``-Dzookeeper.4lw.commands.whitelist``.
* Properties ZooKeeper reads without the ``zookeeper.`` prefix (``jute.maxbuffer``,
  ``readonlymode.enabled``, ``znode.container.*``, ``follower.nodelay``, ...) can only be set with
  ``-D`` on Apache ZooKeeper: ``jute.maxbuffer=1000`` in zoo.cfg becomes
  ``zookeeper.jute.maxbuffer``, which nothing reads, and it keeps its 1 MiB limit.  zkpy honours
  such a key from zoo.cfg as well (a deliberate difference, so that one file configures a server
  completely) and says in a warning that Apache would ignore it.
* A key ZooKeeper does not know is silently kept as a system property; we keep it and warn.

Values are parsed as ZooKeeper parses each one (``Integer.parseInt`` for QuorumPeerConfig keys,
``Integer.getInteger``/``Long.getLong`` - which also take ``0x1F``, ``#1F`` and octal ``017`` -
for most system properties, ``"yes"``/``"no"`` for ``forceSync``, ``skipACL`` and
``leaderServes``, ...). One deliberate difference: where ZooKeeper silently falls back to a
default on a value it cannot read (``snapCount=abc``, ``forceSync=No``, ``skipACL=true``) we
refuse the value with a :class:`ConfigError` naming the file, line and key, because the operator
meant something and would otherwise not get it.

The file is read with ``java.util.Properties.load`` rules (:func:`parse_properties`): ``=``,
``:`` or blanks between key and value, ``#``/``!`` comment lines, backslash continuations and
escapes (``\\t``, ``\\uXXXX``, ...), leading blanks dropped, last duplicate wins; ZooKeeper then
trims keys and values (Java's ``String.trim``: every character up to U+0020). Java reads the
bytes as ISO-8859-1; we read UTF-8 when the file is valid UTF-8 (what an editor wrote) and
ISO-8859-1 otherwise.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import re
import socket
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_CLIENT_PORT = 2181
DEFAULT_DATA_DIR = Path("zkpy-data")
DEFAULT_TICK_TIME_MS = 3000  # ZooKeeperServer.DEFAULT_TICK_TIME: what a zoo.cfg without tickTime gets
DEFAULT_MAX_CLIENT_CNXNS = 60
DEFAULT_METRICS_PROVIDER = "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider"
PROMETHEUS_METRICS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
# The providers a ZooKeeper 3.8 distribution ships; any other class would not load there either.
KNOWN_METRICS_PROVIDERS = frozenset({DEFAULT_METRICS_PROVIDER, PROMETHEUS_METRICS_PROVIDER})
MIN_SNAP_RETAIN_COUNT = 3
MAX_EXTENDED_SERVER_ID = 254  # EphemeralType: TTL/container owners keep the server id in one byte

# Every command FourLetterCommands knows; "*" in the whitelist enables all of them.
FOUR_LETTER_WORDS = frozenset({
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr",
    "stat", "wchc", "wchp", "wchs", "mntr", "isro", "telnet close", "hash",
})

PeerType = Literal["participant", "observer"]


class ConfigError(ValueError):
    """A configuration ZooKeeper 3.8 would not run with (or that would not do what it says).

    ``key`` is the setting (zoo.cfg key, or property name for a ``-D`` flag), ``line`` the
    1-based line in ``path``; ``origin`` names a non-file source such as ``SERVER_JVMFLAGS``.
    """

    def __init__(self, reason: str, *, key: str | None = None, line: int | None = None,
                 path: Path | str | None = None, origin: str | None = None) -> None:
        self.reason = reason
        self.key = key
        self.line = line
        self.path = Path(path) if path is not None else None
        self.origin = origin
        super().__init__(_located(reason, key=key, line=line, path=self.path, origin=origin))


def _located(text: str, *, key: str | None, line: int | None, path: Path | None,
             origin: str | None) -> str:
    """``zoo.cfg:7: tickTime: text`` - the compiler-style form editors can jump to."""
    where = str(path) if path is not None else origin
    if where is not None and line is not None:
        where = f"{where}:{line}"
    if key is not None and text.startswith(f"{key} "):
        key = None  # "dataDir is not set" already names it
    parts = [p for p in (where, key) if p is not None]
    return ": ".join([*parts, text])


# ---------------------------------------------------------------------------------------------
# java.util.Properties syntax


@dataclass(frozen=True, slots=True)
class PropertyEntry:
    """One ``key=value`` of a properties file, unescaped but not trimmed (as Properties has it)."""

    key: str
    value: str
    line: int  # physical line (1-based) where the logical line starts


_BLANKS = " \t\f"  # what Properties skips before a line and around the separator
_EOL = "\r\n"


def java_trim(text: str) -> str:
    """``String.trim()``: drop every character <= U+0020 (not Unicode spaces) at both ends."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def parse_properties(text: str, *, path: Path | str | None = None) -> list[PropertyEntry]:
    """Parse ``text`` like ``java.util.Properties.load`` does; every entry in file order.

    Duplicates are all returned (the caller decides; Properties keeps the last). Raises
    :class:`ConfigError` on a malformed ``\\uXXXX`` escape, which Java refuses too.
    """
    starts = _line_starts(text)
    entries = []
    for offset, logical in _logical_lines(text):
        line = bisect_right(starts, offset)
        raw_key, raw_value = _split_key_value(logical)
        try:
            key, value = _unescape(raw_key), _unescape(raw_value)
        except ValueError as e:
            raise ConfigError(str(e), key=_unescape_lenient(raw_key), line=line, path=path) from None
        entries.append(PropertyEntry(key, value, line))
    return entries


def _line_starts(text: str) -> list[int]:
    """Offsets where physical lines begin; \\r\\n, \\r and \\n each end a line."""
    return [0, *(m.end() for m in re.finditer(r"\r\n|\r|\n", text))]


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (offset of first character, logical line) as Properties' LineReader forms them.

    Blank and comment lines vanish; a line ending in an odd number of backslashes continues on
    the next physical line with that line's leading blanks dropped. The quirks follow the JDK:
    an empty line after a continuation ends the logical line, and a continuation that leaves
    nothing yet (a lone ``\\``) lets the next line still be a comment.
    """
    n = len(text)
    i = 0
    while True:
        buf: list[str] = []
        first = -1
        skip_blanks = True
        joined = False  # just continued: a line break now ends the logical line
        odd_backslashes = False
        while True:
            if i >= n:
                if buf:
                    yield first, "".join(buf[:-1] if odd_backslashes else buf)
                return
            c = text[i]
            i += 1
            if skip_blanks:
                if c in _BLANKS:
                    continue
                if not joined and c in _EOL:
                    continue
                skip_blanks = joined = False
            if not buf and c in "#!":
                while i < n and text[i] not in _EOL:
                    i += 1
                skip_blanks = True
                continue
            if c not in _EOL:
                if not buf:
                    first = i - 1
                buf.append(c)
                odd_backslashes = c == "\\" and not odd_backslashes
                continue
            if not buf:
                skip_blanks = True
                continue
            if i >= n:
                yield first, "".join(buf[:-1] if odd_backslashes else buf)
                return
            if not odd_backslashes:
                break
            buf.pop()
            skip_blanks = joined = True
            odd_backslashes = False
            if c == "\r" and text[i] == "\n":
                i += 1
        yield first, "".join(buf)


def _split_key_value(line: str) -> tuple[str, str]:
    """Split at the first unescaped ``=``, ``:`` or blank; blanks and one separator around it go."""
    n = len(line)
    end = 0
    value_at = n
    separator_seen = False
    escaped = False
    while end < n:
        c = line[end]
        if not escaped and c in "=:":
            value_at, separator_seen = end + 1, True
            break
        if not escaped and c in _BLANKS:
            value_at = end + 1
            break
        escaped = c == "\\" and not escaped
        end += 1
    while value_at < n:
        c = line[value_at]
        if c not in _BLANKS:
            if separator_seen or c not in "=:":
                break
            separator_seen = True
        value_at += 1
    return line[:end], line[value_at:]


_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "f": "\f"}
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if c != "\\" or i >= n:
            out.append(c)
            continue
        c = text[i]
        i += 1
        if c == "u":
            digits = text[i:i + 4]
            if not _HEX4.fullmatch(digits):
                raise ValueError("malformed \\uxxxx escape " + repr("\\u" + digits))
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append(_ESCAPES.get(c, c))
    joined = "".join(out)
    # Java strings are UTF-16: an escaped surrogate pair is one character there, so join pairs.
    return joined.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _unescape_lenient(text: str) -> str:
    try:
        return _unescape(text)
    except ValueError:
        return text


def parse_jvm_flags(text: str) -> dict[str, str]:
    """The ``-Dname=value`` words of a ``JVMFLAGS``-style string, later ones winning.

    ``zkServer.sh`` expands the variable unquoted, so the shell splits it at spaces, tabs and
    newlines and leaves quotes in place; ``-Dname`` alone defines ``name`` as the empty string,
    as the java launcher does. Other words (``-Xmx512m``, ...) are not properties.
    """
    props: dict[str, str] = {}
    for word in re.split(r"[ \t\n]+", text):
        if not word.startswith("-D"):
            continue
        name, _, value = word[2:].partition("=")
        if name:
            props[name] = value
    return props


# ---------------------------------------------------------------------------------------------
# Java value syntaxes


class _Kind(NamedTuple):
    """How ZooKeeper reads one value: what we call it in errors, and a parser (ValueError)."""

    expected: str
    parse: Callable[[str], object]


_DECIMAL = re.compile(r"[+-]?[0-9]+")
_HEX_NUMBER = re.compile(r"[+-]?[0-9a-fA-F]{1,16}")
_RADIX_DIGITS = {16: re.compile(r"[0-9a-fA-F]+"), 10: re.compile(r"[0-9]+"), 8: re.compile(r"[0-7]+")}
_FLOAT = re.compile(r"[+-]?(NaN|Infinity|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)[fFdD]?")


def _in_range(value: int, bits: int) -> int:
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise ValueError("out of range")
    return value


def _parse_int(bits: int) -> Callable[[str], int]:
    """``Integer.parseInt``/``Long.parseLong``: optional sign, ASCII decimal digits."""
    def parse(text: str) -> int:
        if not _DECIMAL.fullmatch(text):
            raise ValueError(text)
        return _in_range(int(text), bits)
    return parse


def _decode_radix(text: str) -> int:
    """The radix ``Integer.decode`` would use for ``text`` (16 for 0x/#, 8 for a leading 0)."""
    body = text[1:] if text[:1] in "+-" else text
    if body[:2] in ("0x", "0X") or body[:1] == "#":
        return 16
    return 8 if body[:1] == "0" and len(body) > 1 else 10


def _decode(bits: int) -> Callable[[str], int]:
    """``Integer.decode``/``Long.decode``, what ``Integer.getInteger`` and ``Long.getLong`` use."""
    def parse(text: str) -> int:
        negative = text[:1] == "-"
        body = text[1:] if text[:1] in "+-" else text
        radix = _decode_radix(text)
        digits = body[2:] if body[:2] in ("0x", "0X") else body[1:] if radix != 10 else body
        if not _RADIX_DIGITS[radix].fullmatch(digits):
            raise ValueError(text)
        value = int(digits, radix)
        return _in_range(-value if negative else value, bits)
    return parse


def _parse_double(text: str) -> float:
    """``Double.parseDouble`` for decimal notation (it trims first; hex floats are not taken)."""
    text = java_trim(text)
    if not _FLOAT.fullmatch(text):
        raise ValueError(text)
    return float(text.rstrip("fFdD"))


def _parse_bool(text: str) -> bool:
    """``true``/``false`` in any case. ZooKeeper's ``Boolean.getBoolean``/``parseBoolean`` read
    every other word as false; QuorumPeerConfig refuses it. We refuse it everywhere."""
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ValueError(text)
    return lowered == "true"


def _exact_words(true_word: str, false_word: str) -> Callable[[str], bool]:
    """Settings ZooKeeper compares case-sensitively with ``String.equals``; any other spelling
    would silently mean the opposite of one of the two, so only the two exact words pass."""
    def parse(text: str) -> bool:
        if text not in (true_word, false_word):
            raise ValueError(text)
        return text == true_word
    return parse


def _port(parse_int: Callable[[str], int]) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = parse_int(text)
        if not 0 <= value <= 65535:
            raise ValueError("port out of range")
        return value
    return parse


def _compression(text: str) -> str:
    """SnapStream.StreamMode.fromString, minus its silent fallback to no compression."""
    lowered = text.lower()
    if lowered not in ("", "gz", "snappy"):
        raise ValueError(text)
    return lowered


INT = _Kind("an integer", _parse_int(32))
LONG = _Kind("an integer", _parse_int(64))
DECODE_INT = _Kind("an integer", _decode(32))
DECODE_LONG = _Kind("an integer", _decode(64))
PORT = _Kind("a port number (0-65535)", _port(_parse_int(32)))
DECODE_PORT = _Kind("a port number (0-65535)", _port(_decode(32)))
DOUBLE = _Kind("a number", _parse_double)
BOOL = _Kind("'true' or 'false'", _parse_bool)
YES_NO = _Kind("'yes' or 'no' (lower case, as ZooKeeper compares it)", _exact_words("yes", "no"))
TRUE_FALSE = _Kind("'true' or 'false' (lower case, as ZooKeeper compares it)", _exact_words("true", "false"))
TEXT = _Kind("text", str)
COMPRESSION = _Kind("'', 'gz' or 'snappy'", _compression)


# ---------------------------------------------------------------------------------------------
# What ZooKeeper 3.8 reads


class _Prop(NamedTuple):
    kind: _Kind
    default: object


# Keys QuorumPeerConfig.parseProperties reads itself; any other key k becomes "zookeeper." + k.
_DIRECT_KEYS: dict[str, _Kind] = {
    "dataDir": TEXT, "dataLogDir": TEXT, "clientPort": PORT, "clientPortAddress": TEXT,
    "secureClientPort": PORT, "secureClientPortAddress": TEXT, "observerMasterPort": INT,
    "clientPortListenBacklog": INT, "tickTime": INT, "maxClientCnxns": INT,
    "minSessionTimeout": INT, "maxSessionTimeout": INT, "localSessionsEnabled": BOOL,
    "localSessionsUpgradingEnabled": BOOL, "initLimit": INT, "syncLimit": INT,
    "connectToLearnerMasterLimit": INT, "electionAlg": INT, "quorumListenOnAllIPs": BOOL,
    "peerType": TEXT, "syncEnabled": BOOL, "dynamicConfigFile": TEXT,
    "autopurge.snapRetainCount": INT, "autopurge.purgeInterval": INT, "standaloneEnabled": BOOL,
    "reconfigEnabled": BOOL, "sslQuorum": BOOL, "portUnification": BOOL,
    "sslQuorumReloadCertFiles": BOOL, "quorum.auth.enableSasl": BOOL,
    "quorum.auth.serverRequireSasl": BOOL, "quorum.auth.learnerRequireSasl": BOOL,
    "quorum.auth.learner.saslLoginContext": TEXT, "quorum.auth.server.saslLoginContext": TEXT,
    "quorum.auth.kerberos.servicePrincipal": TEXT, "quorum.cnxn.threads.size": INT,
    "jvm.pause.info-threshold.ms": LONG, "jvm.pause.warn-threshold.ms": LONG,
    "jvm.pause.sleep.time.ms": LONG, "jvm.pause.monitor": BOOL, "metricsProvider.className": TEXT,
    "multiAddress.enabled": BOOL, "multiAddress.reachabilityCheckTimeoutMs": INT,
    "multiAddress.reachabilityCheckEnabled": BOOL, "oraclePath": TEXT,
}
_METRICS_PREFIX = "metricsProvider."
_SYS_PREFIX = "zookeeper."

# System properties the ZooKeeper 3.8 server reads, with the parse it applies and its default.
_PROPERTIES: dict[str, _Prop] = {
    # four-letter words, features, limits
    "zookeeper.4lw.commands.whitelist": _Prop(TEXT, None),
    "zookeeper.extendedTypesEnabled": _Prop(BOOL, False),
    "zookeeper.emulate353TTLNodes": _Prop(BOOL, False),
    "readonlymode.enabled": _Prop(BOOL, False),
    "jute.maxbuffer": _Prop(DECODE_INT, 0xFFFFF),
    "zookeeper.jute.maxbuffer.extrasize": _Prop(DECODE_INT, None),  # None: same as jute.maxbuffer
    "znode.container.checkIntervalMs": _Prop(DECODE_INT, 60_000),
    "znode.container.maxPerMinute": _Prop(DECODE_INT, 10_000),
    "znode.container.maxNeverUsedIntervalMs": _Prop(DECODE_LONG, 0),
    "zookeeper.globalOutstandingLimit": _Prop(DECODE_INT, 1000),
    "zookeeper.maxCnxns": _Prop(DECODE_INT, 0),
    "zookeeper.enforceQuota": _Prop(BOOL, False),
    "zookeeper.closeSessionTxn.enabled": _Prop(BOOL, True),
    "zookeeper.serverCnxnFactory": _Prop(TEXT, None),  # NIO vs Netty: accepted, zkpy has one
    "zookeeper.clientTcpKeepAlive": _Prop(BOOL, False),
    "zookeeper.client.portUnification": _Prop(BOOL, False),
    "zookeeper.watchManagerName": _Prop(TEXT, None),
    "zookeeper.watcherCleanThreshold": _Prop(DECODE_INT, 1000),
    "zookeeper.watcherCleanIntervalInSeconds": _Prop(DECODE_INT, 600),
    "zookeeper.watcherCleanThreadsNum": _Prop(DECODE_INT, 2),
    "zookeeper.maxInProcessingDeadWatchers": _Prop(DECODE_INT, -1),
    "zookeeper.bitHashCacheSize": _Prop(DECODE_INT, 10),
    # storage
    "zookeeper.snapCount": _Prop(DECODE_INT, 100_000),
    "zookeeper.snapSizeLimitInKb": _Prop(DECODE_LONG, 4_194_304),
    "zookeeper.txnLogSizeLimitInKb": _Prop(DECODE_LONG, -1),
    "zookeeper.preAllocSize": _Prop(LONG, 65_536),
    "zookeeper.forceSync": _Prop(YES_NO, True),
    "zookeeper.fsync.warningthresholdms": _Prop(DECODE_LONG, None),
    "fsync.warningthresholdms": _Prop(DECODE_LONG, 1000),
    "zookeeper.commitLogCount": _Prop(INT, 500),
    "zookeeper.snapshotSizeFactor": _Prop(DOUBLE, 0.33),
    "zookeeper.snapshot.compression.method": _Prop(COMPRESSION, ""),
    "zookeeper.snapshot.trust.empty": _Prop(BOOL, False),
    "zookeeper.datadir.autocreate": _Prop(BOOL, True),
    "zookeeper.db.autocreate": _Prop(BOOL, True),
    "zookeeper.digest.enabled": _Prop(BOOL, True),
    # request pipeline
    "zookeeper.maxBatchSize": _Prop(DECODE_INT, 1000),
    "zookeeper.flushDelay": _Prop(DECODE_LONG, 0),
    "zookeeper.maxWriteQueuePollTime": _Prop(DECODE_LONG, None),  # None: flushDelay / 3
    "zookeeper.request_throttle_max_requests": _Prop(DECODE_INT, 0),
    "zookeeper.request_throttle_stall_time": _Prop(DECODE_INT, 100),
    "zookeeper.request_throttle_drop_stale": _Prop(BOOL, True),
    "zookeeper.request_stale_latency_check": _Prop(BOOL, False),
    "zookeeper.request_stale_connection_check": _Prop(BOOL, True),
    "zookeeper.request_throttler.shutdownTimeout": _Prop(DECODE_INT, 10_000),
    "zookeeper.throttled_op_wait_time": _Prop(DECODE_INT, 0),
    "zookeeper.largeRequestMaxBytes": _Prop(DECODE_INT, 100 * 1024 * 1024),
    "zookeeper.largeRequestThreshold": _Prop(DECODE_INT, -1),
    "zookeeper.maxResponseCacheSize": _Prop(DECODE_INT, 400),
    "zookeeper.maxGetChildrenResponseCacheSize": _Prop(DECODE_INT, 400),
    "zookeeper.intBufferStartingSizeBytes": _Prop(DECODE_INT, 1024),
    "zookeeper.enableEagerACLCheck": _Prop(BOOL, False),
    "zookeeper.nio.numSelectorThreads": _Prop(DECODE_INT, None),
    "zookeeper.nio.numWorkerThreads": _Prop(DECODE_INT, None),
    "zookeeper.nio.directBufferBytes": _Prop(DECODE_INT, 64 * 1024),
    "zookeeper.nio.sessionlessCnxnTimeout": _Prop(DECODE_INT, 10_000),
    "zookeeper.nio.shutdownTimeout": _Prop(DECODE_LONG, 5000),
    "zookeeper.commitProcessor.numWorkerThreads": _Prop(DECODE_INT, None),
    "zookeeper.commitProcessor.shutdownTimeout": _Prop(DECODE_LONG, 5000),
    "zookeeper.commitProcessor.maxReadBatchSize": _Prop(DECODE_INT, -1),
    "zookeeper.commitProcessor.maxCommitBatchSize": _Prop(DECODE_INT, 1),
    "zookeeper.netty.advancedFlowControl.enabled": _Prop(BOOL, False),
    "zookeeper.netty.server.outstandingHandshake.limit": _Prop(DECODE_INT, -1),
    "zookeeper.netty.server.earlyDropSecureConnectionHandshakes": _Prop(BOOL, False),
    "zookeeper.connection_throttle_tokens": _Prop(DECODE_INT, 0),
    "zookeeper.connection_throttle_fill_time": _Prop(DECODE_INT, 1),
    "zookeeper.connection_throttle_fill_count": _Prop(DECODE_INT, 1),
    "zookeeper.connection_throttle_freeze_time": _Prop(DECODE_INT, -1),
    "zookeeper.connection_throttle_drop_increase": _Prop(DOUBLE, 0.02),
    "zookeeper.connection_throttle_drop_decrease": _Prop(DOUBLE, 0.002),
    "zookeeper.connection_throttle_decrease_ratio": _Prop(DOUBLE, 0.0),
    "zookeeper.connection_throttle_weight_enabled": _Prop(BOOL, False),
    "zookeeper.connection_throttle_global_session_weight": _Prop(DECODE_INT, 3),
    "zookeeper.connection_throttle_local_session_weight": _Prop(DECODE_INT, 1),
    "zookeeper.connection_throttle_renew_session_weight": _Prop(DECODE_INT, 2),
    # authentication and ACLs
    "zookeeper.skipACL": _Prop(YES_NO, False),
    "zookeeper.DigestAuthenticationProvider.superDigest": _Prop(TEXT, None),
    "zookeeper.DigestAuthenticationProvider.enabled": _Prop(BOOL, True),
    "zookeeper.DigestAuthenticationProvider.digestAlg": _Prop(TEXT, "SHA1"),
    "zookeeper.X509AuthenticationProvider.superUser": _Prop(TEXT, None),
    "zookeeper.SASLAuthenticationProvider.superPassword": _Prop(TEXT, None),
    "zookeeper.superUser": _Prop(TEXT, None),
    "zookeeper.allowSaslFailedClients": _Prop(BOOL, False),
    "zookeeper.sessionRequireClientSASLAuth": _Prop(BOOL, False),
    "zookeeper.enforce.auth.enabled": _Prop(BOOL, False),
    "zookeeper.enforce.auth.schemes": _Prop(TEXT, None),
    "zookeeper.ensembleAuthName": _Prop(TEXT, None),
    "zookeeper.letAnySaslUserDoX": _Prop(TEXT, None),
    "zookeeper.requireKerberosConfig": _Prop(TEXT, None),
    "zookeeper.security.auth_to_local": _Prop(TEXT, "DEFAULT"),
    "zookeeper.kerberos.canonicalizeHostNames": _Prop(BOOL, False),
    "zookeeper.kerberos.removeHostFromPrincipal": _Prop(BOOL, False),
    "zookeeper.kerberos.removeRealmFromPrincipal": _Prop(BOOL, False),
    "zookeeper.sasl.serverconfig": _Prop(TEXT, "Server"),
    "zookeeper.server.realm": _Prop(TEXT, None),
    "zookeeper.server.principal": _Prop(TEXT, None),
    "zookeeper.kinit": _Prop(TEXT, None),
    "zookeeper.audit.enable": _Prop(BOOL, False),
    "zookeeper.audit.impl.class": _Prop(TEXT, None),
    # admin server
    "zookeeper.admin.enableServer": _Prop(TRUE_FALSE, True),
    "zookeeper.admin.serverAddress": _Prop(TEXT, "0.0.0.0"),
    "zookeeper.admin.serverPort": _Prop(DECODE_PORT, 8080),
    "zookeeper.admin.idleTimeout": _Prop(DECODE_INT, 30_000),
    "zookeeper.admin.commandURL": _Prop(TEXT, "/commands"),
    "zookeeper.admin.httpVersion": _Prop(DECODE_INT, 11),
    "zookeeper.admin.portUnification": _Prop(BOOL, False),
    "zookeeper.admin.forceHttps": _Prop(BOOL, False),
    # ensemble
    "zookeeper.leaderServes": _Prop(YES_NO, True),
    "zookeeper.observer.syncEnabled": _Prop(BOOL, None),  # None: the zoo.cfg syncEnabled key
    "zookeeper.multiAddress.enabled": _Prop(BOOL, False),
    "zookeeper.multiAddress.reachabilityCheckEnabled": _Prop(BOOL, True),
    "zookeeper.multiAddress.reachabilityCheckTimeoutMs": _Prop(INT, 1000),
    "zookeeper.tcpKeepAlive": _Prop(BOOL, False),
    "zookeeper.cnxTimeout": _Prop(INT, 5000),
    "zookeeper.quorumCnxnTimeoutMs": _Prop(DECODE_INT, -1),
    "zookeeper.electionPortBindRetry": _Prop(DECODE_INT, 3),
    "zookeeper.fastleader.minNotificationInterval": _Prop(DECODE_INT, 200),
    "zookeeper.fastleader.maxNotificationInterval": _Prop(DECODE_INT, 60_000),
    "zookeeper.observer.reconnectDelayMs": _Prop(DECODE_LONG, 0),
    "zookeeper.observer.election.DelayMs": _Prop(DECODE_LONG, 200),
    "zookeeper.observerMaster.sizeLimit": _Prop(DECODE_INT, None),
    "zookeeper.leader.maxConcurrentSnapSyncs": _Prop(DECODE_INT, 10),
    "zookeeper.leader.maxConcurrentDiffSyncs": _Prop(DECODE_INT, 100),
    "zookeeper.leader.maxTimeToWaitForEpoch": _Prop(DECODE_INT, -1),
    "zookeeper.leader.ackLoggingFrequency": _Prop(DECODE_INT, 1000),
    "zookeeper.leaderConnectDelayDuringRetryMs": _Prop(DECODE_INT, 100),
    "zookeeper.leader.closeSocketAsync": _Prop(BOOL, None),
    "leader.closeSocketAsync": _Prop(BOOL, False),
    "zookeeper.learner.closeSocketAsync": _Prop(BOOL, None),
    "learner.closeSocketAsync": _Prop(BOOL, False),
    "zookeeper.learner.asyncSending": _Prop(BOOL, None),
    "learner.asyncSending": _Prop(BOOL, False),
    "zookeeper.forward_learner_requests_to_commit_processor_disabled": _Prop(BOOL, False),
    "zookeeper.follower.skipLearnerRequestToNextProcessor": _Prop(BOOL, False),
    "zookeeper.forceSnapshotSync": _Prop(BOOL, False),
    "follower.nodelay": _Prop(TRUE_FALSE, True),
    "leader.nodelay": _Prop(TRUE_FALSE, True),
    "zookeeper.testingonly.initialZxid": _Prop(TEXT, None),
    # debugging and observability
    "zookeeper.messageTracker.BufferSize": _Prop(DECODE_INT, 10),
    "zookeeper.messageTracker.Enabled": _Prop(BOOL, False),
    "zookeeper.pathStats.enabled": _Prop(BOOL, False),
    "zookeeper.pathStats.topPathMax": _Prop(DECODE_INT, 20),
    "zookeeper.pathStats.slotDuration": _Prop(DECODE_INT, 15),
    "zookeeper.pathStats.slotCapacity": _Prop(DECODE_INT, 60),
    "zookeeper.pathStats.maxDepth": _Prop(DECODE_INT, 6),
    "zookeeper.pathStats.sampleRate": _Prop(DOUBLE, 0.1),
    "zookeeper.pathStats.initialDelay": _Prop(DECODE_LONG, 5),
    "zookeeper.pathStats.delay": _Prop(DECODE_LONG, 5),
    "zookeeper.jmx.log4j.disable": _Prop(BOOL, False),
    "zookeeper.jmx.log4j.mbean": _Prop(TEXT, None),
    # read by bin/zkServer.sh, conf/logback.xml and the client library, not the server proper
    **{name: _Prop(TEXT, None) for name in (
        "zookeeper.log.dir", "zookeeper.log.file", "zookeeper.log.threshold",
        "zookeeper.log.maxfilesize", "zookeeper.log.maxbackupindex", "zookeeper.console.threshold",
        "zookeeper.tracelog.dir", "zookeeper.tracelog.file", "zookeeper.root.logger",
        "zookeeper.auditlog.file", "zookeeper.auditlog.threshold", "zookeeper.clientCnxnSocket",
        "zookeeper.client.secure", "zookeeper.request.timeout", "zookeeper.disableAutoWatchReset",
        "zookeeper.sasl.client", "zookeeper.sasl.clientconfig", "zookeeper.sasl.client.username",
        "zookeeper.sasl.client.canonicalize.hostname", "zookeeper.configuration",
        "zookeeper.controllerPort", "zookeeper.clientPortAddress", "zookeeper.version",
    )},
}

# Families of names: any suffix is read (auth providers, TLS settings, super users) or is how
# QuorumPeerConfig stores the zoo.cfg quorum keys (server.N, group.N, weight.N).
_PROPERTY_PREFIXES = ("zookeeper.authProvider.", "zookeeper.ssl.", "zookeeper.superUser.",
                      "zookeeper.server.", "zookeeper.group", "zookeeper.weight")

# Names from zookeeperAdmin.md that are not what ZooKeeper reads: zoo.cfg `connectionMaxTokens`
# becomes zookeeper.connectionMaxTokens, which nothing reads.
_DOC_ALIASES = {
    "connectionMaxTokens": "zookeeper.connection_throttle_tokens",
    "connectionTokenFillTime": "zookeeper.connection_throttle_fill_time",
    "connectionTokenFillCount": "zookeeper.connection_throttle_fill_count",
    "connectionFreezeTime": "zookeeper.connection_throttle_freeze_time",
    "connectionDropIncrease": "zookeeper.connection_throttle_drop_increase",
    "connectionDropDecrease": "zookeeper.connection_throttle_drop_decrease",
    "connectionDecreaseRatio": "zookeeper.connection_throttle_decrease_ratio",
    "requestThrottleLimit": "zookeeper.request_throttle_max_requests",
    "requestThrottleStallTime": "zookeeper.request_throttle_stall_time",
    "requestThrottleDropStale": "zookeeper.request_throttle_drop_stale",
    "requestStaleLatencyCheck": "zookeeper.request_stale_latency_check",
    "requestStaleConnectionCheck": "zookeeper.request_stale_connection_check",
    "advancedFlowControlEnabled": "zookeeper.netty.advancedFlowControl.enabled",
    "maxConcurrentSnapSyncs": "zookeeper.leader.maxConcurrentSnapSyncs",
    "maxConcurrentDiffSyncs": "zookeeper.leader.maxConcurrentDiffSyncs",
    "maxTimeToWaitForEpoch": "zookeeper.leader.maxTimeToWaitForEpoch",
    "throttledOpWaitTime": "zookeeper.throttled_op_wait_time",
    "outstandingHandshake.limit": "zookeeper.netty.server.outstandingHandshake.limit",
}


def is_known_property(name: str) -> bool:
    """Whether the ZooKeeper 3.8 server (or its scripts) reads the system property ``name``."""
    return name in _PROPERTIES or name.startswith(_PROPERTY_PREFIXES)


# ---------------------------------------------------------------------------------------------
# The result


class PeerAddress(NamedTuple):
    """One ``host:quorumPort:electionPort`` of a server.N line (there may be several, ``|``)."""

    host: str
    quorum_port: int
    election_port: int


@dataclass(frozen=True, slots=True)
class QuorumServerSpec:
    """A ``server.N=host:quorumPort:electionPort[:type][;[clientHost:]clientPort]`` line."""

    sid: int
    addresses: tuple[PeerAddress, ...]
    peer_type: PeerType = "participant"
    client_host: str | None = None  # None when the line has no client part
    client_port: int | None = None

    @property
    def host(self) -> str:
        return self.addresses[0].host

    @property
    def quorum_port(self) -> int:
        return self.addresses[0].quorum_port

    @property
    def election_port(self) -> int:
        return self.addresses[0].election_port

    def __str__(self) -> str:
        """The line as ZooKeeper writes it back (``conf``'s membership, dynamic config files)."""
        ordered = sorted(self.addresses, key=lambda a: a.host)
        text = "|".join(f"{_bracket(a.host)}:{a.quorum_port}:{a.election_port}" for a in ordered)
        text += f":{self.peer_type}"
        if self.client_port is not None:
            text += f";{_bracket(self.client_host or '0.0.0.0')}:{self.client_port}"
        return text


def _is_distributed(servers: Mapping[int, QuorumServerSpec], standalone_enabled: bool) -> bool:
    participants = sum(1 for s in servers.values() if s.peer_type == "participant")
    return bool(servers) and (not standalone_enabled or participants > 1)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a ZooKeeper 3.8 server reads at start-up, typed and with units in the names.

    Immutable: derive variants with ``dataclasses.replace``. ``system_properties`` holds every
    system property the JVM would have (from ``-D`` flags and zoo.cfg), for settings without a
    field here; :meth:`property` reads one the way ZooKeeper does.
    """

    source: Path | None = None
    # clients
    client_port: int = DEFAULT_CLIENT_PORT
    client_port_address: str = DEFAULT_HOST
    secure_client_port: int | None = None
    secure_client_port_address: str | None = None
    client_port_listen_backlog: int = -1  # -1: the OS default
    max_client_cnxns: int = DEFAULT_MAX_CLIENT_CNXNS  # per client IP; 0 = unlimited
    max_cnxns: int = 0  # per client port in total; 0 = unlimited
    port_unification: bool = False
    client_tcp_keep_alive: bool = False
    # time and sessions
    tick_time_ms: int = DEFAULT_TICK_TIME_MS
    min_session_timeout_ms: int = 2 * DEFAULT_TICK_TIME_MS
    max_session_timeout_ms: int = 20 * DEFAULT_TICK_TIME_MS
    local_sessions_enabled: bool = False
    local_sessions_upgrading_enabled: bool = False
    close_session_txn_enabled: bool = True
    # storage
    data_dir: Path = DEFAULT_DATA_DIR
    data_log_dir: Path = DEFAULT_DATA_DIR
    snap_count: int = 100_000
    snap_size_limit_kb: int = 4_194_304  # <= 0 disables the size trigger
    txn_log_size_limit_kb: int = -1  # <= 0: no limit
    pre_alloc_size_kb: int = 65_536
    force_sync: bool = True
    fsync_warning_threshold_ms: int = 1000
    autopurge_snap_retain_count: int = MIN_SNAP_RETAIN_COUNT
    autopurge_purge_interval_hours: int = 0  # 0: no automatic purge
    snapshot_compression_method: str = ""  # "", "gz" or "snappy"
    snapshot_trust_empty: bool = False
    snapshot_size_factor: float = 0.33
    commit_log_count: int = 500
    datadir_autocreate: bool = True
    db_autocreate: bool = True
    digest_enabled: bool = True
    # requests
    global_outstanding_limit: int = 1000
    jute_max_buffer: int = 0xFFFFF
    jute_max_buffer_extra_size: int = 0xFFFFF
    max_batch_size: int = 1000
    flush_delay_ms: int = 0
    max_write_queue_poll_time_ms: int = 0
    request_throttle_max_requests: int = 0
    request_throttle_stall_time_ms: int = 100
    request_throttle_drop_stale: bool = True
    request_stale_latency_check: bool = False
    request_stale_connection_check: bool = True
    throttled_op_wait_time_ms: int = 0
    large_request_max_bytes: int = 100 * 1024 * 1024
    large_request_threshold_bytes: int = -1  # -1: no request is large
    max_response_cache_size: int = 400
    max_get_children_response_cache_size: int = 400
    # features
    four_letter_words: frozenset[str] = frozenset({"srvr"})
    extended_types_enabled: bool = False
    emulate_353_ttl_nodes: bool = False
    container_check_interval_ms: int = 60_000
    container_max_per_minute: int = 10_000
    container_max_never_used_interval_ms: int = 0  # 0: never-used containers stay
    read_only_mode_enabled: bool = False
    enforce_quota: bool = False
    # authentication and ACLs
    skip_acl: bool = False
    super_digest: str | None = None
    digest_auth_enabled: bool = True
    digest_auth_algorithm: str = "SHA1"
    auth_providers: dict[str, str] = field(default_factory=dict)  # property suffix -> class
    enforce_auth_enabled: bool = False
    enforce_auth_schemes: tuple[str, ...] = ()
    session_require_client_sasl_auth: bool = False
    enable_eager_acl_check: bool = False
    audit_enabled: bool = False
    # admin server and metrics
    admin_enable_server: bool = True
    admin_server_address: str = DEFAULT_HOST  # "0.0.0.0" (ZooKeeper's default) once a zoo.cfg is read
    admin_server_port: int = 8080
    admin_idle_timeout_ms: int = 30_000
    admin_command_url: str = "/commands"
    admin_port_unification: bool = False
    admin_force_https: bool = False
    metrics_provider_class: str = DEFAULT_METRICS_PROVIDER
    metrics_provider_config: dict[str, str] = field(default_factory=dict)  # metricsProvider.* minus prefix
    metrics_http_host: str = "0.0.0.0"
    metrics_http_port: int = 7000
    metrics_export_jvm_info: bool = True
    # ensemble
    servers: dict[int, QuorumServerSpec] = field(default_factory=dict)
    groups: dict[int, tuple[int, ...]] = field(default_factory=dict)  # hierarchical quorums
    weights: dict[int, int] = field(default_factory=dict)
    config_version: int = 0
    my_id: int | None = None
    init_limit: int = 0  # ticks
    sync_limit: int = 0  # ticks
    connect_to_learner_master_limit: int = 0  # ticks; 0: initLimit
    election_alg: int = 3
    peer_type: PeerType = "participant"
    standalone_enabled: bool = True
    reconfig_enabled: bool = False
    leader_serves: bool = True
    sync_enabled: bool = True  # observers log and snapshot too
    observer_master_port: int | None = None
    quorum_listen_on_all_ips: bool = False
    dynamic_config_file: Path | None = None
    multi_address_enabled: bool = False
    multi_address_reachability_check_enabled: bool = True
    multi_address_reachability_check_timeout_ms: int = 1000
    ssl_quorum: bool = False
    ssl_quorum_reload_cert_files: bool = False
    quorum_sasl_enabled: bool = False
    quorum_server_require_sasl: bool = False
    quorum_learner_require_sasl: bool = False
    quorum_learner_login_context: str = "QuorumLearner"
    quorum_server_login_context: str = "QuorumServer"
    quorum_service_principal: str = "zkquorum/localhost"
    quorum_cnxn_threads_size: int = 0  # 0: ZooKeeper's default (20)
    oracle_path: Path | None = None
    # JVM pause monitor (accepted for compatibility)
    jvm_pause_monitor_enabled: bool = False
    jvm_pause_info_threshold_ms: int = 1000
    jvm_pause_warn_threshold_ms: int = 10_000
    jvm_pause_sleep_time_ms: int = 500
    # provenance
    system_properties: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def is_quorum(self) -> bool:
        """Whether ZooKeeper would run this as an ensemble member (``isDistributed``).

        A single participant ``server.N`` line (HBase writes one) still runs standalone unless
        ``standaloneEnabled=false``.
        """
        return _is_distributed(self.servers, self.standalone_enabled)

    def typed_property(self, name: str) -> object:
        """A system property as ZooKeeper reads it: parsed by its kind, or its default."""
        spec = _PROPERTIES.get(name)
        raw = self.system_properties.get(name)
        if spec is None:
            return raw
        return spec.default if raw is None else spec.kind.parse(raw)

    def describe(self, *, data_dir_size: int = 0, data_log_size: int = 0) -> list[tuple[str, str]]:
        """The ``conf`` four-letter word's lines as (key, value), in ZooKeeper 3.8's order.

        The sizes are the bytes in the snapshot and log directories, which only the running
        server knows. An ensemble member adds its quorum settings; the ``membership:`` block
        that follows them is :meth:`membership`.
        """
        pairs = [
            ("clientPort", str(self.client_port)),
            ("secureClientPort", str(self.secure_client_port if self.secure_client_port else -1)),
            ("dataDir", str((self.data_dir / "version-2").absolute())),
            ("dataDirSize", str(data_dir_size)),
            ("dataLogDir", str((self.data_log_dir / "version-2").absolute())),
            ("dataLogSize", str(data_log_size)),
            ("tickTime", str(self.tick_time_ms)),
            ("maxClientCnxns", str(self.max_client_cnxns)),
            ("minSessionTimeout", str(self.min_session_timeout_ms)),
            ("maxSessionTimeout", str(self.max_session_timeout_ms)),
            ("clientPortListenBacklog", str(self.client_port_listen_backlog)),
            ("serverId", str(self.my_id if self.is_quorum and self.my_id is not None else 0)),
        ]
        if self.is_quorum and self.my_id in self.servers:
            me = self.servers[self.my_id]
            pairs += [
                ("initLimit", str(self.init_limit)),
                ("syncLimit", str(self.sync_limit)),
                ("electionAlg", str(self.election_alg)),
                ("electionPort", "|".join(str(a.election_port) for a in me.addresses)),
                ("quorumPort", "|".join(str(a.quorum_port) for a in me.addresses)),
                ("peerType", "1" if self.peer_type == "observer" else "0"),  # LearnerType ordinal
            ]
        return pairs

    def membership(self) -> list[tuple[str, str]]:
        """The ensemble as ZooKeeper's QuorumVerifier prints it: server.N, group.N, weight.N
        (hierarchical quorums only) and the hex ``version``.

        ``conf`` on an ensemble member prints ``membership: `` and a newline after
        :meth:`describe`'s lines, then these as ``key=value`` lines, the last (``version``)
        without a newline."""
        lines = [(f"server.{sid}", str(self.servers[sid])) for sid in sorted(self.servers)]
        if self.groups:
            lines += [(f"group.{gid}", ":".join(map(str, members)))
                      for gid, members in sorted(self.groups.items())]
            lines += [(f"weight.{sid}", str(w)) for sid, w in sorted(self.weights.items())]
        lines.append(("version", f"{self.config_version:x}"))
        return lines


def default_config() -> ServerConfig:
    """``zkpy server`` without a file: standalone on 127.0.0.1:2181, data in ``./zkpy-data``,
    every other setting at ZooKeeper 3.8's default (tickTime 3000 ms, only ``srvr`` enabled).

    ``load_config(None, env)`` is the same plus the JVM flags in ``env``."""
    return load_config(None, env={})


def load_config(path: Path | None, env: Mapping[str, str] = os.environ) -> ServerConfig:
    """Read ``path`` (a zoo.cfg; None for none) and the JVM flags in ``env`` like ZooKeeper 3.8.

    Raises :class:`ConfigError` naming the key, line and file for anything ZooKeeper would
    refuse, and for values it would silently misread. Warnings (unknown keys, settings ZooKeeper
    would ignore or adjust) are logged and kept in ``ServerConfig.warnings``.
    """
    return _Loader(path, env).load()


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True, slots=True)
class _Setting:
    """A raw value and where it was set, so errors can point at it."""

    value: str
    key: str  # as the user wrote it: the zoo.cfg key, or the -D property name
    line: int | None = None
    path: Path | None = None
    origin: str | None = None  # e.g. "SERVER_JVMFLAGS"

    def error(self, reason: str) -> ConfigError:
        return ConfigError(reason, key=self.key, line=self.line, path=self.path, origin=self.origin)

    def where(self, text: str) -> str:
        return _located(text, key=self.key, line=self.line, path=self.path, origin=self.origin)


_UNSET_SERVER_ID = -1
_SERVER_LINE_FORM = ("expected host:quorumPort:electionPort[:participant|observer]"
                     "[;[clientHost:]clientPort], several host parts separated by '|'")


class _Loader:
    """One load: collects raw settings, then builds the config in QuorumPeerConfig's order."""

    def __init__(self, path: Path | None, env: Mapping[str, str]) -> None:
        self.path = Path(path) if path is not None else None
        self.env = env
        self.warnings: list[str] = []
        self.direct: dict[str, _Setting] = {}
        self.metrics: dict[str, _Setting] = {}
        self.quorum_keys: dict[str, _Setting] = {}  # server.N, group.N, weight.N, version
        self.props: dict[str, _Setting] = {}
        self.server_lines: dict[int, _Setting] = {}  # sid -> its server.N line, for messages

    def warn(self, text: str) -> None:
        if text in self.warnings:  # a value parsed twice must not warn twice
            return
        log.warning("%s", text)
        self.warnings.append(text)

    # -- sources ---------------------------------------------------------------------------

    def load(self) -> ServerConfig:
        self._read_jvm_flags()
        if self.path is None:
            # No file: the documented zkpy defaults, but -D flags still apply.
            self.direct["dataDir"] = _Setting(str(DEFAULT_DATA_DIR), "dataDir")
            self.direct["clientPort"] = _Setting(str(DEFAULT_CLIENT_PORT), "clientPort")
            self.direct["clientPortAddress"] = _Setting(DEFAULT_HOST, "clientPortAddress")
        else:
            self._read_file()
        cfg = self._build()
        if self.path is None and "zookeeper.admin.serverAddress" not in self.props:
            # Like the client port, the AdminServer stays on loopback when no file says otherwise.
            cfg = dataclasses.replace(cfg, admin_server_address=DEFAULT_HOST)
        return cfg

    def _read_jvm_flags(self) -> None:
        if self.env.get("ZOO_DATADIR_AUTOCREATE_DISABLE"):
            self.props["zookeeper.datadir.autocreate"] = _Setting(
                "false", "zookeeper.datadir.autocreate", origin="ZOO_DATADIR_AUTOCREATE_DISABLE")
        for var in ("SERVER_JVMFLAGS", "JVMFLAGS"):
            for name, value in parse_jvm_flags(self.env.get(var, "")).items():
                self.props[name] = _Setting(value, name, origin=var)
                if name.startswith(_SYS_PREFIX) and not is_known_property(name):
                    self.warn(self.props[name].where(
                        f"not a property ZooKeeper 3.8 reads; ignored{self._hint_for_property(name)}"))

    def _read_file(self) -> None:
        assert self.path is not None
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read the configuration file: {e.strerror or e}", path=self.path) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("iso-8859-1")
        seen: dict[str, _Setting] = {}
        raw_values: dict[str, str] = {}
        for entry in parse_properties(text, path=self.path):
            key, value = java_trim(entry.key), java_trim(entry.value)
            setting = _Setting(value, key, entry.line, self.path)
            if key in seen:
                self.warn(setting.where(f"set again; the value on line {seen[key].line} is ignored"))
            seen[key] = setting
            raw_values[key] = entry.value
        has_dynamic_file = "dynamicConfigFile" in seen
        for key, setting in seen.items():
            if key in _DIRECT_KEYS:
                self.direct[key] = setting
            elif key.startswith(_METRICS_PREFIX):
                self.metrics[key[len(_METRICS_PREFIX):]] = setting
            else:
                if key.startswith(("server.", "group", "weight")) or key == "version":
                    if has_dynamic_file and key != "version":
                        raise setting.error("must be in the dynamic config file (dynamicConfigFile is set)")
                    # The quorum parser sees the value untrimmed: trailing blanks are an error there.
                    self.quorum_keys[key] = dataclasses.replace(setting, value=raw_values[key])
                # QuorumPeerConfig's catch-all: System.setProperty("zookeeper." + key, value).
                name = _SYS_PREFIX + key
                self.props[name] = setting
                if key in _PROPERTIES and not key.startswith(_SYS_PREFIX) and not is_known_property(name):
                    # A property ZooKeeper reads only as -Dkey (jute.maxbuffer, znode.container.*,
                    # readonlymode.enabled, ...): zkpy honours it from zoo.cfg too, on purpose.
                    self.props[key] = setting
                    self.warn(setting.where(
                        f"honoured by zkpy; Apache ZooKeeper 3.8 reads {key} only as a JVM flag "
                        f"(-D{key}=... in SERVER_JVMFLAGS) and ignores it in zoo.cfg"))
                elif not is_known_property(name):
                    self.warn(setting.where(
                        f"unknown key; ZooKeeper 3.8 keeps it as system property {name}, which nothing "
                        f"reads{self._hint_for_key(key)}"))

    def _hint_for_key(self, key: str) -> str:
        if key in _DOC_ALIASES:
            alias = _DOC_ALIASES[key]
            return f" (ZooKeeper reads this setting as {alias[len(_SYS_PREFIX):]} in zoo.cfg or -D{alias})"
        if key.startswith(_SYS_PREFIX) and is_known_property(key):
            return f" (in zoo.cfg write {key[len(_SYS_PREFIX):]}: ZooKeeper adds the 'zookeeper.' itself)"
        if key in _PROPERTIES:
            return (f" (ZooKeeper reads {key} only as a JVM flag: add -D{key}=... to SERVER_JVMFLAGS;"
                    " in zoo.cfg it has no effect on ZooKeeper 3.8)")
        candidates = [*_DIRECT_KEYS, *(p[len(_SYS_PREFIX):] for p in _PROPERTIES if p.startswith(_SYS_PREFIX))]
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.8)
        return f" (did you mean {close[0]}?)" if close else ""

    def _hint_for_property(self, name: str) -> str:
        short = name[len(_SYS_PREFIX):]
        if short in _DIRECT_KEYS:
            return f" (set {short} in zoo.cfg instead)"
        close = difflib.get_close_matches(name, list(_PROPERTIES), n=1, cutoff=0.85)
        return f" (did you mean {close[0]}?)" if close else ""

    # -- typed access ----------------------------------------------------------------------

    def _typed(self, setting: _Setting, kind: _Kind) -> object:
        try:
            value = kind.parse(setting.value)
        except ValueError:
            raise setting.error(f"{setting.value!r} is not {kind.expected}") from None
        if any(kind is k for k in (DECODE_INT, DECODE_LONG, DECODE_PORT)) and _decode_radix(setting.value) == 8:
            self.warn(setting.where(f"{setting.value!r} has a leading zero, so ZooKeeper reads it "
                                    f"as octal: {value}"))
        return value

    def _direct(self, key: str, default: object = None) -> object:
        setting = self.direct.get(key)
        return default if setting is None else self._typed(setting, _DIRECT_KEYS[key])

    def _prop(self, name: str) -> object:
        setting = self.props.get(name)
        spec = _PROPERTIES[name]
        return spec.default if setting is None else self._typed(setting, spec.kind)

    def _check_all_properties(self) -> None:
        """Refuse any malformed value, even of a property zkpy has no use for yet: ZooKeeper
        would have ignored it silently, which is never what the operator meant."""
        for name, setting in self.props.items():
            spec = _PROPERTIES.get(name)
            if spec is not None:
                self._typed(setting, spec.kind)

    # -- building --------------------------------------------------------------------------

    def _build(self) -> ServerConfig:
        # Malformed values first, as QuorumPeerConfig's parse loop fails before its checks.
        for key in self.direct:
            self._direct(key)
        self._check_all_properties()
        fields: dict[str, object] = {"source": self.path}
        self._build_direct(fields)
        self._build_client_addresses(fields)
        self._build_sessions(fields)
        self._build_metrics(fields)
        self._build_quorum(fields)
        self._build_properties(fields)
        fields["system_properties"] = {name: s.value for name, s in self.props.items()}
        fields["warnings"] = self.warnings
        return ServerConfig(**fields)  # type: ignore[arg-type]

    def _build_direct(self, fields: dict[str, object]) -> None:
        simple = {
            "max_client_cnxns": ("maxClientCnxns", DEFAULT_MAX_CLIENT_CNXNS),
            "client_port_listen_backlog": ("clientPortListenBacklog", -1),
            "local_sessions_enabled": ("localSessionsEnabled", False),
            "local_sessions_upgrading_enabled": ("localSessionsUpgradingEnabled", False),
            "init_limit": ("initLimit", 0),
            "sync_limit": ("syncLimit", 0),
            "connect_to_learner_master_limit": ("connectToLearnerMasterLimit", 0),
            "quorum_listen_on_all_ips": ("quorumListenOnAllIPs", False),
            "autopurge_purge_interval_hours": ("autopurge.purgeInterval", 0),
            "standalone_enabled": ("standaloneEnabled", True),
            "reconfig_enabled": ("reconfigEnabled", False),
            "ssl_quorum": ("sslQuorum", False),
            "port_unification": ("portUnification", False),
            "ssl_quorum_reload_cert_files": ("sslQuorumReloadCertFiles", False),
            "quorum_sasl_enabled": ("quorum.auth.enableSasl", False),
            "quorum_server_require_sasl": ("quorum.auth.serverRequireSasl", False),
            "quorum_learner_require_sasl": ("quorum.auth.learnerRequireSasl", False),
            "quorum_learner_login_context": ("quorum.auth.learner.saslLoginContext", "QuorumLearner"),
            "quorum_server_login_context": ("quorum.auth.server.saslLoginContext", "QuorumServer"),
            "quorum_service_principal": ("quorum.auth.kerberos.servicePrincipal", "zkquorum/localhost"),
            "quorum_cnxn_threads_size": ("quorum.cnxn.threads.size", 0),
            "jvm_pause_info_threshold_ms": ("jvm.pause.info-threshold.ms", 1000),
            "jvm_pause_warn_threshold_ms": ("jvm.pause.warn-threshold.ms", 10_000),
            "jvm_pause_sleep_time_ms": ("jvm.pause.sleep.time.ms", 500),
            "jvm_pause_monitor_enabled": ("jvm.pause.monitor", False),
            "multi_address_enabled": ("multiAddress.enabled", False),
            "multi_address_reachability_check_timeout_ms": ("multiAddress.reachabilityCheckTimeoutMs", 1000),
            "multi_address_reachability_check_enabled": ("multiAddress.reachabilityCheckEnabled", True),
        }
        for name, (key, default) in simple.items():
            fields[name] = self._direct(key, default)

        election_alg = self._direct("electionAlg", 3)
        if election_alg != 3:
            raise self.direct["electionAlg"].error("only 3 (fast leader election over TCP) is supported")
        fields["election_alg"] = election_alg

        peer_type = self._direct("peerType", "participant")
        assert isinstance(peer_type, str)
        if peer_type.lower() not in ("participant", "observer"):
            raise self.direct["peerType"].error(f"{peer_type!r} is not 'participant' or 'observer'")
        fields["peer_type"] = peer_type.lower()

        for name, key in (("dynamic_config_file", "dynamicConfigFile"), ("oracle_path", "oraclePath")):
            fields[name] = Path(self.direct[key].value) if key in self.direct else None

        # QuorumPeerConfig refuses these combinations after reading every key.
        if not fields["quorum_sasl_enabled"]:
            for name, key in (("quorum_server_require_sasl", "quorum.auth.serverRequireSasl"),
                              ("quorum_learner_require_sasl", "quorum.auth.learnerRequireSasl")):
                if fields[name]:
                    raise self.direct[key].error("needs quorum.auth.enableSasl=true")
        if fields["quorum_server_require_sasl"] and not fields["quorum_learner_require_sasl"]:
            raise self.direct["quorum.auth.serverRequireSasl"].error(
                "needs quorum.auth.learnerRequireSasl=true (this server could not join otherwise)")

        retain = self._direct("autopurge.snapRetainCount", MIN_SNAP_RETAIN_COUNT)
        assert isinstance(retain, int)
        if retain < MIN_SNAP_RETAIN_COUNT:
            self.warn(self.direct["autopurge.snapRetainCount"].where(
                f"{retain} is below the minimum; using {MIN_SNAP_RETAIN_COUNT} as ZooKeeper does"))
            retain = MIN_SNAP_RETAIN_COUNT
        fields["autopurge_snap_retain_count"] = retain

        data_dir = self._path("dataDir")
        if data_dir is None:
            raise ConfigError("dataDir is not set", key="dataDir", path=self.path)
        fields["data_dir"] = data_dir
        fields["data_log_dir"] = self._path("dataLogDir") or data_dir

    def _path(self, key: str) -> Path | None:
        setting = self.direct.get(key)
        if setting is None:
            return None
        if not setting.value:
            raise setting.error("is empty")
        path = Path(setting.value)
        if not path.is_absolute() and not setting.value.startswith("./") and self.path is not None:
            self.warn(setting.where(f"{setting.value!r} is relative to the directory the server starts "
                                    "in; prepend ./ to show that is intended"))
        return path

    def _build_client_addresses(self, fields: dict[str, object]) -> None:
        # clientPort=0 is how ZooKeeper spells "not set".
        port = self._direct("clientPort", 0)
        address = self.direct["clientPortAddress"].value if "clientPortAddress" in self.direct else None
        if not port and address is not None:
            raise self.direct["clientPortAddress"].error("is set but clientPort is not set")
        fields["client_port"] = port or None
        fields["client_port_address"] = address if address is not None else "0.0.0.0"

        secure_port = self._direct("secureClientPort", 0)
        secure_address = (self.direct["secureClientPortAddress"].value
                          if "secureClientPortAddress" in self.direct else None)
        if not secure_port and secure_address is not None:
            raise self.direct["secureClientPortAddress"].error("is set but secureClientPort is not set")
        fields["secure_client_port"] = secure_port or None
        fields["secure_client_port_address"] = (secure_address or "0.0.0.0") if secure_port else None
        if secure_port:
            self._configure_ssl_auth()

        observer_master_port = self._direct("observerMasterPort", 0)
        assert isinstance(observer_master_port, int)
        if observer_master_port > 65535:
            raise self.direct["observerMasterPort"].error(f"{observer_master_port} is not {PORT.expected}")
        fields["observer_master_port"] = observer_master_port if observer_master_port > 0 else None

    def _configure_ssl_auth(self) -> None:
        """QuorumPeerConfig.configureSSLAuth: a secure port needs an X.509 auth provider."""
        scheme_setting = self.props.get("zookeeper.ssl.authProvider")
        scheme = scheme_setting.value if scheme_setting else "x509"
        provider = f"zookeeper.authProvider.{scheme}"
        if provider in self.props:
            return
        if scheme_setting is not None and scheme != "x509":
            raise scheme_setting.error(f"no auth provider is configured for the SSL scheme {scheme!r} "
                                       f"(set {provider})")
        self.props[provider] = _Setting("org.apache.zookeeper.server.auth.X509AuthenticationProvider",
                                        provider, origin="secureClientPort")

    def _build_sessions(self, fields: dict[str, object]) -> None:
        tick = self._direct("tickTime", DEFAULT_TICK_TIME_MS)
        assert isinstance(tick, int)
        if tick == 0:
            raise self.direct["tickTime"].error("tickTime is not set (0)")
        if tick < 0:
            # ZooKeeper would start and then time every session out at once.
            raise self.direct["tickTime"].error(f"{tick} is negative")
        fields["tick_time_ms"] = tick
        low = self._direct("minSessionTimeout", -1)
        high = self._direct("maxSessionTimeout", -1)
        assert isinstance(low, int) and isinstance(high, int)
        low = 2 * tick if low == -1 else low
        high = 20 * tick if high == -1 else high
        if low > high:
            blame = self.direct.get("minSessionTimeout") or self.direct.get("maxSessionTimeout") \
                or self.direct["tickTime"]
            raise blame.error(f"minSessionTimeout ({low} ms) must not be larger than "
                              f"maxSessionTimeout ({high} ms)")
        fields["min_session_timeout_ms"] = low
        fields["max_session_timeout_ms"] = high

    def _build_metrics(self, fields: dict[str, object]) -> None:
        cls = self._direct("metricsProvider.className", DEFAULT_METRICS_PROVIDER)
        if cls not in KNOWN_METRICS_PROVIDERS:
            raise self.direct["metricsProvider.className"].error(
                f"metrics provider class {cls!r} was not found (known: "
                f"{', '.join(sorted(KNOWN_METRICS_PROVIDERS))})")
        fields["metrics_provider_class"] = cls
        fields["metrics_provider_config"] = {k: s.value for k, s in self.metrics.items()}
        host, port, jvm_info = "0.0.0.0", 7000, True
        if cls == PROMETHEUS_METRICS_PROVIDER:
            # Only the Prometheus provider reads these; ZooKeeper leaves them alone otherwise.
            if "httpHost" in self.metrics:
                host = self.metrics["httpHost"].value
            if "httpPort" in self.metrics:
                port = self._typed(self.metrics["httpPort"], PORT)
            if "exportJvmInfo" in self.metrics:
                jvm_info = self._typed(self.metrics["exportJvmInfo"], BOOL)
        fields["metrics_http_host"] = host
        fields["metrics_http_port"] = port
        fields["metrics_export_jvm_info"] = jvm_info

    # -- the ensemble ----------------------------------------------------------------------

    def _build_quorum(self, fields: dict[str, object]) -> None:
        quorum_keys = self.quorum_keys
        dynamic_file = fields["dynamic_config_file"]
        if isinstance(dynamic_file, Path):
            quorum_keys = self._read_dynamic_file(dynamic_file)
        servers, groups, weights, version = self._parse_membership(quorum_keys)
        standalone_enabled = fields["standalone_enabled"]
        participants = [s for s in servers.values() if s.peer_type == "participant"]
        observers = [s for s in servers.values() if s.peer_type == "observer"]
        if not participants:
            if not standalone_enabled:
                raise self.direct["standaloneEnabled"].error(
                    "is false, so the configuration needs at least one participant server.N line")
            if observers:
                raise self.server_lines[observers[0].sid].error(
                    "observers without participants is an invalid configuration")
        elif len(participants) == 1 and standalone_enabled:
            if observers:
                raise self.server_lines[observers[0].sid].error(
                    "observers without a quorum is an invalid configuration")
            self.warn(self.server_lines[participants[0].sid].where(
                "the only server listed, so this runs standalone as ZooKeeper does"))
        elif len(participants) <= 2:
            self.warn(self.server_lines[participants[-1].sid].where(
                "no server failure will be tolerated; you need at least 3 servers"))
        elif len(participants) % 2 == 0:
            self.warn(self.server_lines[participants[-1].sid].where(
                "non-optimal configuration, consider an odd number of servers"))
        fields.update(servers=servers, groups=groups, weights=weights, config_version=version)

        my_id = self._read_my_id(fields["data_dir"])  # type: ignore[arg-type]
        fields["my_id"] = my_id
        self._setup_client_port(fields, servers, my_id)
        me = servers.get(my_id) if my_id is not None else None
        role = "observer" if me is not None and me.peer_type == "observer" else "participant"
        if role != fields["peer_type"]:
            where = self.direct["peerType"] if "peerType" in self.direct else None
            text = f"peerType {fields['peer_type']} does not match the server list ({role}); using {role}"
            self.warn(where.where(text) if where else text)
            fields["peer_type"] = role

        if _is_distributed(servers, bool(standalone_enabled)):
            for name, key in (("init_limit", "initLimit"), ("sync_limit", "syncLimit")):
                if fields[name] == 0:
                    raise ConfigError(f"{key} is not set (it is required with more than one server)",
                                      key=key, path=self.path, line=self._line_of(key))
            if my_id is None:
                raise ConfigError(f"myid file is missing: an ensemble member needs {fields['data_dir']}/myid "
                                  "holding its server number", key="myid", path=self.path)
            if my_id not in servers:
                listed = ", ".join(map(str, sorted(servers)))
                raise ConfigError(f"{my_id} is not one of the servers listed ({listed})", key="myid", line=1,
                                  path=Path(fields["data_dir"]) / "myid")  # type: ignore[arg-type]

    def _line_of(self, key: str) -> int | None:
        setting = self.direct.get(key)
        return setting.line if setting else None

    def _read_dynamic_file(self, path: Path) -> dict[str, _Setting]:
        try:
            text = path.read_bytes().decode("utf-8", "replace")
        except OSError as e:
            raise self.direct["dynamicConfigFile"].error(f"cannot read {str(path)!r}: {e.strerror or e}") from None
        keys: dict[str, _Setting] = {}
        for entry in parse_properties(text, path=path):
            key = java_trim(entry.key)
            setting = _Setting(entry.value, key, entry.line, path)
            if key == "version":
                raise setting.error("the dynamic config file must not contain a version (it is in the file name)")
            if not key.startswith(("server.", "group", "weight")):
                raise setting.error("unrecognised parameter in a dynamic config file")
            keys[key] = setting
        # ZooKeeper takes the version from the name: zoo.cfg.dynamic.100000000 is version 0x100000000.
        suffix = path.name.rpartition(".")[2]
        if _HEX_NUMBER.fullmatch(suffix):
            keys["version"] = _Setting(suffix, "version", None, path)
        return keys

    def _parse_membership(self, keys: dict[str, _Setting]) -> tuple[
            dict[int, QuorumServerSpec], dict[int, tuple[int, ...]], dict[int, int], int]:
        multi_address = self._prop("zookeeper.multiAddress.enabled")
        servers: dict[int, QuorumServerSpec] = {}
        groups: dict[int, tuple[int, ...]] = {}
        group_of: dict[int, int] = {}
        weights: dict[int, int] = {}
        version = 0
        hierarchical = False
        for key, setting in keys.items():
            if key.startswith("server."):
                sid = self._id(setting, key[len("server."):], "server")
                if sid in servers:
                    self.warn(setting.where(f"server {sid} is listed twice; this line wins"))
                servers[sid] = _parse_server_line(sid, setting, bool(multi_address))
                self.server_lines[sid] = setting
            elif key.startswith("group"):
                hierarchical = True
                gid = self._id(setting, key.partition(".")[2], "group")
                members = []
                for part in _java_split(setting.value, ":"):
                    sid = self._id(setting, part, "server")
                    if sid in group_of:
                        raise setting.error(f"server {sid} is in more than one group")
                    group_of[sid] = gid
                    members.append(sid)
                groups[gid] = tuple(members)
            elif key.startswith("weight"):
                hierarchical = True
                sid = self._id(setting, key.partition(".")[2], "server")
                try:
                    weights[sid] = int(_parse_int(64)(setting.value))
                except ValueError:
                    raise setting.error(f"{setting.value!r} is not an integer weight") from None
            elif key == "version":
                if not _HEX_NUMBER.fullmatch(setting.value):
                    raise setting.error(f"{setting.value!r} is not a hexadecimal version")
                version = int(setting.value, 16)
        if hierarchical:
            for spec in servers.values():
                if spec.peer_type != "participant":
                    continue
                if spec.sid not in group_of:
                    raise self.server_lines[spec.sid].error(f"server {spec.sid} is not in a group")
                weights.setdefault(spec.sid, 1)
        return servers, groups, weights, version

    @staticmethod
    def _id(setting: _Setting, text: str, what: str) -> int:
        try:
            value = _parse_int(64)(text)
        except ValueError:
            raise setting.error(f"{what} id {text!r} is not a number") from None
        if value < 0:
            raise setting.error(f"{what} id {value} is negative")
        return value

    def _read_my_id(self, data_dir: Path) -> int | None:
        """``dataDir/myid``: ZooKeeper parses its first line exactly as written, spaces included."""
        path = data_dir / "myid"
        if not path.is_file():
            return None
        try:
            text = path.read_bytes().decode("utf-8", "replace")
        except OSError as e:
            raise ConfigError(f"cannot read: {e.strerror or e}", key="myid", path=path) from None
        first = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
        try:
            sid = _parse_int(64)(first)
        except ValueError:
            raise ConfigError(f"{first!r} is not a number (ZooKeeper reads the first line as it is, so no "
                              "spaces)", key="myid", line=1, path=path) from None
        return None if sid == _UNSET_SERVER_ID else sid

    def _setup_client_port(self, fields: dict[str, object], servers: dict[int, QuorumServerSpec],
                           my_id: int | None) -> None:
        """The client address may come from this server's own server.N line (QuorumPeerConfig
        only looks there when myid names the server)."""
        me = servers.get(my_id) if my_id is not None else None
        if me is not None and me.client_port is not None:
            static_port = fields["client_port"]
            static_host = fields["client_port_address"]
            if static_port is not None:
                wildcard = static_host in ("0.0.0.0", "::", "0:0:0:0:0:0:0:0")
                same = static_port == me.client_port and (
                    wildcard or _same_host(str(static_host), str(me.client_host)))
                if not same:
                    raise self.direct["clientPort"].error(
                        f"this server's client address {static_host}:{static_port} differs from "
                        f"{me.client_host}:{me.client_port} in its server.{my_id} line")
            fields["client_port"] = me.client_port
            fields["client_port_address"] = me.client_host
        if fields["client_port"] is None:
            reason = "clientPort is not set"
            if fields["secure_client_port"] is not None:
                reason += " (zkpy serves plaintext clients only: secureClientPort alone is not enough)"
            elif servers:
                reason += " (nor a client port in this server's server.N line, which needs a myid file)"
            raise ConfigError(reason, key="clientPort", path=self.path)

    # -- system properties -----------------------------------------------------------------

    def _build_properties(self, fields: dict[str, object]) -> None:
        p = self._prop
        plain = {
            "extended_types_enabled": "zookeeper.extendedTypesEnabled",
            "emulate_353_ttl_nodes": "zookeeper.emulate353TTLNodes",
            "read_only_mode_enabled": "readonlymode.enabled",
            "jute_max_buffer": "jute.maxbuffer",
            "container_check_interval_ms": "znode.container.checkIntervalMs",
            "container_max_per_minute": "znode.container.maxPerMinute",
            "container_max_never_used_interval_ms": "znode.container.maxNeverUsedIntervalMs",
            "global_outstanding_limit": "zookeeper.globalOutstandingLimit",
            "enforce_quota": "zookeeper.enforceQuota",
            "close_session_txn_enabled": "zookeeper.closeSessionTxn.enabled",
            "client_tcp_keep_alive": "zookeeper.clientTcpKeepAlive",
            "snap_size_limit_kb": "zookeeper.snapSizeLimitInKb",
            "txn_log_size_limit_kb": "zookeeper.txnLogSizeLimitInKb",
            "pre_alloc_size_kb": "zookeeper.preAllocSize",
            "force_sync": "zookeeper.forceSync",
            "snapshot_compression_method": "zookeeper.snapshot.compression.method",
            "snapshot_trust_empty": "zookeeper.snapshot.trust.empty",
            "datadir_autocreate": "zookeeper.datadir.autocreate",
            "db_autocreate": "zookeeper.db.autocreate",
            "digest_enabled": "zookeeper.digest.enabled",
            "max_batch_size": "zookeeper.maxBatchSize",
            "flush_delay_ms": "zookeeper.flushDelay",
            "request_throttle_max_requests": "zookeeper.request_throttle_max_requests",
            "request_throttle_stall_time_ms": "zookeeper.request_throttle_stall_time",
            "request_throttle_drop_stale": "zookeeper.request_throttle_drop_stale",
            "request_stale_latency_check": "zookeeper.request_stale_latency_check",
            "request_stale_connection_check": "zookeeper.request_stale_connection_check",
            "throttled_op_wait_time_ms": "zookeeper.throttled_op_wait_time",
            "large_request_max_bytes": "zookeeper.largeRequestMaxBytes",
            "large_request_threshold_bytes": "zookeeper.largeRequestThreshold",
            "max_response_cache_size": "zookeeper.maxResponseCacheSize",
            "max_get_children_response_cache_size": "zookeeper.maxGetChildrenResponseCacheSize",
            "skip_acl": "zookeeper.skipACL",
            "super_digest": "zookeeper.DigestAuthenticationProvider.superDigest",
            "digest_auth_enabled": "zookeeper.DigestAuthenticationProvider.enabled",
            "digest_auth_algorithm": "zookeeper.DigestAuthenticationProvider.digestAlg",
            "enforce_auth_enabled": "zookeeper.enforce.auth.enabled",
            "session_require_client_sasl_auth": "zookeeper.sessionRequireClientSASLAuth",
            "enable_eager_acl_check": "zookeeper.enableEagerACLCheck",
            "audit_enabled": "zookeeper.audit.enable",
            "admin_enable_server": "zookeeper.admin.enableServer",
            "admin_server_address": "zookeeper.admin.serverAddress",
            "admin_server_port": "zookeeper.admin.serverPort",
            "admin_idle_timeout_ms": "zookeeper.admin.idleTimeout",
            "admin_command_url": "zookeeper.admin.commandURL",
            "admin_port_unification": "zookeeper.admin.portUnification",
            "admin_force_https": "zookeeper.admin.forceHttps",
            "leader_serves": "zookeeper.leaderServes",
        }
        for name, prop in plain.items():
            fields[name] = p(prop)

        fields["four_letter_words"] = self._four_letter_words()

        jute = fields["jute_max_buffer"]
        extra = p("zookeeper.jute.maxbuffer.extrasize")
        fields["jute_max_buffer_extra_size"] = jute if extra is None else extra

        snap_count = p("zookeeper.snapCount")
        assert isinstance(snap_count, int)
        if snap_count < 2:
            self._adjusted("zookeeper.snapCount", "snapCount must be 2 or more; using 2 as ZooKeeper does")
            snap_count = 2
        fields["snap_count"] = snap_count

        max_cnxns = p("zookeeper.maxCnxns")
        assert isinstance(max_cnxns, int)
        if max_cnxns < 0:
            self._adjusted("zookeeper.maxCnxns", "a negative limit means none; using 0 as ZooKeeper does")
            max_cnxns = 0
        fields["max_cnxns"] = max_cnxns

        fsync_ms = p("zookeeper.fsync.warningthresholdms")
        fields["fsync_warning_threshold_ms"] = p("fsync.warningthresholdms") if fsync_ms is None else fsync_ms

        commit_log_count = p("zookeeper.commitLogCount")
        assert isinstance(commit_log_count, int)
        if commit_log_count < 500:
            self._adjusted("zookeeper.commitLogCount", "below the minimum; using 500 as ZooKeeper does")
            commit_log_count = 500
        fields["commit_log_count"] = commit_log_count

        factor = p("zookeeper.snapshotSizeFactor")
        assert isinstance(factor, float)
        if factor > 1 or math.isnan(factor):
            self._adjusted("zookeeper.snapshotSizeFactor", "must be at most 1; using 0.33 as ZooKeeper does")
            factor = 0.33
        fields["snapshot_size_factor"] = factor

        flush_delay = fields["flush_delay_ms"]
        assert isinstance(flush_delay, int)
        poll = p("zookeeper.maxWriteQueuePollTime")
        fields["max_write_queue_poll_time_ms"] = flush_delay // 3 if poll is None else poll

        schemes = p("zookeeper.enforce.auth.schemes")
        fields["enforce_auth_schemes"] = tuple(
            s for s in (java_trim(x) for x in (schemes or "").split(",")) if s)  # type: ignore[union-attr]
        if p("zookeeper.sessionRequireClientSASLAuth"):
            # AuthenticationHelper: the SASL switch is shorthand for enforcing the sasl scheme.
            fields["enforce_auth_enabled"] = True
            fields["enforce_auth_schemes"] = ("sasl",)

        prefix = "zookeeper.authProvider."
        fields["auth_providers"] = {name[len(prefix):]: s.value
                                    for name, s in self.props.items() if name.startswith(prefix)}

        observer_sync = p("zookeeper.observer.syncEnabled")
        fields["sync_enabled"] = (self._direct("syncEnabled", True) if observer_sync is None
                                  else observer_sync)

        if fields["extended_types_enabled"] and _is_distributed(
                fields["servers"], bool(fields["standalone_enabled"])):  # type: ignore[arg-type]
            my_id = fields["my_id"]
            if isinstance(my_id, int) and my_id > MAX_EXTENDED_SERVER_ID:
                raise ConfigError(f"{my_id} is too large: with extendedTypesEnabled server ids must be at "
                                  f"most {MAX_EXTENDED_SERVER_ID}", key="myid", line=1,
                                  path=Path(fields["data_dir"]) / "myid")  # type: ignore[arg-type]

    def _adjusted(self, name: str, text: str) -> None:
        self.warn(self.props[name].where(text))

    def _four_letter_words(self) -> frozenset[str]:
        """FourLetterCommands.isEnabled: comma list, ``*`` for all; ``srvr`` (zkServer.sh needs
        it) always, ``isro`` when readonlymode.enabled is exactly ``true``."""
        setting = self.props.get("zookeeper.4lw.commands.whitelist")
        words: set[str] = set()
        if setting is not None:
            for item in setting.value.split(","):
                word = java_trim(item)
                if word == "*":
                    words |= FOUR_LETTER_WORDS
                    break
                if not word:
                    continue
                if word not in FOUR_LETTER_WORDS:
                    self.warn(setting.where(f"{word!r} is not a four-letter word ZooKeeper 3.8 knows; ignored"))
                    continue
                words.add(word)
        read_only = self.props.get("readonlymode.enabled")
        if read_only is not None and read_only.value == "true":
            words.add("isro")
        words.add("srvr")
        return frozenset(words)


def _same_host(a: str, b: str) -> bool:
    """Whether two host strings name the same address, as Java's InetSocketAddress.equals
    decides after resolving both."""
    if a == b:
        return True
    try:
        return socket.gethostbyname(a) == socket.gethostbyname(b)
    except OSError:
        return False


def _java_split(text: str, sep: str) -> list[str]:
    """``String.split`` with a literal separator: no match gives [text], trailing empties go."""
    if sep not in text:
        return [text]
    parts = text.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _host_and_port(text: str, setting: _Setting) -> list[str]:
    """ConfigUtils.getHostAndPort: ``[v6::addr]:rest`` or a plain colon split."""
    if not text.startswith("["):
        return _java_split(text, ":")
    close = text.find("]")
    if close < 0:
        raise setting.error(f"{text!r} starts with '[' but has no matching ']'")
    if close + 2 == len(text):
        raise setting.error(f"{text!r} has no port after the colon")
    if close + 2 < len(text):
        return [text[1:close], *_java_split(text[close + 2:], ":")]
    return [text[1:close]]


def _parse_server_line(sid: int, setting: _Setting, multi_address_enabled: bool) -> QuorumServerSpec:
    """QuorumPeer.QuorumServer's parse of ``server.N`` values, with errors that say what is wrong.

    Like ZooKeeper, the value is not trimmed: trailing blanks end up in a port and are refused.
    """
    value = setting.value
    server_part, *client_parts = _java_split(value, ";") or [""]
    if len(client_parts) > 1:
        raise setting.error(f"{value!r}: more than one ';' ({_SERVER_LINE_FORM})")
    client_host = client_port = None
    if client_parts:
        parts = _host_and_port(client_parts[0], setting)
        if not parts or len(parts) > 2:
            raise setting.error(f"{value!r}: bad client address {client_parts[0]!r} ({_SERVER_LINE_FORM})")
        client_host = parts[0] if len(parts) == 2 else "0.0.0.0"
        client_port = _server_port(setting, parts[-1], "client port")
    host_parts = _java_split(server_part, "|")
    if len(host_parts) > 1 and not multi_address_enabled:
        raise setting.error("several addresses are given but the multiple address feature is off "
                            "(ZooKeeper 3.8 reads the switch only as -Dzookeeper.multiAddress.enabled=true)")
    addresses = []
    peer_type: str | None = None
    for host_part in host_parts:
        parts = _host_and_port(host_part, setting)
        if not 3 <= len(parts) <= 4:
            raise setting.error(f"{value!r} ({_SERVER_LINE_FORM})")
        host = parts[0]
        quorum_port = _server_port(setting, parts[1], "quorum port")
        election_port = _server_port(setting, parts[2], "election port")
        if quorum_port == election_port:
            raise setting.error(f"quorum port and election port must be different (both {quorum_port})")
        if len(parts) == 4:
            this_type = java_trim(parts[3]).lower()
            if this_type not in ("participant", "observer"):
                raise setting.error(f"{parts[3]!r} is not 'participant' or 'observer'")
            if peer_type is not None and this_type != peer_type:
                raise setting.error("all addresses of one server must have the same role")
            peer_type = this_type
        addresses.append(PeerAddress(host, quorum_port, election_port))
    return QuorumServerSpec(sid, tuple(addresses), peer_type or "participant",  # type: ignore[arg-type]
                            client_host, client_port)


def _server_port(setting: _Setting, text: str, what: str) -> int:
    try:
        return PORT.parse(text)  # type: ignore[return-value]
    except ValueError:
        detail = " (trailing blanks are not allowed here)" if text != text.rstrip() else ""
        raise setting.error(f"{what} {text!r} is not {PORT.expected}{detail}") from None


__all__ = [
    "DEFAULT_CLIENT_PORT",
    "DEFAULT_DATA_DIR",
    "DEFAULT_HOST",
    "FOUR_LETTER_WORDS",
    "ConfigError",
    "PeerAddress",
    "PropertyEntry",
    "QuorumServerSpec",
    "ServerConfig",
    "default_config",
    "is_known_property",
    "java_trim",
    "load_config",
    "parse_jvm_flags",
    "parse_properties",
]
