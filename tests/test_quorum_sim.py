"""The deterministic simulator: thousands of seeded runs with faults, invariants checked after
every step.  A failure names its seed; ``python -m zkpy.quorum.sim --seed N -v`` replays it."""

from __future__ import annotations

import collections
import os
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from zkpy.quorum import learner, sim, wire
from zkpy.quorum.leader import LeaderCore

SEEDS = int(os.environ.get("ZKPY_SIM_SEEDS", "3000"))
WORKERS = 2  # the machine has two cores, shared
CHUNK = 100


def replay_hint(failures: list[tuple[int, str]]) -> str:
    return "\n".join(f"{msg}\n  replay: python -m zkpy.quorum.sim --seed {seed} -v" for seed, msg in failures[:10])


def test_thousands_of_seeds_hold_every_invariant():
    starts = list(range(0, SEEDS, CHUNK))
    stops = [min(s + CHUNK, SEEDS) for s in starts]
    with ProcessPoolExecutor(WORKERS) as ex:
        results = list(ex.map(sim.run_range, starts, stops))
    failures = [f for _, fs in results for f in fs]
    assert sum(n for n, _ in results) == SEEDS
    assert not failures, replay_hint(failures)


def test_a_seed_replays_exactly():
    assert sim.run_seed(4242) == sim.run_seed(4242)


def test_seeds_exercise_every_fault_and_sync_mode():
    seen: collections.Counter[str] = collections.Counter()
    for seed in range(150):
        r = sim.run_seed(seed)
        seen.update(f.split()[0] for f in r.faults)
        seen.update({"snap": r.snaps, "trunc": r.truncs, "acked": r.acked_writes, "syncs": r.syncs})
    for what in ("crash", "outage", "wipe", "partition", "pause", "reset", "snap", "trunc", "acked", "syncs"):
        assert seen[what] > 0, (what, seen)


def test_the_checker_catches_split_leadership(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(LeaderCore, "_quorum", lambda self, sids: True)  # one vote is a quorum
    with pytest.raises(sim.Violation, match=r"established by both|committed history"):
        for seed in range(200):
            sim.run_seed(seed)


def test_the_checker_catches_acknowledging_before_the_fsync(monkeypatch: pytest.MonkeyPatch):
    real = learner.LearnerCore._broadcast_packet

    def acks_early(self: learner.LearnerCore, qp: wire.QuorumPacket) -> None:
        real(self, qp)
        if qp.type == wire.PROPOSAL and not self.observer and self.alive:
            self.host.send(self.conn, wire.packet(wire.ACK, qp.zxid))

    monkeypatch.setattr(learner.LearnerCore, "_broadcast_packet", acks_early)
    with pytest.raises(sim.Violation, match="committed history"):
        for seed in range(2000):
            sim.run_seed(seed)


@pytest.mark.slow
def test_soak():
    """Bigger runs (more faults, longer, 5 members more often) for a bounded time."""
    budget_s = float(os.environ.get("ZKPY_SIM_SOAK_S", "60"))
    end = time.monotonic() + budget_s
    seed, failures = 1_000_000, []
    while time.monotonic() < end and len(failures) < 3:
        try:
            sim.run_seed(seed, soak=True)
        except Exception as e:
            failures.append((seed, str(e)))
        seed += 1
    assert not failures, "\n".join(f"{m}\n  replay: python -m zkpy.quorum.sim --seed {s} --soak 1 -v"
                                   for s, m in failures)
