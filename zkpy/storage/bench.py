"""Measure the storage hot paths: ``python -m zkpy.storage.bench [NODES] [TXNS] [DIR]``.

Snapshot: stream NODES nodes (a tree of /nK/cJ, 32-byte data) in 10,000-node
steps, then read and verify it.  Log: TXNS creates appended, one
``flush(sync=True)`` per 100 (group commit), then read back.  DIR defaults to
a temporary directory; point it at the real data disk to include its fsync.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from zkpy.proto.records import ACL, CreateTxn, Id, StatPersisted, TxnHeader
from zkpy.storage.snapshot import Node, SnapshotReader, SnapshotWriter
from zkpy.storage.txnlog import TxnLogIterator, TxnLogWriter


def bench_snapshot(d: Path, n_nodes: int) -> str:
    st = StatPersisted(1, 2, 3, 4, 5, 6, 7, 0, 9)
    data = b"x" * 32
    nodes: list[Node] = [("/", b"", -1, st)]
    for i in range(n_nodes - 1):
        nodes.append((f"/n{i // 1000}/c{i % 1000}" if i % 1000 else f"/n{i // 1000}", data, -1, st))
    t = time.perf_counter()
    w = SnapshotWriter(d, 1)
    w.write_sessions({i: 30000 for i in range(1000)})
    w.write_acls({1: [ACL(31, Id("world", "anyone"))]})
    it = iter(nodes)
    while not w.write_nodes(it, max_nodes=10_000):  # bounded by n_nodes / 10,000 steps
        pass
    p = w.finish()
    t_write = time.perf_counter() - t
    t = time.perf_counter()
    r = SnapshotReader(p)
    count = sum(1 for _ in r.iter_nodes())
    t_read = time.perf_counter() - t
    assert count == n_nodes
    size_mb = p.stat().st_size / 1e6
    p.unlink()
    return (f"snapshot: {n_nodes} nodes, {size_mb:.1f} MB: write+fsync {t_write:.2f} s, "
            f"read+verify {t_read:.2f} s")


def bench_log(d: Path, n_txns: int, batch: int = 100) -> str:
    acl = [ACL(31, Id("world", "anyone"))]
    data = b"x" * 32
    hdrs = [TxnHeader(1, i, i, 0, 1) for i in range(1, n_txns + 1)]
    txns = [CreateTxn(f"/n{i}", data, acl, False, i) for i in range(1, n_txns + 1)]
    w = TxnLogWriter(d)
    t = time.perf_counter()
    for i in range(n_txns):
        w.append(hdrs[i], txns[i])
    t_append = time.perf_counter() - t
    w.close()
    for p in d.glob("log.*"):
        p.unlink()
    w = TxnLogWriter(d)
    flushes = 0
    t = time.perf_counter()
    for i in range(n_txns):
        w.append(hdrs[i], txns[i])
        if i % batch == batch - 1:
            w.flush()
            flushes += 1
    w.close()
    t_total = time.perf_counter() - t
    t = time.perf_counter()
    count = sum(1 for _ in TxnLogIterator(d, 0))
    t_read = time.perf_counter() - t
    assert count == n_txns
    return (f"log: append {t_append * 1e6 / n_txns:.2f} us/txn (encode + adler32); "
            f"{n_txns} txns with {flushes} fsync'ed flushes in {t_total:.2f} s = {n_txns / t_total:,.0f} txn/s "
            f"({t_total / max(flushes, 1) * 1e3:.2f} ms per {batch}-txn batch); read back {t_read:.2f} s")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    n_nodes = int(args[0]) if args else 1_000_000
    n_txns = int(args[1]) if len(args) > 1 else 100_000
    base = Path(args[2]) if len(args) > 2 else None
    d = Path(tempfile.mkdtemp(prefix="zkpy-bench-", dir=base))
    try:
        print(bench_snapshot(d, n_nodes))
        print(bench_log(d, n_txns))
    finally:
        shutil.rmtree(d)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
