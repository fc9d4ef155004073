"""Run a server process from a configuration: logging, event loop, signals, shutdown.

``zkpy server [zoo.cfg]`` ends up here.  The database is loaded before the
client port opens; SIGTERM / SIGINT stop accepting, let pending writes finish
their fsync, and exit within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from typing import Any

log = logging.getLogger("zkpy.server")


class JsonFormatter(logging.Formatter):
    """One JSON object a line (ZKPY_LOG_FORMAT=json), for log shippers that parse fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
                 "level": record.levelname, "logger": record.name, "msg": record.getMessage(),
                 "thread": record.threadName}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str | None = None, log_file: str | None = None, log_format: str | None = None) -> None:
    level = (level or os.environ.get("ZKPY_LOG_LEVEL") or "INFO").upper()
    log_format = (log_format or os.environ.get("ZKPY_LOG_FORMAT") or "text").lower()
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
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
    if getattr(config, "is_quorum", False):
        from zkpy.server.ensemble import serve_member

        return await serve_member(config, ready, stop)
    from zkpy.server.fourlw import FourLetterWords
    from zkpy.server.persistence import open_storage
    from zkpy.server.server import ZooKeeperServer

    storage = open_storage(config)
    server = ZooKeeperServer(config, durability=storage.durability)
    server.four_letter_words = FourLetterWords(config)
    # As ZooKeeperServerMain: the metrics provider, then the AdminServer, then the database.
    endpoints = await start_endpoints(config, server, storage)
    if isinstance(endpoints, int):
        return endpoints
    storage.load_into(server)
    stop = stop or asyncio.Event()
    # A failed log write must never be acknowledged: stop serving (ZooKeeper exits too).
    server.pipeline.on_failure = stop.set
    stop_on_signals(stop)
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
    await close_endpoints(*endpoints)
    if server.pipeline.failed is not None:
        log.critical("stopped after a transaction log failure: %s", server.pipeline.failed)
        return 1
    log.info("stopped")
    return 0


async def start_endpoints(config: Any, server: Any, storage: Any) -> tuple[Any, Any] | int:
    """The metrics endpoint, then the AdminServer; the exit code ZooKeeper gives when one cannot
    start (1, 4)."""
    from zkpy.server.admin import AdminServerError, start_admin_server
    from zkpy.server.metrics import MetricsProviderError, start_metrics_http

    try:
        metrics_http = await start_metrics_http(config, server.metrics)
    except MetricsProviderError as e:
        log.critical("Unexpected exception, exiting abnormally: %s", e)
        return 1
    try:
        admin = await start_admin_server(config, server, storage)
    except AdminServerError as e:
        log.critical("Unable to start AdminServer, exiting abnormally: %s", e)
        print("Unable to start AdminServer, exiting abnormally", file=sys.stderr)
        await close_endpoints(metrics_http)
        return 4
    return metrics_http, admin


async def close_endpoints(*endpoints: Any) -> None:
    for endpoint in endpoints:
        if endpoint is not None:
            await endpoint.close()


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (where the loop can take signal handlers)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


# The cyclic collector's first generation is collected every GC_YOUNG_THRESHOLD container
# objects allocated and not freed; Python's 700 makes a server collect about 75 times a second
# under write load for little garbage (callgrind over the whole server, 16 sessions x depth 32:
# setData 117.8k -> 114.2k instructions, create+delete 133.6k -> 129.5k per request with 7000).
GC_YOUNG_THRESHOLD = 7000


def run(config: Any) -> int:
    from zkpy.storage.errors import StorageError

    install_event_loop_policy()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    try:
        return asyncio.run(serve(config))
    except StorageError as e:
        log.critical("cannot recover the data directory, refusing to start: %s", e)
        print(f"zkpy: cannot recover the data directory, refusing to start: {e}", file=sys.stderr)
        return 3
