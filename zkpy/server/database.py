"""The database: the data tree plus the table of sessions, as snapshots store them.

``Database.apply`` is the single place a committed txn takes effect (ZooKeeper's
ZKDatabase.processTxn together with the session bookkeeping of
FileTxnSnapLog.processTransaction), used live, in log replay and on followers.
"""

from __future__ import annotations

from zkpy.proto.constants import OpCode
from zkpy.proto.records import CreateSessionTxn, TxnHeader
from zkpy.tree.datatree import DataTree, TxnResult

_CREATE_SESSION, _CLOSE_SESSION = int(OpCode.createSession), int(OpCode.closeSession)


class Database:
    def __init__(self, extended_types: bool = False) -> None:
        self.tree = DataTree(extended_types)
        # session id -> negotiated timeout (ms): the sessions a snapshot records.
        self.sessions: dict[int, int] = {}

    @property
    def last_zxid(self) -> int:
        return self.tree.last_processed_zxid

    def apply(self, hdr: TxnHeader, txn: object, replay: bool = False) -> TxnResult:
        op = hdr.type
        if op == _CREATE_SESSION:
            if isinstance(txn, CreateSessionTxn):
                self.sessions[hdr.clientId] = txn.timeOut
        elif op == _CLOSE_SESSION:
            self.sessions.pop(hdr.clientId, None)
        return self.tree.apply(hdr, txn, replay)
