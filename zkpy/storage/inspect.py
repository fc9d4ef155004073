"""Print a snapshot or a transaction log readably (``SnapshotFormatter``, ``TxnLogToolkit -d``).

    inspect [-d] FILE          snapshot: every znode's stat (-d: and its data, base64), sessions
                               log: every txn, one per line, as TxnLogToolkit prints it
    inspect --check PATH...    verify checksums of snapshot/log files (or every one in a directory);
                               exit status 1 when anything is wrong

The output follows Apache's tools line for line, so the two can be diffed
(dates aside: TxnLogToolkit's depend on the JVM's locale).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from zkpy.proto.constants import OpCode
from zkpy.proto.jute import Record
from zkpy.proto.records import CreateContainerTxn, CreateTTLTxn, CreateTxn, MultiTxn, SetDataTxn
from zkpy.storage.errors import StorageError
from zkpy.storage.files import list_logs, list_snapshots, parse_log_name, parse_snapshot_name
from zkpy.storage.snapshot import SnapshotReader
from zkpy.storage.txnlog import TXNLOG_MAGIC, LogFileReader

__all__ = ["jute_to_string", "main", "op_name"]

_OP_NAMES = {op.value: op.name for op in OpCode}
_OP_NAMES.update({OpCode.createTTL.value: "createTtl", OpCode.error.value: "error"})


def op_name(op: int) -> str:
    """Request.op2String."""
    return _OP_NAMES.get(op, f"unknown {op}")


def _u64hex(v: int) -> str:
    return format(v & 0xFFFFFFFFFFFFFFFF, "x")


def _hex016(v: int) -> str:
    """Java's String.format("%#016x"): "0x" counts towards the width of 16."""
    return "0x" + format(v & 0xFFFFFFFFFFFFFFFF, "x").rjust(14, "0")


def _java_date(ms: int) -> str:
    """java.util.Date.toString() in the local time zone."""
    try:
        return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(ms / 1000))
    except (OverflowError, OSError, ValueError):
        return str(ms)


def _short_date(ms: int) -> str:
    """DateFormat.getDateTimeInstance(SHORT, LONG) in en_US, as TxnLogToolkit prints."""
    try:
        t = datetime.datetime.fromtimestamp(ms / 1000).astimezone()
    except (OverflowError, OSError, ValueError):
        return str(ms)
    hour = t.hour % 12 or 12
    ampm = "AM" if t.hour < 12 else "PM"
    return f"{t.month}/{t.day}/{t.year % 100:02d}, {hour}:{t.minute:02d}:{t.second:02d} {ampm} {t.tzname()}"


# ---------------------------------------------------------------- jute ToStringOutputArchive


def _escape(s: str | None) -> str:
    if s is None:
        return ""
    table = {"\0": "%00", "\n": "%0A", "\r": "%0D", ",": "%2C", "}": "%7D", "%": "%25"}
    return "'" + "".join(table.get(c, c) for c in s)


def _escape_buffer(b: bytes | None) -> str:
    if not b:
        return ""
    # Integer.toHexString of a signed byte: negative bytes come out as ffffffXX.
    return "#" + "".join(format(x if x < 128 else x - 256 + (1 << 32), "x") for x in b)


def _value(kind: Any, v: Any) -> str:
    name = getattr(kind, "name", None)
    if name in ("int", "long"):
        return str(v)
    if name == "boolean":
        return "T" if v else "F"
    if name == "ustring":
        return _escape(v)
    if name == "buffer":
        return _escape_buffer(v)
    if isinstance(kind, type) and issubclass(kind, Record):
        return "s{" + _fields(v) + "}"
    item = kind.item  # vector
    return "v{" + ",".join(_value(item, x) for x in (v or ())) + "}"


def _fields(rec: Record) -> str:
    return ",".join(_value(kind, getattr(rec, name)) for name, kind in rec._jute_fields)


def jute_to_string(rec: Record) -> str:
    """What a jute record's Java ``toString()`` returns."""
    return _fields(rec) + "\n"


def _java_bytes(b: bytes | None) -> str:
    return b.decode("utf-8", "replace") if b else ""


def _acl_list(acls: list | None) -> str:
    return "[" + ", ".join(jute_to_string(a) for a in (acls or ())) + "]" if acls is not None else "null"


def format_txn(txn: Record | None) -> str:
    """TxnLogToolkit.getFormattedTxnStr."""
    if txn is None:
        return ""
    if isinstance(txn, CreateTxn):
        return (f"{txn.path},{_java_bytes(txn.data)},{_acl_list(txn.acl)},"
                f"{'true' if txn.ephemeral else 'false'},{txn.parentCVersion}")
    if isinstance(txn, SetDataTxn):
        return f"{txn.path},{_java_bytes(txn.data)},{txn.version}"
    if isinstance(txn, CreateContainerTxn):
        return f"{txn.path},{_java_bytes(txn.data)},{_acl_list(txn.acl)},{txn.parentCVersion}"
    if isinstance(txn, CreateTTLTxn):
        return f"{txn.path},{_java_bytes(txn.data)},{_acl_list(txn.acl)},{txn.parentCVersion},{txn.ttl}"
    if isinstance(txn, MultiTxn):
        return ";".join(f"{op_name(t.type)}:{_java_bytes(t.data)}" for t in (txn.txns or ()))
    return jute_to_string(txn)


# ---------------------------------------------------------------- printing


def _kind_of_file(path: Path) -> str:
    if parse_snapshot_name(path.name) is not None and path.suffix in (".gz", ".snappy"):
        return "snapshot"
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"ZKSN":
        return "snapshot"
    if magic == TXNLOG_MAGIC.to_bytes(4, "big"):
        return "log"
    if parse_log_name(path.name) is not None:
        return "log"
    raise StorageError(f"{path} is neither a snapshot nor a transaction log")


