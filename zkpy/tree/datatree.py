"""The data tree: znodes in memory, changed only by applying transactions in zxid order.

``DataTree.apply(hdr, txn)`` is the one way the tree changes (DESIGN invariant 1).
The same function runs for a live request, for log replay at start-up and on a
follower, so it is deterministic: every value it writes (paths, sequence
numbers, times, versions) comes from the transaction, and it never reads a
clock.  Watches are not the tree's: it reports each change to a listener.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from zkpy.proto import errors
from zkpy.proto.constants import CONTAINER_EPHEMERAL_OWNER, OpCode
from zkpy.proto.records import (
    ACL,
    CheckVersionTxn,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateTTLTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    StatPersisted,
    TxnHeader,
)
from zkpy.proto.txns import decode_multi
from zkpy.tree.acl import OPEN_ACL_UNSAFE_ID, READ_ACL_UNSAFE, AclCache
from zkpy.tree.node import (
    EPHEMERAL_CONTAINER,
    EPHEMERAL_NORMAL,
    EPHEMERAL_TTL,
    PERSISTED,
    PERSISTED_CVERSION_AT,
    PERSISTED_FROM_CVERSION,
    PERSISTED_PZXID,
    PERSISTED_PZXID_AT,
    PERSISTED_VERSIONS,
    PERSISTED_VERSIONS_AT,
    WIRE_STAT,
    Node,
    data_length,
    ephemeral_type,
    ttl_owner,
)

# Plain ints: comparing with an IntEnum member costs a metaclass attribute lookup each time.
_SET_DATA = int(OpCode.setData)
_CREATE = int(OpCode.create)
_CREATE2 = int(OpCode.create2)
_CREATE_TTL = int(OpCode.createTTL)
_CREATE_CONTAINER = int(OpCode.createContainer)
_DELETE = int(OpCode.delete)
_DELETE_CONTAINER = int(OpCode.deleteContainer)
_RECONFIG = int(OpCode.reconfig)
_SET_ACL = int(OpCode.setACL)
_CLOSE_SESSION = int(OpCode.closeSession)
_ERROR = int(OpCode.error)
_CHECK = int(OpCode.check)
_MULTI = int(OpCode.multi)
QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"
_PAIRS = re.compile(r"[,;]+")


class TreeListener(Protocol):
    """Receives the changes the tree makes, in order (the watch manager)."""

    def node_created(self, path: str) -> None: ...
    def node_deleted(self, path: str) -> None: ...
    def data_changed(self, path: str) -> None: ...


@dataclass(slots=True)
class TxnResult:
    """What applying a txn did (DataTree.ProcessTxnResult); ``stat`` is the wire Stat afterwards."""

    client_id: int
    cxid: int
    zxid: int
    type: int
    err: int = 0
    path: str | None = None
    stat: bytes | None = None
    multi: list[TxnResult] | None = None


def _parse_stats(text: str) -> dict[str, int]:
    stats: dict[str, int] = {}
    if not text:
        return stats
    for pair in _PAIRS.split(text):
        kv = [p for p in pair.split("=")]
        while len(kv) > 1 and kv[-1] == "":
            kv.pop()
        if not kv or not kv[0]:
            continue
        value = kv[1] if len(kv) > 1 else ""
        try:
            stats[kv[0]] = int(value) if value else -1
        except ValueError:
            stats[kv[0]] = -1
    return stats


def _format_stats(stats: dict[str, int]) -> str:
    """StatsTrack.toString: count and bytes first, other keys after an '=' guard."""
    out = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    rest = sorted(k for k in stats if k not in ("count", "bytes"))
    if rest:
        out += "=" + "".join(f";{k}={stats[k]}" for k in rest)
    return out


class DataTree:
    """Znodes keyed by path components from the root; sessions' ephemerals; ACL cache."""

    def __init__(self, extended_types: bool = False) -> None:
        self.extended_types = extended_types
        self.acls = AclCache()
        self.root = Node(b"", OPEN_ACL_UNSAFE_ID)
        self.ephemerals: dict[int, set[str]] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        self.quota_paths: set[str] = set()
        self.last_processed_zxid = 0
        self.node_count = 1
        self.approximate_data_size = 0
        self.listener: TreeListener | None = None
        # The system subtree every ZooKeeper database starts with.
        zk = Node(b"", OPEN_ACL_UNSAFE_ID)
        self.root.children = {"zookeeper": zk}
        zk.children = {"quota": Node(b"", OPEN_ACL_UNSAFE_ID)}
        config = Node(b"", self.acls.intern(READ_ACL_UNSAFE))
        # setACL(CONFIG_NODE, READ_ACL_UNSAFE, -1) leaves its aversion at -1.
        config.stat = PERSISTED.pack(0, 0, 0, 0, 0, 0, -1, 0, 0)
        zk.children["config"] = config
        self.node_count = 4
        self.approximate_data_size = sum(len(p) for p in ("/", "/zookeeper", QUOTA_ROOT, "/zookeeper/config"))

    # ------------------------------------------------------------------ reads

    def get_node(self, path: str) -> Node | None:
        node = self.root
        if path == "/" or path == "":  # ZooKeeper keeps "" as an alias of the root
            return node
        names = iter(path.split("/"))  # one split, no slice of the path: this runs per request
        if next(names):
            return None  # not absolute
        for name in names:
            ch = node.children
            if ch is None:
                return None
            node = ch.get(name)  # type: ignore[assignment]
            if node is None:
                return None
        return node

    def acl_of(self, node: Node) -> list[ACL]:
        return self.acls.lookup(node.acl)

    def all_children_number(self, path: str, node: Node) -> int:
        """Descendants of ``path`` (ZooKeeper counts /zookeeper's nodes under "/")."""
        if path == "/":
            return self.node_count - 1
        total = 0
        stack = [node]
        while stack:
            ch = stack.pop().children
            if ch:
                total += len(ch)
                stack.extend(ch.values())
        return total

    def session_ephemerals(self, session_id: int) -> set[str]:
        return self.ephemerals.get(session_id, set())

    def iter_nodes(self) -> Iterator[tuple[str, Node]]:
        """Every (path, node), parents before children (for snapshots and dumps).

        Safe while the tree changes between steps (fuzzy snapshots): each directory's names
        are copied when it is entered and a child deleted since is skipped.  Paths are built
        one at a time, so a directory with a million children costs one key copy up front,
        not a million strings."""
        yield "/", self.root
        stack: list[tuple[str, list[str], int, Node]] = []
        if self.root.children:
            stack.append(("", list(self.root.children), 0, self.root))
        while stack:
            prefix, names, i, parent = stack[-1]
            if i >= len(names):
                stack.pop()
                continue
            stack[-1] = (prefix, names, i + 1, parent)
            ch = parent.children
            child = ch.get(names[i]) if ch else None
            if child is None:
                continue
            path = f"{prefix}/{names[i]}"
            yield path, child
            if child.children:
                stack.append((path, list(child.children), 0, child))

    # ------------------------------------------------------------------ apply

    def apply(self, hdr: TxnHeader, txn: object, replay: bool = False) -> TxnResult:
        """Apply one transaction (DataTree.processTxn) and return what it did.

        ``replay`` marks log replay over a fuzzy snapshot, where a create that
        finds its node already there still advances the parent's cversion."""
        op = hdr.type
        rc = TxnResult(hdr.clientId, hdr.cxid, hdr.zxid, op)
        try:
            if op == _SET_DATA:  # the most common txn, without the dispatch below
                rc.path = txn.path  # type: ignore[attr-defined]
                rc.stat = self.set_data(txn.path, txn.data, txn.version, hdr.zxid, hdr.time)  # type: ignore[attr-defined]
            else:
                self._apply_one(op, txn, hdr, rc)
        except errors.ZooKeeperError as e:
            rc.err = e.code
            if replay and hdr.type in (_CREATE, _CREATE2) and rc.err == errors.NodeExistsError.code:
                # A fuzzy snapshot may hold the node already; keep the parent's counters right.
                assert isinstance(txn, CreateTxn) and txn.path
                parent = txn.path[: txn.path.rfind("/")] or "/"
                self._set_cversion_pzxid(parent, txn.parentCVersion, hdr.zxid)
        if hdr.zxid > self.last_processed_zxid:
            self.last_processed_zxid = hdr.zxid
        return rc

    def _apply_one(self, op: int, txn: object, hdr: TxnHeader, rc: TxnResult) -> None:
        zxid = hdr.zxid
        if op == _CREATE or op == _CREATE2:
            assert isinstance(txn, CreateTxn)
            rc.path = txn.path
            owner = hdr.clientId if txn.ephemeral else 0
            node = self.create_node(txn.path, txn.data, txn.acl, owner, txn.parentCVersion, zxid, hdr.time)
            if op == _CREATE2:
                rc.stat = node.wire_stat()
        elif op == _CREATE_TTL:
            assert isinstance(txn, CreateTTLTxn)
            rc.path = txn.path
            node = self.create_node(txn.path, txn.data, txn.acl, ttl_owner(txn.ttl), txn.parentCVersion,
                                    zxid, hdr.time)
            rc.stat = node.wire_stat()
        elif op == _CREATE_CONTAINER:
            assert isinstance(txn, CreateContainerTxn)
            rc.path = txn.path
            node = self.create_node(txn.path, txn.data, txn.acl, CONTAINER_EPHEMERAL_OWNER,
                                    txn.parentCVersion, zxid, hdr.time)
            rc.stat = node.wire_stat()
        elif op == _DELETE or op == _DELETE_CONTAINER:
            assert isinstance(txn, DeleteTxn)
            rc.path = txn.path
            self.delete_node(txn.path, zxid)
        elif op == _SET_DATA or op == _RECONFIG:
            assert isinstance(txn, SetDataTxn)
            rc.path = txn.path
            rc.stat = self.set_data(txn.path, txn.data, txn.version, zxid, hdr.time)
        elif op == _SET_ACL:
            assert isinstance(txn, SetACLTxn)
            rc.path = txn.path
            rc.stat = self.set_acl(txn.path, txn.acl, txn.version)
        elif op == _CLOSE_SESSION:
            paths = txn.paths2Delete if isinstance(txn, CloseSessionTxn) else None
            self.kill_session(hdr.clientId, zxid, paths)
        elif op == _ERROR:
            assert isinstance(txn, ErrorTxn)
            rc.err = txn.err
        elif op == _CHECK:
            assert isinstance(txn, CheckVersionTxn)
            rc.path = txn.path
        elif op == _MULTI:
            assert isinstance(txn, MultiTxn)
            self._apply_multi(txn, hdr, rc)
        # createSession and anything else leave the tree alone.

    def _apply_multi(self, txn: MultiTxn, hdr: TxnHeader, rc: TxnResult) -> None:
        subs = decode_multi(txn)
        failed = any(t == _ERROR for t, _ in subs)
        post_failed = False
        rc.multi = []
        for sub_type, record in subs:
            if sub_type == _ERROR:
                post_failed = True
            elif failed:
                # Every op of a failed multi reports an error: 0 before the failing op,
                # RuntimeInconsistency after it.
                record = ErrorTxn(errors.RuntimeInconsistencyError.code if post_failed else 0)
                sub_type = _ERROR
            sub = TxnResult(hdr.clientId, hdr.cxid, hdr.zxid, sub_type)
            try:
                self._apply_one(sub_type, record, hdr, sub)
            except errors.ZooKeeperError as e:
                sub.err = e.code
            rc.multi.append(sub)
            if sub.err and not rc.err:
                rc.err = sub.err

    # ------------------------------------------------------------------ mutations

    def create_node(self, path: str, data: bytes | None, acl: Sequence[ACL] | None, owner: int,
                    parent_cversion: int, zxid: int, time: int) -> Node:
        i = path.rfind("/")
        parent_path = path[:i] or "/"
        name = path[i + 1 :]
        parent = self.get_node(parent_path)
        if parent is None:
            raise errors.NoNodeError()
        ch = parent.children
        if ch is None:
            ch = parent.children = {}
        elif name in ch:
            raise errors.NodeExistsError()
        pstat = parent.stat
        pcver, paver, powner, _ppzxid = PERSISTED_FROM_CVERSION.unpack_from(pstat, PERSISTED_CVERSION_AT)
        if parent_cversion == -1:
            parent_cversion = pcver + 1
        if parent_cversion > pcver:
            # Only the part from the cversion on changes: the zxids and times before it are copied.
            parent.stat = pstat[:PERSISTED_CVERSION_AT] + PERSISTED_FROM_CVERSION.pack(parent_cversion, paver,
                                                                                      powner, zxid)
        node = Node(data, self.acls.intern(acl),
                    PERSISTED.pack(zxid, zxid, time, time, 0, 0, 0, owner, zxid))
        ch[name] = node
        self.node_count += 1
        self.approximate_data_size += len(path) + data_length(node.data)
        if owner:
            self._track_owner(path, owner)
        if parent_path.startswith(QUOTA_ROOT):
            if name == LIMIT_NODE:
                self.quota_paths.add(parent_path[len(QUOTA_ROOT) :])
            elif name == STAT_NODE:
                self._recount_quota(parent_path[len(QUOTA_ROOT) :])
        if self.quota_paths:
            self._update_quota(path, data_length(node.data), 1)
        if self.listener is not None:
            self.listener.node_created(path)
        return node

    def _track_owner(self, path: str, owner: int) -> None:
        """Index a node by what its ephemeralOwner makes it: container, TTL or a session's ephemeral."""
        kind = ephemeral_type(owner, self.extended_types)
        if kind == EPHEMERAL_CONTAINER:
            self.containers.add(path)
        elif kind == EPHEMERAL_TTL:
            self.ttls.add(path)
        elif kind == EPHEMERAL_NORMAL:
            self.ephemerals.setdefault(owner, set()).add(path)

    def delete_node(self, path: str, zxid: int) -> None:
        i = path.rfind("/")
        parent_path = path[:i] or "/"
        name = path[i + 1 :]
        parent = self.get_node(parent_path)
        if parent is None or not parent.children or name not in parent.children:
            raise errors.NoNodeError()
        node = parent.children.pop(name)
        pstat = parent.stat
        if zxid > PERSISTED_PZXID.unpack_from(pstat, PERSISTED_PZXID_AT)[0]:
            parent.stat = pstat[:PERSISTED_PZXID_AT] + PERSISTED_PZXID.pack(zxid)
        self.node_count -= 1
        self.approximate_data_size -= len(path) + data_length(node.data)
        self.acls.remove_usage(node.acl)
        owner = PERSISTED_VERSIONS.unpack_from(node.stat, PERSISTED_VERSIONS_AT)[3]
        if owner:
            kind = ephemeral_type(owner, self.extended_types)
            if kind == EPHEMERAL_CONTAINER:
                self.containers.discard(path)
            elif kind == EPHEMERAL_TTL:
                self.ttls.discard(path)
            elif kind == EPHEMERAL_NORMAL:
                paths = self.ephemerals.get(owner)
                if paths is not None:
                    # The (possibly empty) set stays until the session closes, as in ZooKeeper.
                    paths.discard(path)
        if parent_path.startswith("/zookeeper") and name == LIMIT_NODE:
            self.quota_paths.discard(parent_path[len(QUOTA_ROOT) :])
        if self.quota_paths:
            self._update_quota(path, -data_length(node.data), -1)
        if self.listener is not None:
            self.listener.node_deleted(path)

    def set_data(self, path: str, data: bytes | None, version: int, zxid: int, time: int) -> bytes:
        node = self.get_node(path)
        if node is None:
            raise errors.NoNodeError()
        old = node.data
        old_len = len(old) if old is not None else 0
        czxid, _mzxid, ctime, _mtime, _ver, cver, aver, owner, pzxid = PERSISTED.unpack(node.stat)
        node.stat = PERSISTED.pack(czxid, zxid, ctime, time, version, cver, aver, owner, pzxid)
        node.data = data
        new_len = len(data) if data is not None else 0
        self.approximate_data_size += new_len - old_len
        if self.quota_paths:
            self._update_quota(path, new_len - old_len, 0)
        # The client's Stat straight from the values at hand (Node.wire_stat, without re-reading).
        ch = node.children
        nch = len(ch) if ch else 0
        cv = cver * 2 - nch
        if owner < 0 or not -0x80000000 <= cv <= 0x7FFFFFFF:
            stat = node.wire_stat()
        else:
            stat = WIRE_STAT.pack(czxid, zxid, ctime, time, version, cv, aver, owner, new_len, nch, pzxid)
        if self.listener is not None:
            self.listener.data_changed(path)
        return stat

    def set_acl(self, path: str, acl: Sequence[ACL] | None, version: int) -> bytes:
        node = self.get_node(path)
        if node is None:
            raise errors.NoNodeError()
        self.acls.remove_usage(node.acl)
        czxid, mzxid, ctime, mtime, ver, cver, _aver, owner, pzxid = PERSISTED.unpack(node.stat)
        node.stat = PERSISTED.pack(czxid, mzxid, ctime, mtime, ver, cver, version, owner, pzxid)
        node.acl = self.acls.intern(acl)
        return node.wire_stat()

    def kill_session(self, session_id: int, zxid: int, paths: Sequence[str] | None) -> None:
        """Delete a closed session's ephemerals: those the txn names, then any left over."""
        local = self.ephemerals.pop(session_id, None)
        if paths is not None:
            for path in paths:
                if local is not None:
                    local.discard(path)
                self._delete_quietly(path, zxid)
        if local:
            for path in sorted(local):
                self._delete_quietly(path, zxid)

    def _delete_quietly(self, path: str, zxid: int) -> None:
        try:
            self.delete_node(path, zxid)
        except errors.NoNodeError:
            pass

    def _set_cversion_pzxid(self, path: str, new_cversion: int, zxid: int) -> None:
        node = self.get_node(path)
        if node is None:
            return
        czxid, mzxid, ctime, mtime, ver, cver, aver, owner, _pzxid = PERSISTED.unpack(node.stat)
        if new_cversion == -1:
            new_cversion = cver + 1
        if new_cversion > cver:
            node.stat = PERSISTED.pack(czxid, mzxid, ctime, mtime, ver, new_cversion, aver, owner, zxid)

    # ------------------------------------------------------------------ quotas

    def quota_prefix(self, path: str) -> str | None:
        """The deepest quota-limited ancestor-or-self of ``path`` (getMaxPrefixWithQuota)."""
        best = None
        if path in self.quota_paths:
            return path
        p = path
        while True:
            i = p.rfind("/")
            if i <= 0:
                break
            p = p[:i]
            if p in self.quota_paths:
                best = p
                break
        return best

    def _update_quota(self, path: str, bytes_diff: int, count_diff: int) -> None:
        prefix = self.quota_prefix(path)
        if prefix is None:
            return
        stat_node = self.get_node(f"{QUOTA_ROOT}{prefix}/{STAT_NODE}")
        if stat_node is None:
            return
        stats = _parse_stats((stat_node.data or b"").decode("utf-8", "replace"))
        stats["count"] = stats.get("count", 0) + count_diff
        stats["bytes"] = stats.get("bytes", 0) + bytes_diff
        stat_node.data = _format_stats(stats).encode()

    def _recount_quota(self, prefix: str) -> None:
        node = self.get_node(prefix) if prefix else None
        count = nbytes = 0
        if node is not None:
            stack = [node]
            while stack:
                n = stack.pop()
                count += 1
                nbytes += data_length(n.data)
                if n.children:
                    stack.extend(n.children.values())
        stat_node = self.get_node(f"{QUOTA_ROOT}{prefix}/{STAT_NODE}")
        if stat_node is not None:
            stat_node.data = _format_stats({"count": count, "bytes": nbytes}).encode()

    def setup_quotas(self) -> None:
        """Rebuild the quota index from /zookeeper/quota after a snapshot load."""
        self.quota_paths.clear()
        for path, _node in list(self.iter_nodes()):
            if path.startswith(QUOTA_ROOT + "/") and path.endswith("/" + LIMIT_NODE):
                real = path[len(QUOTA_ROOT) : -len(LIMIT_NODE) - 1]
                self.quota_paths.add(real)
                self._recount_quota(real)

    # ------------------------------------------------------------------ snapshot loading

    def load_node(self, path: str, data: bytes | None, acl_id: int, stat: StatPersisted) -> None:
        """Add a node read from a snapshot (parents come before children)."""
        packed = PERSISTED.pack(stat.czxid, stat.mzxid, stat.ctime, stat.mtime, stat.version, stat.cversion,
                                stat.aversion, stat.ephemeralOwner, stat.pzxid)
        if path in ("", "/"):
            self.root.data, self.root.acl, self.root.stat = data, acl_id, packed
            self.acls.add_usage(acl_id)
            return
        i = path.rfind("/")
        parent = self.get_node(path[:i] or "/")
        if parent is None:
            raise ValueError(f"snapshot node {path} has no parent")
        if parent.children is None:
            parent.children = {}
        existing = parent.children.get(path[i + 1 :])
        if existing is not None:
            # The system nodes exist from the start; take the snapshot's state for them.
            existing.data, existing.acl, existing.stat = data, acl_id, packed
            self.acls.add_usage(acl_id)
            return
        node = Node(data, acl_id, packed)
        parent.children[path[i + 1 :]] = node
        self.acls.add_usage(acl_id)
        self.node_count += 1
        self.approximate_data_size += len(path) + data_length(data)
        if stat.ephemeralOwner:
            self._track_owner(path, stat.ephemeralOwner)

    # ------------------------------------------------------------------ bulk loading
    # For zkpy.tree.loader, which builds nodes itself at start-up and hands the indexes over here.

    def adopt_loaded(self, owners: Sequence[tuple[str, int]], quota_limits: Sequence[str] | None = None) -> None:
        """Index nodes a bulk loader added: ``owners`` as (path, ephemeralOwner) for the nodes with
        one (ephemerals, containers, TTLs); ``quota_limits``, when given, replaces the quota index
        with these paths and recounts their stats (what ``setup_quotas`` finds)."""
        for path, owner in owners:
            self._track_owner(path, owner)
        if quota_limits is not None:
            self.quota_paths.clear()
            for real in quota_limits:
                self.quota_paths.add(real)
                self._recount_quota(real)
