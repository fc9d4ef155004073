"""``zkpy bench``: throughput, latency, memory and recovery, zkpy against Apache ZooKeeper.

    zkpy bench                              # start a zkpy server, run read/write/create-delete/mixed
    zkpy bench --hosts 127.0.0.1:2181       # against a server already running
    zkpy bench --vs --pin                   # zkpy and Apache ZooKeeper 3.8, A B A B, with ratios
    zkpy bench --vs --workload memory --memory-znodes 1000000
    zkpy bench --vs --ensemble              # 3-member ensembles of each on 127.0.0.x: read, write
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from zkpy.bench.cpu import load_average
from zkpy.bench.report import machine_info, render
from zkpy.bench.runner import BenchError, LoadConfig, ProgressFn
from zkpy.bench.servers import (
    APACHE_HEAP_DEFAULT,
    ENSEMBLE_FIRST_IP,
    ENSEMBLE_SIZE,
    apache_available,
    make_ensemble,
    make_server,
    stop_all,
)
from zkpy.bench.suite import UI, Endpoint, SuiteConfig, run_suite
from zkpy.bench.workloads import WORKLOADS, Params

__all__ = ["main"]

DEFAULT_WORKLOADS = ["read", "write", "create-delete", "mixed"]
# Six members and the load generator share the machine: the two workloads the issue asks for.
DEFAULT_ENSEMBLE_WORKLOADS = ["read", "write"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zkpy bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to run")
    g.add_argument("--workload", "-w", default=None,
                   help=f"comma-separated, or 'all': {', '.join(WORKLOADS)} (default: {','.join(DEFAULT_WORKLOADS)}; "
                   f"with --ensemble {','.join(DEFAULT_ENSEMBLE_WORKLOADS)})")
    g.add_argument("--vs", action="store_true", help="zkpy and Apache ZooKeeper 3.8 in alternating rounds")
    g.add_argument("--baseline", choices=["apache", "zkpy"], default="apache",
                   help="with --vs: what zkpy is compared with (default apache); zkpy starts a second zkpy "
                   "server (or ensemble) instead: an A/A run, whose ratios show how far they move between "
                   "identical servers on this machine")
    g.add_argument("--server", choices=["zkpy", "apache"], default="zkpy",
                   help="without --vs: which server to start (default zkpy)")
    g.add_argument("--hosts", help="without --vs: connect to this server instead of starting one")
    g.add_argument("--zkpy", metavar="HOSTS", help="with --vs: a running zkpy server to use")
    g.add_argument("--apache", metavar="HOSTS", help="with --vs: a running Apache ZooKeeper to use")
    g.add_argument("--ensemble", action="store_true",
                   help=f"{ENSEMBLE_SIZE}-member ensembles instead of standalone servers, each member on its own "
                   "127.0.0.x; sessions spread evenly over the members (with --zkpy/--apache: their connect strings)")
    g.add_argument("--rounds", type=int, default=2, help="rounds per server and workload (default 2)")
    g = p.add_argument_group("load")
    g.add_argument("--workers", type=int, default=2, help="load-generator processes (default 2)")
    g.add_argument("--sessions", type=int, default=16, help="sessions in all (default 16)")
    g.add_argument("--depth", type=int, default=32, help="requests in flight per session (default 32)")
    g.add_argument("--duration", type=float, default=10.0, help="measured seconds per round (default 10)")
    g.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (default 2)")
    g.add_argument("--rate", type=float, default=0.0, help="fixed offered load, requests/s in all (default: "
                   "closed loop, as fast as the server answers)")
    g.add_argument("--same-load", type=float, default=0.0, metavar="FRACTION",
                   help="with --vs: also run read/write/create-delete/mixed at FRACTION x the slower server's "
                   "throughput, the same offered load for both, for the p99 ratio (e.g. 0.7)")
    g.add_argument("--full-client", action="store_true",
                   help="read/write/mixed/watch through the client's public API (argument checks, replies "
                   "decoded) instead of pre-encoded requests and undecoded replies: a heavier load generator")
    g.add_argument("--max-ops", type=int, default=50_000_000, help="bound on requests per worker")
    g = p.add_argument_group("data")
    g.add_argument("--value-size", type=int, default=100, help="bytes per znode (default 100)")
    g.add_argument("--znodes", type=int, default=1000, help="znodes read and written (default 1000)")
    g.add_argument("--read-ratio", type=float, default=0.9, help="mixed: share of reads (default 0.9)")
    g.add_argument("--memory-znodes", type=int, default=1_000_000, help="memory run: znodes (default 1,000,000)")
    g = p.add_argument_group("servers")
    g.add_argument("--pin", action="store_true",
                   help="pin the server(s) to CPU 0 and the load generator to the other CPUs")
    g.add_argument("--dir", help="where servers keep data (default: a temporary directory, removed after)")
    g.add_argument("--wait-quiet", type=float, default=0.0, metavar="PCT",
                   help="before each round wait (see --wait-quiet-max) until the machine's busy CPU is below PCT%% of "
                   "one core (for shared machines)")
    g.add_argument("--wait-quiet-max", type=float, default=120.0, metavar="S",
                   help="the longest --wait-quiet waits before a round (default %(default)s s)")
    g.add_argument("--apache-heap", default=APACHE_HEAP_DEFAULT, help="Apache's -Xmx (default %(default)s)")
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")
    g.add_argument("--output", help="also write the JSON report to this file")
    g.add_argument("--profile", metavar="DIR", help="sample the zkpy server with py-spy every round; collapsed "
                   "stacks and a summary into DIR (pip install py-spy)")
    g.add_argument("--rounds-table", action="store_true", help="also print every round (CPU of the other load)")
    g.add_argument("--render", metavar="JSON", help="print the tables of a saved --output report and exit")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar or notes")
    return p


def _workloads(arg: str) -> list[str]:
    names = list(WORKLOADS) if arg == "all" else [w.strip() for w in arg.split(",") if w.strip()]
    bad = [w for w in names if w not in WORKLOADS]
    if bad or not names:
        raise BenchError(f"unknown workload(s) {', '.join(bad) or arg!r}; choose from {', '.join(WORKLOADS)}")
    return names


def _pinning(pin: bool) -> tuple[set[int] | None, frozenset[int] | None]:
    if not pin:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise BenchError("--pin needs at least 2 CPUs (one for the server, the rest for the load generator)")
    return {cpus[0]}, frozenset(cpus[1:])


def _check(args: argparse.Namespace) -> None:
    if args.workload is None:
        args.workload = ",".join(DEFAULT_ENSEMBLE_WORKLOADS if args.ensemble else DEFAULT_WORKLOADS)
    if args.ensemble and "memory" in _workloads(args.workload):
        raise BenchError("the memory run measures standalone servers: leave out --ensemble for it")
    if args.ensemble and args.hosts:
        raise BenchError("--ensemble starts ensembles; to measure one already running, give --hosts "
                         "without --ensemble (sessions are spread over its members either way)")
    for name in ("workers", "sessions", "depth", "rounds", "znodes", "memory_znodes", "max_ops"):
        if getattr(args, name) < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be at least 1")
    if args.duration <= 0 or args.warmup < 0 or args.rate < 0 or args.value_size < 0:
        raise BenchError("--duration must be > 0; --warmup, --rate and --value-size >= 0")
    if not 0.0 <= args.read_ratio <= 1.0 or not 0.0 <= args.same_load < 1.5:
        raise BenchError("--read-ratio must be within 0..1 and --same-load within 0..1.5")
    if not args.vs and (args.zkpy or args.apache):
        raise BenchError("--zkpy / --apache are for --vs; use --hosts for a single server")
    if "memory" in _workloads(args.workload) and (args.hosts or args.zkpy or args.apache):
        raise BenchError("the memory run restarts the servers: it needs servers the bench starts itself "
                         "(leave out --hosts / --zkpy / --apache)")
    if args.baseline != "apache" and not args.vs:
        raise BenchError("--baseline is for --vs")
    if args.baseline == "zkpy" and "memory" in _workloads(args.workload):
        raise BenchError("the memory run compares with Apache's live heap: leave out --baseline zkpy for it")
    if args.vs and args.hosts:
        raise BenchError("with --vs give --zkpy HOSTS and --apache HOSTS (or neither, to start both)")


class RichUI(UI):
    """Progress bars and notes on stderr, so stdout carries only the report."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.quiet = quiet
        self._progress: Any = None

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False, soft_wrap=True)

    def round(self, label: str) -> ProgressFn | None:
        if self.quiet:
            return None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        prog = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), console=self.console, transient=True)
        task = prog.add_task(label, total=1.0, info="connecting")
        prog.start()
        self._progress = prog

        def update(done: float, total: float, info: str) -> None:
            prog.update(task, completed=done, total=total, info=info)
        return update

    def done(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _slot_names(args: argparse.Namespace) -> dict[str, str]:
    return {"zkpy": "zkpy", "apache": "zkpy baseline" if args.vs and args.baseline == "zkpy" else "apache"}


def _endpoints(args: argparse.Namespace, base: Path, server_cpus: set[int] | None, ui: UI) -> list[Endpoint]:
    kinds = ["zkpy", "apache"] if args.vs else [args.server]
    given = {"zkpy": args.zkpy, "apache": args.apache} if args.vs else {args.server: args.hosts}
    # The second slot of --vs keeps its key "apache" in the report whatever runs in it.
    runs = {"zkpy": "zkpy", "apache": args.baseline if args.vs else "apache"}
    names = _slot_names(args)
    if any(runs[k] == "apache" and not given.get(k) for k in kinds) and not apache_available():
        raise BenchError("Apache ZooKeeper 3.8 is not installed (apt-get install zookeeper), or give --apache HOSTS")
    eps = []
    pinning = f", pinned to CPUs {sorted(server_cpus)}" if server_cpus else ""
    for kind in kinds:
        if given.get(kind):
            eps.append(Endpoint(kind, given[kind], label=names[kind]))
            continue
        label = names[kind]
        if args.ensemble:
            ens = make_ensemble(runs[kind], base / f"{kind}-ensemble", cpus=server_cpus, apache_heap=args.apache_heap,
                                first_ip=ENSEMBLE_FIRST_IP[kind])
            seconds = ens.start()
            roles = ", ".join(f"{m.host} pid {m.pid} {m.mode() or '?'}" for m in ens.members)
            ui.note(f"started {label} ensemble in {seconds:.2f} s: {roles}{pinning}")
            eps.append(Endpoint(kind, ens.hosts, ens, label))
            continue
        srv = make_server(runs[kind], base / kind, cpus=server_cpus, apache_heap=args.apache_heap)
        seconds = srv.start()
        ui.note(f"started {label} server pid {srv.pid} on {srv.hosts} in {seconds:.2f} s{pinning}")
        eps.append(Endpoint(kind, srv.hosts, srv, label))
    return eps


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        print(f"command: {saved.get('command', '?')}")
        print(render(saved, rounds=args.rounds_table), end="")
        return 0
    try:
        _check(args)
        workloads = _workloads(args.workload)
        server_cpus, client_cpus = _pinning(args.pin)
    except BenchError as e:
        print(f"zkpy bench: {e}", file=sys.stderr)
        return 2
    params = Params(znodes=args.znodes, value_size=args.value_size, read_ratio=args.read_ratio,
                    lean=not args.full_client)
    load = LoadConfig(workers=args.workers, sessions=args.sessions, depth=args.depth, warmup_s=args.warmup,
                      duration_s=args.duration, rate=args.rate, max_ops=args.max_ops, client_cpus=client_cpus,
                      params=params)
    # Populating is a counted run: its duration is only a bound.
    memory_load = LoadConfig(workers=args.workers, sessions=args.sessions, depth=args.depth, warmup_s=0.0,
                             duration_s=3600.0, client_cpus=client_cpus, params=params)
    cfg = SuiteConfig(workloads=workloads, load=load, rounds=args.rounds, same_load_fraction=args.same_load,
                      memory_znodes=args.memory_znodes, memory_load=memory_load, quiet_below_pct=args.wait_quiet,
                      quiet_max_wait_s=args.wait_quiet_max,
                      profile_dir=Path(args.profile) if args.profile else None)
    ui = RichUI(args.quiet or (args.json and not sys.stderr.isatty()))
    tmp = None if args.dir else tempfile.TemporaryDirectory(prefix="zkpy-bench-")
    base = Path(args.dir) if args.dir else Path(tmp.name)  # type: ignore[union-attr]
    atexit.register(stop_all)
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        eps = _endpoints(args, base, server_cpus, ui)
        report: dict[str, Any] = {
            "command": "zkpy bench " + shlex.join(argv), "machine": machine_info(),
            "setup": {"pinning": f"server CPUs {sorted(server_cpus)}, load generator CPUs {sorted(client_cpus)}"
                      if server_cpus and client_cpus else "none", "workers": args.workers,
                      "sessions": args.sessions, "depth": args.depth, "duration_s": args.duration,
                      "warmup_s": args.warmup, "rounds": args.rounds, "value_size": args.value_size,
                      "znodes": args.znodes, "client": "full" if args.full_client else "lean",
                      "forceSync": "yes", "load_average_1m": round(load_average(), 2),
                      "mode": f"ensembles of {ENSEMBLE_SIZE}" if args.ensemble else "standalone",
                      **({"baseline": args.baseline} if args.vs else {}),
                      "servers": ", ".join(f"{e.label} {e.hosts}" + ("" if e.server else " (given)") for e in eps)},
        }
        out_path = Path(args.output) if args.output else None

        def save_partial(partial: dict[str, Any]) -> None:
            # A long run interrupted still leaves every workload finished so far.
            if out_path is not None:
                out_path.write_text(json.dumps({**report, **partial, "partial": True}, indent=2) + "\n")
        report.update(run_suite(eps, cfg, ui, save_partial))
        if args.baseline != "apache":
            report.pop("targets", None)  # the targets are against Apache ZooKeeper
    except KeyboardInterrupt:
        ui.done()
        print("zkpy bench: interrupted; servers stopped", file=sys.stderr)
        return 130
    except (BenchError, ValueError, RuntimeError, TimeoutError, OSError) as e:
        ui.done()
        print(f"zkpy bench: {e}", file=sys.stderr)
        return 1
    finally:
        stop_all()
        signal.signal(signal.SIGTERM, old_term)
        if tmp is not None:
            tmp.cleanup()
    text = json.dumps(report, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    if args.json:
        print(text)
    else:
        print(f"command: {report['command']}")
        print(render(report, rounds=args.rounds_table), end="")
    return 0