def print_snapshot(path: Path, dump_data: bool, out: TextIO) -> None:
    r = SnapshotReader(path)
    nodes = list(r.iter_nodes())
    # DataTree keeps the root under both "" and "/", and SnapshotFormatter counts both.
    print(f"ZNode Details (count={len(nodes) + 1}):", file=out)
    zxid = 0
    eph: dict[int, int] = {}
    for p, data, _acl, st in nodes:
        print("----", file=out)
        print(p, file=out)
        print(f"  cZxid = {_hex016(st.czxid)}", file=out)
        print(f"  ctime = {_java_date(st.ctime)}", file=out)
        print(f"  mZxid = {_hex016(st.mzxid)}", file=out)
        print(f"  mtime = {_java_date(st.mtime)}", file=out)
        print(f"  pZxid = {_hex016(st.pzxid)}", file=out)
        print(f"  cversion = {st.cversion}", file=out)
        print(f"  dataVersion = {st.version}", file=out)
        print(f"  aclVersion = {st.aversion}", file=out)
        print(f"  ephemeralOwner = {_hex016(st.ephemeralOwner)}", file=out)
        if dump_data:
            print(f"  data = {base64.b64encode(data).decode() if data else ''}", file=out)
        else:
            print(f"  dataLength = {len(data) if data else 0}", file=out)
        zxid = max(zxid, st.mzxid, st.pzxid)
        eph[st.ephemeralOwner] = eph.get(st.ephemeralOwner, 0) + 1
    print("----", file=out)
    print("Session Details (sid, timeout, ephemeralCount):", file=out)
    for sid, timeout_ms in r.sessions.items():
        print(f"{_hex016(sid)}, {timeout_ms}, {eph.get(sid, 0)}", file=out)
    if r.digest is not None and r.digest.zxid > 0:
        print(f"Digest: zxid {_u64hex(r.digest.zxid)}, version {r.digest.version}, "
              f"value {r.digest.digest}", file=out)
    print("----", file=out)
    print(f"Last zxid: 0x{_u64hex(max(r.zxid, zxid))}", file=out)


def print_log(path: Path, out: TextIO) -> int:
    reader = LogFileReader(path, verify_crc=False)
    count = 0
    lines = list(reader)
    crc_bad = set(reader.crc_errors)
    if reader.header is not None:
        print(f"ZooKeeper Transactional Log File with dbid {reader.header.dbid} "
              f"txnlog format version {reader.header.version}", file=out)
    for off, e in lines:
        h = e.hdr
        text = (f"{_short_date(h.time)} session 0x{_u64hex(h.clientId)} cxid 0x{_u64hex(h.cxid)} "
                f"zxid 0x{_u64hex(h.zxid)} {op_name(h.type)} {format_txn(e.txn)}")
        if off in crc_bad:
            text = "CRC ERROR - " + text
        print(text, end="" if text.endswith("\n") else "\n", file=out)
        count += 1
    end = reader.end
    if end is not None and end.torn:
        print(f"Last transaction was partial: {end.reason} at offset {end.offset}.", file=out)
    print(f"EOF reached after {count} txns.", file=out)
    return 1 if crc_bad else 0


def check_file(path: Path, out: TextIO) -> bool:
    kind = _kind_of_file(path)
    try:
        if kind == "snapshot":
            r = SnapshotReader(path)
            n = sum(1 for _ in r.iter_nodes())
            d = f", digest zxid 0x{_u64hex(r.digest.zxid)}" if r.digest is not None else ", no digest"
            print(f"{path}: snapshot OK, {len(r.sessions)} sessions, {len(r.acls)} ACLs, {n} nodes{d}",
                  file=out)
            return True
        reader = LogFileReader(path, verify_crc=False)
        n = 0
        first = last = None
        for _, e in reader:
            n += 1
            first = e.hdr.zxid if first is None else first
            last = e.hdr.zxid
        span = f", zxids 0x{_u64hex(first)}..0x{_u64hex(last)}" if first is not None else ""
        end = reader.end
        tail = f"; torn record at offset {end.offset} ({end.reason})" if end is not None and end.torn else ""
        if reader.crc_errors:
            offs = ", ".join(str(o) for o in reader.crc_errors[:10])
            print(f"{path}: CRC check failed for {len(reader.crc_errors)} of {n} txns "
                  f"at offsets {offs}{tail}", file=out)
            return False
        print(f"{path}: log OK, {n} txns{span}{tail}", file=out)
        return True
    except StorageError as e:
        print(f"{path}: {e}", file=out)
        return False


def _expand(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            if (p / "version-2").is_dir():
                p = p / "version-2"
            out += [q for _, q in reversed(list_snapshots(p))]
            out += [q for _, q in list_logs(p)]
        else:
            out.append(p)
    return out


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    ap = argparse.ArgumentParser(prog="zkpy inspect", description=__doc__.splitlines()[0])
    ap.add_argument("-d", "--dump-data", action="store_true", help="print each znode's data (base64)")
    ap.add_argument("--check", action="store_true", help="only verify checksums; exit 1 on any error")
    ap.add_argument("paths", nargs="+", metavar="FILE")
    args = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.check:
            ok = True
            files = _expand(args.paths)
            if not files:
                print("no snapshot or log files found", file=out)
                return 1
            for p in files:
                ok = check_file(p, out) and ok
            return 0 if ok else 1
        rc = 0
        for s in args.paths:
            p = Path(s)
            if _kind_of_file(p) == "snapshot":
                print_snapshot(p, args.dump_data, out)
            else:
                rc |= print_log(p, out)
        return rc
    except (StorageError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
