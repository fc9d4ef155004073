"""Apache ZooKeeper 3.8's on-disk formats: transaction log, snapshots, recovery and retention.

Synchronous file I/O, meant to run on a worker thread.  Modules:

- ``txns``: one log entry (TxnHeader + txn record + optional TxnDigest) <-> bytes
- ``txnlog``: ``TxnLogWriter`` (group commit), ``TxnLogIterator`` / ``LogFileReader``, ``truncate_log``
- ``snapshot``: ``SnapshotWriter`` (streaming, atomic rename), ``SnapshotReader`` / ``read_snapshot``
- ``recovery``: ``recover`` = newest valid snapshot + the log after it, with a report
- ``purge``: ``purge`` / ``autopurge`` / ``main`` (PurgeTxnLog, zkCleanup.sh); not re-exported
  here, so ``zkpy.storage.purge`` stays the module
- ``inspect``: ``main`` printing snapshots and logs like SnapshotFormatter / TxnLogToolkit
"""

from zkpy.proto.txns import LogEntry, decode_multi, decode_txn, encode_multi, encode_txn
from zkpy.storage.errors import CorruptLogError, CorruptSnapshotError, StorageError, UnrecoverableError
from zkpy.storage.files import DataDirs, open_data_dirs
from zkpy.storage.recovery import Recovery, RecoveryReport, recover
from zkpy.storage.snapshot import (
    Node,
    Snapshot,
    SnapshotDigest,
    SnapshotReader,
    SnapshotWriter,
    read_snapshot,
    write_snapshot,
)
from zkpy.storage.txnlog import LogEnd, LogFileReader, TxnLogIterator, TxnLogWriter, last_logged_zxid, truncate_log

__all__ = [
    "CorruptLogError",
    "CorruptSnapshotError",
    "DataDirs",
    "LogEnd",
    "LogEntry",
    "LogFileReader",
    "Node",
    "Recovery",
    "RecoveryReport",
    "Snapshot",
    "SnapshotDigest",
    "SnapshotReader",
    "SnapshotWriter",
    "StorageError",
    "TxnLogIterator",
    "TxnLogWriter",
    "UnrecoverableError",
    "decode_multi",
    "decode_txn",
    "encode_multi",
    "encode_txn",
    "last_logged_zxid",
    "open_data_dirs",
    "read_snapshot",
    "recover",
    "truncate_log",
    "write_snapshot",
]
