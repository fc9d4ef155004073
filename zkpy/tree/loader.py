"""Bulk building of a data tree at start-up: from a snapshot's nodes, then from the log.

Both produce exactly the tree that ``DataTree.load_node`` (node by node) and ``DataTree.apply``
(txn by txn, replay mode) would, only faster; ``tests/test_loader.py`` checks that node for node.

**Snapshot** (:func:`load_nodes`).  A snapshot lists its nodes in pre-order, so a node's parent
is almost always the directory of the node before it, or that node itself, or one of its
ancestors: the loader keeps that chain instead of walking every path from the root.  Each node
is built with its stat as the 60 bytes the file holds (the layout ``Node.stat`` keeps), and
nothing else is allocated per node.  ACL references are counted per run of equal ids; the
quota index is rebuilt from ``/zookeeper/quota`` alone instead of a pass over every node.

**Log** (:class:`Replayer`).  Plain creates and setData, most of any log, are applied here
directly, with the parents of recent creates remembered and the ACL list of the previous create
reused when the next one has an equal list.  Every other txn, and any create or setData that is
not plain (a quota path, a missing parent, a node already there after a fuzzy snapshot, a tree
with a listener or quotas), goes through the caller's ``apply`` (``Database.apply(...,
replay=True)``) and drops what was remembered.  What the fast path does mirrors
``DataTree.create_node`` and ``DataTree.set_data``: change them together.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from zkpy.proto.constants import OpCode
from zkpy.proto.records import CreateTxn, SetDataTxn, TxnHeader
from zkpy.tree.datatree import LIMIT_NODE, QUOTA_ROOT, DataTree
from zkpy.tree.node import PERSISTED, Node

__all__ = ["PackedNode", "Replayer", "SnapshotLoadError", "load_nodes"]

# (path, data, acl id, the 60-byte packed StatPersisted): a snapshot's node as the file holds it
# (SnapshotReader.iter_packed_nodes; the stat is taken as it is, so it must be 60 bytes).
PackedNode = tuple[str, bytes | None, int, bytes]

_OWNER_AT = 44  # offset of ephemeralOwner in the packed stat (>qqqqiii then q)
_NO_OWNER = bytes(8)
_CREATE, _CREATE2, _SET_DATA = int(OpCode.create), int(OpCode.create2), int(OpCode.setData)
# Txns that change neither the tree's shape nor its ACL references: what the replayer remembers
# stays valid across them.
_HARMLESS = frozenset({int(OpCode.createSession), int(OpCode.error), int(OpCode.check)})
_PARENTS_REMEMBERED_MAX = 1024


class SnapshotLoadError(ValueError):
    """The nodes do not form a tree (a node before its parent, a second root...)."""


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Building a million nodes makes the cyclic collector scan the growing tree again and again
    (~20% of a load) though nothing built here forms a cycle; reference counting still frees
    everything.  The collector's previous state is restored afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------------- snapshot


def load_nodes(tree: DataTree, acls: dict[int, list[Any]], nodes: Iterable[PackedNode]) -> int:
    """Fill a fresh ``tree`` from a snapshot's ACL map and its nodes, root first; the node count.

    The same tree as ``tree.acls.load(acls)``, ``tree.load_node`` for every node,
    ``tree.acls.purge_unused()`` and ``tree.setup_quotas()``.  Raises SnapshotLoadError when a
    node's parent was not loaded before it."""
    tree.acls.load(acls)
    it = iter(nodes)
    first = next(it, None)
    if first is None:
        raise SnapshotLoadError("no root node")
    path, data, aid, stat = first
    if path != "/":
        raise SnapshotLoadError(f"the first node must be the root, not {path!r}")
    root = tree.root
    root.data, root.acl, root.stat = data, aid, stat
    refs: dict[int, int] = {aid: 1}
    owners: list[tuple[str, bytes]] = []
    read, added, size = _load_below_root(tree, it, refs, owners)
    tree.node_count += added
    tree.approximate_data_size += size
    for ref_aid, n in refs.items():
        tree.acls.add_usages(ref_aid, n)
    tree.acls.purge_unused()
    tree.adopt_loaded([(p, PERSISTED.unpack(st)[7]) for p, st in owners], _quota_limits(tree))
    return 1 + read


