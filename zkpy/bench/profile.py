"""Sample the zkpy server with py-spy during a round, and summarize where its time goes.

py-spy is not a dependency: ``pip install py-spy`` for a profiling run.  It samples the
server from outside (``--nonblocking``: the server is never paused), writing collapsed
stacks; :func:`summarize` turns them into the top functions by self and by total time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Profiler", "py_spy_path", "summarize"]

RATE_HZ = 250
# Frames every sample passes through (interpreter start-up, the CLI, the event loop's entry):
# left out of the "total" list, where they would only say 100%.
_WRAPPERS = ("<frozen runpy>:", "<frozen importlib", "zkpy/__main__.py:", "cli/main.py:", "server/runner.py:run",
             "asyncio/runners.py:run", "asyncio/runners.py:Runner.run", "threading.py:", "futures/thread.py:_worker")
# uvloop is C: time spent inside it (epoll, socket reads and writes, scheduling callbacks) shows
# as the Python frame that entered the loop.
_LOOP_FRAME = "asyncio/runners.py:Runner.run"
_LOOP_NAME = "uvloop internals (C: epoll, socket I/O, callback dispatch)"


def py_spy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Profiler:
    """One py-spy process recording one server PID for ``duration_s``."""

    pid: int
    out: Path
    duration_s: float
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = py_spy_path()
        if exe is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(self.pid), "--duration", str(max(1, round(self.duration_s))),
             "--rate", str(RATE_HZ), "--format", "raw", "--nonblocking", "--output", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def finish(self, timeout_s: float = 60.0) -> dict[str, Any]:
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
        return summarize(self.out) if self.out.exists() else {}


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)": keep function and file:line.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rpartition(":")[0]  # by function, not by line
    short = "/".join(Path(path).parts[-2:]) if path else where
    return f"{short}:{name}" if short else name


def summarize(collapsed: Path, top: int = 15) -> dict[str, Any]:
    """Top functions by self time (the leaf frame) and by total time (anywhere on the stack)."""
    self_t: Counter[str] = Counter()
    total_t: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        samples += n
        leaf = frames[-1]
        self_t[_LOOP_NAME if leaf == _LOOP_FRAME else leaf] += n
        for f in set(frames):
            if not f.startswith(_WRAPPERS):
                total_t[f] += n

    def pct(c: Counter[str]) -> list[list[Any]]:
        return [[name, round(100.0 * n / max(1, samples), 1)] for name, n in c.most_common(top)]

    return {"samples": samples, "self_pct": pct(self_t), "total_pct": pct(total_t), "file": str(collapsed)}
