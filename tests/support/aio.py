"""Kernel AIO for tests: a real AioFsync, and one whose completions a test holds back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zkpy.storage.aio import AioFsync


class HeldAio:
    """Kernel AIO whose completions the test holds back (the fsyncs themselves are real)."""

    def __init__(self, real: AioFsync, fail: bool = False) -> None:
        self.real = real
        self.eventfd = real.eventfd
        self.fail = fail
        self.held = True
        self.stash: list[int] = []
        self.submits: list[tuple[int, int]] = []

    @property
    def in_flight(self) -> int:
        return self.real.in_flight + len(self.stash)

    def submit(self, data_fds: list[int], dir_fds: list[int]) -> None:
        self.submits.append((len(data_fds), len(dir_fds)))
        self.real.submit(data_fds, dir_fds)

    def reap(self) -> list[int]:
        got = self.real.reap()
        if self.held:
            self.stash += got
            return []
        got, self.stash = self.stash + got, []
        return [-5 if self.fail else r for r in got]

    def release(self) -> None:
        self.held = False
        os.eventfd_write(self.eventfd, 1)  # the completions it hid woke the loop already

    def wait(self, timeout_s: float) -> list[int]:
        got, self.stash = self.stash + self.real.wait(timeout_s), []
        return got

    def close(self) -> None:
        self.real.close()


def kernel_aio(tmp_path: Path) -> AioFsync:
    aio = AioFsync.open(tmp_path)
    if aio is None:
        pytest.skip("kernel AIO fsync is not available here (the log uses its thread)")
    return aio