def _load_below_root(tree: DataTree, it: Iterator[PackedNode], refs: dict[int, int],
                     owners: list[tuple[str, bytes]]) -> tuple[int, int, int]:
    """Every node after the root; (nodes read, nodes added, path + data bytes added)."""
    root = tree.root
    # The directory of the previous node ("" is the root: "/a" has the prefix "") with its
    # length, and the directories above it, innermost last.
    cur, cur_len, cur_node = "", 0, root
    stack: list[tuple[str, int, Node]] = []
    last, last_len, last_node = "", 0, root
    run_aid, run_n = 0, 0  # ACL references, counted per run of equal ids
    read = added = size = 0
    new_node = Node
    no_owner, owner_at = _NO_OWNER, _OWNER_AT
    for path, data, aid, stat in it:
        read += 1
        s = path.rfind("/")
        if s == cur_len and path.startswith(cur):
            parent = cur_node
        elif s == last_len and path.startswith(last):
            # The first child of the node before: go down.
            stack.append((cur, cur_len, cur_node))
            cur, cur_len, cur_node = last, last_len, last_node
            parent = cur_node
        else:
            # Back up to an ancestor; a parent that is not one (nodes out of pre-order) is
            # looked up from the root.
            while stack:  # bounded by the depth
                cur, cur_len, cur_node = stack.pop()
                if s == cur_len and path.startswith(cur):
                    break
            else:
                cur, cur_len = path[:s], s
                found = tree.get_node(cur or "/") if s >= 0 else None
                if found is None or s < 0 or path == "/":
                    raise SnapshotLoadError(f"Invalid Datatree, unable to find parent {cur} of path {path}")
                cur_node = found
            parent = cur_node
        if aid != run_aid:
            if run_n:
                refs[run_aid] = refs.get(run_aid, 0) + run_n
            run_aid, run_n = aid, 0
        run_n += 1
        ch = parent.children
        if ch is None:
            ch = parent.children = {}
        node = new_node(data, aid, stat)
        there = ch.setdefault(path[s + 1:], node)
        last_len = len(path)
        if there is not node:
            # The system nodes exist from the start; they take the snapshot's state (load_node).
            there.data, there.acl, there.stat = data, aid, stat
            last, last_node = path, there
            continue
        added += 1
        size += last_len if data is None else last_len + len(data)
        if not stat.startswith(no_owner, owner_at):
            owners.append((path, stat))
        last, last_node = path, node
    if run_n:
        refs[run_aid] = refs.get(run_aid, 0) + run_n
    return read, added, size


def _quota_limits(tree: DataTree) -> list[str]:
    """The quota-limited paths, from the ``zookeeper_limits`` nodes under /zookeeper/quota, in
    pre-order (what ``setup_quotas`` finds walking the whole tree)."""
    top = tree.get_node(QUOTA_ROOT)
    out: list[str] = []
    if top is None or not top.children:
        return out
    stack: list[tuple[str, Node]] = [(f"{QUOTA_ROOT}/{name}", child)
                                     for name, child in reversed(top.children.items())]
    while stack:  # bounded: each node of the subtree once
        path, node = stack.pop()
        if path.endswith("/" + LIMIT_NODE):
            out.append(path[len(QUOTA_ROOT):-len(LIMIT_NODE) - 1])
        if node.children:
            stack.extend((f"{path}/{name}", child) for name, child in reversed(node.children.items()))
    return out


# ---------------------------------------------------------------------- log


