"""Run a server process from a configuration: logging, event loop, signals, shutdown.

``zkpy server [zoo.cfg]`` ends up here.  The database is loaded before the
client port opens; SIGTERM / SIGINT stop accepting, let pending writes finish
their fsync, and exit within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any

log = logging.getLogger("zkpy.server")


def setup_logging(level: str | None = None, log_file: str | None = None) -> None:
    level = (level or os.environ.get("ZKPY_LOG_LEVEL") or "INFO").upper()
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level, logging.INFO))


def install_event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve(config: Any, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> int:
    from zkpy.server.fourlw import FourLetterWords
    from zkpy.server.persistence import open_storage
    from zkpy.server.server import ZooKeeperServer

    storage = open_storage(config)
    server = ZooKeeperServer(config, durability=storage.durability)
    server.four_letter_words = FourLetterWords(config)
    storage.load_into(server)
    stop = stop or asyncio.Event()
    # A failed log write must never be acknowledged: stop serving (ZooKeeper exits too).
    server.pipeline.on_failure = stop.set
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    host = config.client_port_address or "0.0.0.0"
    await server.start(host, config.client_port)
    storage.start_background(server)
    log.info("zkpy serving on %s:%d (data %s, last zxid 0x%x)", host, server.bound_port,
             getattr(config, "data_dir", None), server.last_zxid)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down")
    await server.stop()
    await storage.close()
    if server.pipeline.failed is not None:
        log.critical("stopped after a transaction log failure: %s", server.pipeline.failed)
        return 1
    log.info("stopped")
    return 0


def run(config: Any) -> int:
    from zkpy.storage.errors import StorageError

    install_event_loop_policy()
    try:
        return asyncio.run(serve(config))
    except StorageError as e:
        log.critical("cannot recover the data directory, refusing to start: %s", e)
        print(f"zkpy: cannot recover the data directory, refusing to start: {e}", file=sys.stderr)
        return 3
