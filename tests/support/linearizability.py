"""A linearizability checker for a compare-and-set register (one znode's data and version).

Operations come from concurrent clients with real-time intervals.  The checker searches
for a total order that respects real time (an op that returned before another was invoked
comes first) and the register's semantics — the Wing & Gong search with memoization of
(linearized set, state), as in Lowe's and Knossos' checkers.  An op whose outcome is
unknown (the connection dropped) may be linearized anywhere after its invocation, or never.
"""

from __future__ import annotations

from dataclasses import dataclass

INF = float("inf")


@dataclass(frozen=True)
class Op:
    client: int
    kind: str  # "read" | "cas"
    start: float
    end: float  # INF when the outcome is unknown
    # read: the (value, version) returned; cas: (expected_version, new_value)
    arg: tuple[int, int]
    ok: bool | None  # cas: True applied, False BadVersion, None unknown; reads: True


def _apply(op: Op, state: tuple[int, int]) -> tuple[bool, tuple[int, int]]:
    """Whether ``op`` can take effect at ``state`` with its observed result, and the new state."""
    value, version = state
    if op.kind == "read":
        return (value, version) == op.arg, state
    expected, new_value = op.arg
    if op.ok is True:
        return version == expected, (new_value, version + 1)
    if op.ok is False:
        return version != expected, state
    # Unknown outcome: applying it is allowed when the version matches.
    return version == expected, (new_value, version + 1)


def check(history: list[Op], initial: tuple[int, int], max_steps: int = 2_000_000) -> bool:
    """True when ``history`` has a linearization; raises RuntimeError if the search is too big."""
    ops = sorted(history, key=lambda o: o.start)
    n = len(ops)
    # An op with an unknown outcome that never took effect can simply be dropped: try both.
    required = [o.ok is not None for o in ops]
    seen: set[tuple[int, tuple[int, int]]] = set()
    steps = 0

    def candidates(done: int) -> list[int]:
        # Ops not yet linearized that may go next: invoked before every pending op's return.
        pending = [i for i in range(n) if not done >> i & 1]
        if not pending:
            return []
        earliest_end = min(ops[i].end for i in pending)
        return [i for i in pending if ops[i].start <= earliest_end]

    stack: list[tuple[int, tuple[int, int]]] = [(0, initial)]
    full = (1 << n) - 1
    while stack:
        done, state = stack.pop()
        steps += 1
        if steps > max_steps:
            raise RuntimeError("linearizability search too large")
        if all(done >> i & 1 or not required[i] for i in range(n)):
            return True
        if done == full:
            continue
        for i in candidates(done):
            op = ops[i]
            ok, new_state = _apply(op, state)
            key_done = done | (1 << i)
            if ok and (key_done, new_state) not in seen:
                seen.add((key_done, new_state))
                stack.append((key_done, new_state))
            if not required[i] and (key_done, state) not in seen:
                # The unknown op never happened.
                seen.add((key_done, state))
                stack.append((key_done, state))
    return False