class Replayer:
    """Applies logged txns after a snapshot (or from an empty tree) in zxid order."""

    def __init__(self, tree: DataTree, apply: Callable[[TxnHeader, Any], object]) -> None:
        self.tree = tree
        self.apply = apply  # every txn the fast path does not take, e.g. Database.apply(..., replay=True)
        self.fast = 0  # txns applied by the fast path
        self.slow = 0

    def replay(self, entries: Iterable[Any]) -> int:
        """Apply every entry (``.hdr``, ``.txn``); the number applied."""
        with _collector_paused():
            return self._replay(entries)

    def _replay(self, entries: Iterable[Any]) -> int:
        tree = self.tree
        apply = self.apply
        if tree.listener is not None:
            # Changes must be reported one by one: nothing to gain here.
            n = 0
            for e in entries:
                apply(e.hdr, e.txn)
                n += 1
            self.slow += n
            return n
        unpack, pack = PERSISTED.unpack, PERSISTED.pack
        acls = tree.acls
        quotas = tree.quota_paths
        # Parents of recent creates by path ("" for the root, as get_node takes it).
        parents: dict[str, Node] = {}
        # The previous create's ACL list, its id, and references to it not yet added.
        last_acl: Any = None
        last_aid = pending_refs = 0
        fast = slow = 0
        count, size, top_zxid = 0, 0, tree.last_processed_zxid
        for e in entries:
            hdr = e.hdr
            op = hdr.type
            txn = e.txn
            if (op == _CREATE or op == _CREATE2) and type(txn) is CreateTxn and not quotas:
                path = txn.path
                s = path.rfind("/")
                ppath = path[:s]
                parent = parents.get(ppath)
                if parent is None and s >= 0 and not path.startswith("/zookeeper"):
                    parent = tree.get_node(ppath)
                    if parent is not None:
                        if len(parents) >= _PARENTS_REMEMBERED_MAX:
                            parents.clear()
                        parents[ppath] = parent
                if parent is not None:
                    name = path[s + 1:]
                    ch = parent.children
                    if ch is None:
                        ch = parent.children = {}  # as create_node, before it adds the child
                    if name not in ch:
                        # DataTree.create_node, for a parent that exists and a new name.
                        zxid = hdr.zxid
                        pczxid, pmzxid, pctime, pmtime, pver, pcver, paver, powner, _ = unpack(parent.stat)
                        pcv = txn.parentCVersion
                        if pcv == -1:
                            pcv = pcver + 1
                        if pcv > pcver:
                            parent.stat = pack(pczxid, pmzxid, pctime, pmtime, pver, pcv, paver, powner, zxid)
                        acl = txn.acl
                        if acl is not None and last_acl is not None and acl == last_acl:
                            aid = last_aid
                            pending_refs += 1
                        else:
                            if pending_refs:
                                acls.add_usages(last_aid, pending_refs)
                                pending_refs = 0
                            aid = acls.intern(acl)
                            last_acl, last_aid = acl, aid
                        owner = hdr.clientId if txn.ephemeral else 0
                        data = txn.data
                        t = hdr.time
                        ch[name] = Node(data, aid, pack(zxid, zxid, t, t, 0, 0, 0, owner, zxid))
                        count += 1
                        size += len(path) if data is None else len(path) + len(data)
                        if owner:
                            tree.adopt_loaded(((path, owner),))
                        if zxid > top_zxid:
                            top_zxid = zxid
                        fast += 1
                        continue
            elif op == _SET_DATA and type(txn) is SetDataTxn and not quotas:
                path = txn.path
                s = path.rfind("/")
                node = None
                if s >= 0 and path != "/":
                    parent = parents.get(path[:s])
                    if parent is not None:
                        ch = parent.children
                        node = ch.get(path[s + 1:]) if ch else None
                    else:
                        node = tree.get_node(path)
                if node is not None:
                    # DataTree.set_data, for a node that exists (the Stat it returns is not needed).
                    zxid = hdr.zxid
                    old = node.data
                    czxid, _m, ctime, _t, _v, cver, aver, owner, pzxid = unpack(node.stat)
                    node.stat = pack(czxid, zxid, ctime, hdr.time, txn.version, cver, aver, owner, pzxid)
                    data = node.data = txn.data
                    size += (0 if data is None else len(data)) - (0 if old is None else len(old))
                    if zxid > top_zxid:
                        top_zxid = zxid
                    fast += 1
                    continue
            # Everything else: the tree's own apply, with what it reads up to date.
            tree.node_count += count
            tree.approximate_data_size += size
            if top_zxid > tree.last_processed_zxid:
                tree.last_processed_zxid = top_zxid
            count = size = 0
            if pending_refs:
                acls.add_usages(last_aid, pending_refs)
                pending_refs = 0
            apply(hdr, txn)
            top_zxid = tree.last_processed_zxid
            quotas = tree.quota_paths
            slow += 1
            if op not in _HARMLESS:
                parents.clear()
                last_acl = None
        tree.node_count += count
        tree.approximate_data_size += size
        if top_zxid > tree.last_processed_zxid:
            tree.last_processed_zxid = top_zxid
        if pending_refs:
            acls.add_usages(last_aid, pending_refs)
        self.fast += fast
        self.slow += slow
        return fast + slow
