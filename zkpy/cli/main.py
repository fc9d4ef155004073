"""The ``zkpy`` command: ``zkpy server | shell | bench | inspect | cleanup``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

USAGE = """usage: zkpy <command> [args]

commands:
  server [zoo.cfg]        run a server (standalone on 127.0.0.1:2181, data in ./zkpy-data by default)
  server --check zoo.cfg  validate a configuration and exit
  shell [-server host:port] [cmd args...]   the zkCli-style shell
  bench [options]         measure throughput and latency (zkpy vs Apache ZooKeeper with --vs)
  inspect FILE            print a snapshot or transaction log readably
  cleanup -n N [dataDir]  keep the N newest snapshots and the logs they need (like zkCleanup.sh)
"""


def _server(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="zkpy server", description="Run a zkpy server.")
    parser.add_argument("config", nargs="?", help="zoo.cfg (default: standalone on 127.0.0.1:2181)")
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR")
    parser.add_argument("--log-file", default=None, help="log to this file instead of stderr")
    args = parser.parse_args(argv)

    from zkpy.server.config import ConfigError, default_config, load_config
    from zkpy.server.runner import run, setup_logging

    setup_logging(args.log_level, args.log_file)
    try:
        config = load_config(Path(args.config)) if args.config else default_config()
    except ConfigError as e:
        print(f"zkpy: invalid configuration: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"zkpy: cannot read configuration: {e}", file=sys.stderr)
        return 2
    if args.check:
        for w in getattr(config, "warnings", []):
            print(f"warning: {w}", file=sys.stderr)
        print(f"{args.config or '(defaults)'}: OK")
        return 0
    return run(config)


def _cleanup(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="zkpy cleanup",
                                     description="Delete old snapshots and logs (like zkCleanup.sh).")
    parser.add_argument("-n", type=int, default=3, help="snapshots to keep (at least 3; default 3)")
    parser.add_argument("where", nargs="?", default="zkpy-data",
                        help="a zoo.cfg (its dataDir/dataLogDir) or a data directory (default ./zkpy-data)")
    args = parser.parse_args(argv)
    if args.n < 3:
        print("zkpy cleanup: -n must be at least 3", file=sys.stderr)
        return 2
    from zkpy.storage.purge import purge

    where = Path(args.where)
    if where.is_file():
        from zkpy.server.config import ConfigError, load_config

        try:
            cfg = load_config(where)
        except ConfigError as e:
            print(f"zkpy: invalid configuration: {e}", file=sys.stderr)
            return 2
        data_dir, log_dir = Path(cfg.data_dir), Path(cfg.data_log_dir)
    else:
        data_dir = log_dir = where
    purge(data_dir, log_dir, args.n)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "server":
        return _server(rest)
    if cmd == "shell":
        from zkpy.cli.shell import main as shell_main

        return shell_main(rest)
    if cmd == "bench":
        from zkpy.bench.cli import main as bench_main

        return bench_main(rest)
    if cmd == "inspect":
        from zkpy.storage.inspect import main as inspect_main

        return inspect_main(rest)
    if cmd == "cleanup":
        return _cleanup(rest)
    print(f"zkpy: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2
