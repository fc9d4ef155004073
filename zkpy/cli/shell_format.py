"""How zkCli prints things: Stat, dates (Java's Date.toString), ACLs, lists; and ACL parsing."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TextIO

from zkpy.client.acl import perm_string
from zkpy.proto.constants import Perms
from zkpy.proto.records import ACL, Id, Stat

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def java_date(ms: int) -> str:
    """``new Date(ms).toString()``: "Sun Nov 22 01:45:00 UTC 2026" in the local zone, English names."""
    t = time.localtime(ms / 1000)
    return (f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_zone} {t.tm_year}")


def hex_long(v: int) -> str:
    """Long.toHexString: two's complement for negatives."""
    return format(v & 0xFFFFFFFFFFFFFFFF, "x")


def print_stat(stat: Stat, out: TextIO) -> None:
    out.write(
        f"cZxid = 0x{hex_long(stat.czxid)}\n"
        f"ctime = {java_date(stat.ctime)}\n"
        f"mZxid = 0x{hex_long(stat.mzxid)}\n"
        f"mtime = {java_date(stat.mtime)}\n"
        f"pZxid = 0x{hex_long(stat.pzxid)}\n"
        f"cversion = {stat.cversion}\n"
        f"dataVersion = {stat.version}\n"
        f"aclVersion = {stat.aversion}\n"
        f"ephemeralOwner = 0x{hex_long(stat.ephemeralOwner)}\n"
        f"dataLength = {stat.dataLength}\n"
        f"numChildren = {stat.numChildren}\n"
    )


_CSV_ESCAPES = {"\0": "%00", "\n": "%0A", "\r": "%0D", ",": "%2C", "}": "%7D", "%": "%25"}


def _jute_string(s: str | None) -> str:
    if s is None:
        return ""
    return "'" + "".join(_CSV_ESCAPES.get(c, c) for c in s)


def id_to_string(ident: Id) -> str:
    """A jute record's toString (ToStringOutputArchive): "'world,'anyone" and a newline."""
    return f"{_jute_string(ident.scheme)},{_jute_string(ident.id)}\n"


def java_list(items: Iterable[object]) -> str:
    """List.toString: "[a, b]"."""
    return "[" + ", ".join(str(i) for i in items) + "]"


def java_bytes_str(data: bytes | None) -> str:
    return "null" if data is None else data.decode("utf-8", "replace")


def parse_acl(text: str, err: TextIO | None = None) -> list[ACL]:
    """AclParser.parse: "scheme:id:perms,..." (a bad entry is reported and skipped)."""
    err = err or sys.stderr
    acl: list[ACL] = []
    for a in text.split(","):
        first, last = a.find(":"), a.rfind(":")
        if first == -1 or first == last:
            err.write(f"{a} does not have the form scheme:id:perm\n")
            continue
        acl.append(ACL(_perms(a[last + 1 :], err), Id(a[:first], a[first + 1 : last])))
    return acl


def _perms(s: str, err: TextIO) -> int:
    bits = {"r": Perms.READ, "w": Perms.WRITE, "c": Perms.CREATE, "d": Perms.DELETE, "a": Perms.ADMIN}
    perms = 0
    for ch in s:
        if ch in bits:
            perms |= bits[ch]
        else:
            err.write(f"Unknown perm type: {ch}\n")
    return int(perms)


def acl_line(acl: ACL) -> str:
    return f"{id_to_string(acl.id)}: {perm_string(acl.perms)}"


def client_config_str(config: str) -> str:
    """ConfigUtils.getClientConfigStr: "<version> host:clientPort,..." from a dynamic config."""
    version = ""
    hosts: list[str] = []
    for line in config.splitlines():
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            continue
        if key == "version":
            version = value
        if not key.startswith("server."):
            continue
        _, semi, client = value.partition(";")
        if not semi:
            continue
        host, colon, port = client.rpartition(":")
        if not colon:
            host, port = "0.0.0.0", client
        hosts.append(f"{host}:{port}")
    return f"{version} {','.join(hosts)}"
