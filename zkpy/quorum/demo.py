"""A test harness process for quorum mode before the server is wired to it.

``python -m zkpy.quorum.demo --config zoo.cfg`` runs one ensemble member from a zoo.cfg
(``server.N`` lines, ``myid`` in dataDir, tickTime, initLimit, syncLimit, leaderServes,
peerType): the real driver, transport and disk, applying real txns (creates of
``/w-...`` znodes) to a real database, and instead of the client protocol a JSON-lines
control port on the member's clientPort:

- ``{"op": "status"}`` -> role, leader, epoch, serving, last logged / applied zxid and a
  digest of the ``/w-`` znodes;
- ``{"op": "write", "data": "..."}`` -> ``{"ok": true, "zxid": Z, "path": P}`` once the
  txn is committed and applied here (a follower forwards it to the leader, which prepares
  the CreateTxn, as the server's prep will);
- ``{"op": "sync"}`` -> ``{"ok": true}`` once everything committed before it is applied here;
- ``{"op": "paths"}`` -> every ``/w-`` path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from zkpy.proto.constants import OpCode
from zkpy.proto.records import CreateRequest, CreateTxn, SyncRequest, TxnHeader
from zkpy.quorum import wire
from zkpy.quorum.disk import QuorumDisk
from zkpy.quorum.driver import QuorumDriver
from zkpy.quorum.effects import Role
from zkpy.quorum.leader import NotLeaderError, ZxidRolloverError
from zkpy.quorum.learner import NotServingError
from zkpy.quorum.peer import PeerConfig
from zkpy.quorum.snapwire import encode_database
from zkpy.quorum.transport import PeerAddress
from zkpy.server.config import load_config
from zkpy.server.database import Database
from zkpy.storage import decode_txn, encode_txn
from zkpy.tree.acl import OPEN_ACL_UNSAFE

log = logging.getLogger("zkpy.quorum.demo")

REQUEST_TIMEOUT_S = 15.0
PREFIX = "/w-"


def create_entry(session: int, cxid: int, path: str, data: bytes) -> bytes:
    """What prep makes of a create: TxnHeader + CreateTxn (the leader assigns the zxid)."""
    hdr = TxnHeader(session, cxid, 0, int(time.time() * 1000), OpCode.create)
    return encode_txn(hdr, CreateTxn(path, data, list(OPEN_ACL_UNSAFE), False, -1))


class DemoMember:
    """The server's part, reduced to what a test needs."""

    def __init__(self, config_path: Path, history_limit: int = 100_000) -> None:
        cfg = load_config(config_path, env={})
        if not cfg.is_quorum or cfg.my_id is None:
            raise SystemExit("the demo needs an ensemble configuration (server.N lines and a myid)")
        self.cfg = cfg
        self.my_id = cfg.my_id
        peers = {sid: PeerAddress(s.host, s.quorum_port, s.election_port) for sid, s in cfg.servers.items()}
        voters = frozenset(sid for sid, s in cfg.servers.items() if s.peer_type == "participant")
        observers = frozenset(sid for sid, s in cfg.servers.items() if s.peer_type == "observer")
        membership = "\n".join(f"server.{sid}={cfg.servers[sid]}" for sid in sorted(cfg.servers)) + "\nversion=0"
        self.peer_config = PeerConfig(my_id=self.my_id, voters=voters, observers=observers,
                                      tick_ms=cfg.tick_time_ms, init_limit=cfg.init_limit,
                                      sync_limit=cfg.sync_limit, leader_serves=cfg.leader_serves,
                                      config_bytes=membership.encode(), history_limit=history_limit)
        self.disk = QuorumDisk(cfg.data_dir, cfg.data_log_dir, prealloc_bytes=1024 * 1024,
                               force_sync=cfg.force_sync, history_limit=history_limit)
        self.db, state = self.disk.load()
        self.driver = QuorumDriver(self.peer_config, peers, self.disk, state, self)
        # Session ids as ZooKeeper makes them: server id in the top byte, unique per start.
        stamp = ((int(time.time() * 1000) << 24) & 0xFFFFFFFFFFFFFFFF) >> 8
        self.session = ((self.my_id << 56) | stamp) & 0x7FFFFFFFFFFFFFFF
        self._cxid = itertools.count(1)
        self._pending: dict[tuple[int, int], asyncio.Future[int]] = {}
        self._syncs: dict[int, asyncio.Future[None]] = {}
        self.role = Role.LOOKING
        self.serving = False
        self.stop = asyncio.Event()

    # ------------------------------------------------------------------ ServerHooks

    def apply(self, zxid: int, entry: bytes) -> None:
        e = decode_txn(entry)
        self.db.apply(e.hdr, e.txn)
        fut = self._pending.pop((e.hdr.clientId, e.hdr.cxid), None)
        if fut is not None and not fut.done():
            fut.set_result(zxid)

    def applied_zxid(self) -> int:
        return self.db.last_zxid

    def snapshot_bytes(self) -> bytes:
        return encode_database(self.db)

    def replace_database(self, db: Database) -> None:
        log.info("database replaced (now at 0x%x)", db.last_zxid)
        self.db = db

    def role_changed(self, role: Role, leader_id: int | None, epoch: int) -> None:
        self.role = role
        log.info("role: %s (leader %s, epoch %d)", role.value, leader_id, epoch)

    def serving_changed(self, serving: bool) -> None:
        self.serving = serving
        log.info("serving: %s", serving)

    def learner_request(self, sid: int, request: bytes, authinfo: list) -> None:
        session, cxid, op = wire.decode_request_head(request)
        if op != OpCode.create:
            return
        req = CreateRequest.from_bytes(request[16:])
        with contextlib.suppress(NotLeaderError, ZxidRolloverError):
            self.driver.propose(create_entry(session, cxid, req.path or "", req.data or b""))

    def session_touches(self, touches: list[tuple[int, int]]) -> None:
        pass

    def revalidate_request(self, sid: int, session_id: int, timeout_ms: int) -> None:
        self.driver.revalidate_reply(sid, session_id, True)

    def revalidated(self, session_id: int, valid: bool) -> None:
        pass

    def sync_done(self, token: object) -> None:
        fut = self._syncs.pop(token, None)  # type: ignore[call-overload]
        if fut is not None and not fut.done():
            fut.set_result(None)

    def fatal(self, error: BaseException) -> None:
        log.critical("stopping: %s", error)
        self.stop.set()

    # ------------------------------------------------------------------ control port

    def status(self) -> dict[str, Any]:
        core = self.driver.peer
        paths = self.paths()
        h = hashlib.sha1()
        for p in paths:
            node = self.db.tree.get_node(p)
            h.update(p.encode() + b"\0" + (node.data or b"" if node else b"") + b"\0")
        return {"sid": self.my_id, "role": core.role.value, "leader": core.leader_id, "epoch": core.epoch,
                "serving": core.serving, "phase": core.phase.value, "last_zxid": core.last_logged_zxid,
                "applied": self.db.last_zxid, "count": len(paths), "digest": h.hexdigest(),
                "elections": core.elections, "accepted_epoch": core.accepted_epoch,
                "current_epoch": core.current_epoch}

    def paths(self) -> list[str]:
        root = self.db.tree.root
        return sorted("/" + name for name in (root.children or {}) if ("/" + name).startswith(PREFIX))

    async def write(self, data: bytes) -> dict[str, Any]:
        if not self.serving:
            return {"ok": False, "error": "not serving"}
        cxid = next(self._cxid)
        path = f"{PREFIX}{self.my_id}-{self.session & 0xFFFFFFFFFF:x}-{cxid:08d}"
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[(self.session, cxid)] = fut
        try:
            core = self.driver.peer
            if core.leader is not None:
                self.driver.propose(create_entry(self.session, cxid, path, data))
            else:
                body = CreateRequest(path, data, list(OPEN_ACL_UNSAFE), 0).to_bytes()
                self.driver.forward(wire.encode_request(self.session, cxid, OpCode.create, body))
            zxid = await asyncio.wait_for(fut, REQUEST_TIMEOUT_S)
        except (NotLeaderError, NotServingError, ZxidRolloverError) as e:
            return {"ok": False, "error": str(e)}
        except TimeoutError:
            return {"ok": False, "error": "timeout"}
        finally:
            self._pending.pop((self.session, cxid), None)
        return {"ok": True, "zxid": zxid, "path": path}

    async def sync(self) -> dict[str, Any]:
        if not self.serving:
            return {"ok": False, "error": "not serving"}
        cxid = next(self._cxid)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._syncs[cxid] = fut
        try:
            self.driver.sync(cxid, wire.encode_request(self.session, cxid, OpCode.sync, SyncRequest("/").to_bytes()))
            await asyncio.wait_for(fut, REQUEST_TIMEOUT_S)
        except (NotLeaderError, NotServingError) as e:
            return {"ok": False, "error": str(e)}
        except TimeoutError:
            return {"ok": False, "error": "timeout"}
        finally:
            self._syncs.pop(cxid, None)
        return {"ok": True, "applied": self.db.last_zxid}

    async def handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    req = json.loads(line)
                    op = req.get("op")
                    if op == "status":
                        resp = self.status()
                    elif op == "write":
                        resp = await self.write(str(req.get("data", "")).encode())
                    elif op == "sync":
                        resp = await self.sync()
                    elif op == "paths":
                        resp = {"paths": self.paths()}
                    else:
                        resp = {"ok": False, "error": f"unknown op {op!r}"}
                except (ValueError, AttributeError) as e:
                    resp = {"ok": False, "error": str(e)}
                writer.write(json.dumps(resp).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def run(self) -> None:
        await self.driver.start()
        me = self.cfg.servers[self.my_id]
        host = me.client_host or me.host
        port = me.client_port or self.cfg.client_port
        server = await asyncio.start_server(self.handle_client, host, port, reuse_address=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        log.info("demo member %d: control port %s:%d, pid %d", self.my_id, host, port, os.getpid())
        print(f"READY {self.my_id} {host}:{port}", flush=True)
        await self.stop.wait()
        server.close()
        await self.driver.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m zkpy.quorum.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, type=Path, help="zoo.cfg of this member")
    ap.add_argument("--log-level", default=os.environ.get("ZKPY_LOG_LEVEL", "INFO"))
    ap.add_argument("--history-limit", type=int, default=100_000,
                    help="txns kept in memory for DIFF syncs; a learner further behind gets SNAP")
    args = ap.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")

    async def go() -> None:
        member = DemoMember(args.config, args.history_limit)
        await member.run()

    asyncio.run(go())
    return 0


if __name__ == "__main__":
    sys.exit(main())
