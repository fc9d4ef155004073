"""The checker used by the ensemble fault tests must accept what is linearizable and only that."""

from __future__ import annotations

from tests.support.linearizability import INF, Op, check


def test_sequential_cas_history_is_linearizable() -> None:
    h = [Op(0, "cas", 0, 1, (0, 10), True), Op(1, "read", 2, 3, (10, 1), True), Op(1, "cas", 4, 5, (0, 7), False)]
    assert check(h, (0, 0))


def test_concurrent_cas_may_be_ordered_either_way() -> None:
    h = [Op(0, "cas", 0, 10, (0, 1), True), Op(1, "cas", 1, 9, (1, 2), True), Op(2, "read", 11, 12, (2, 2), True)]
    assert check(h, (0, 0))


def test_stale_read_after_acknowledged_write_is_not_linearizable() -> None:
    h = [Op(0, "cas", 0, 1, (0, 5), True), Op(1, "read", 2, 3, (0, 0), True)]
    assert not check(h, (0, 0))


def test_two_successful_cas_on_the_same_version_are_not_linearizable() -> None:
    h = [Op(0, "cas", 0, 5, (0, 1), True), Op(1, "cas", 0, 5, (0, 2), True)]
    assert not check(h, (0, 0))


def test_unknown_outcome_may_or_may_not_have_happened() -> None:
    lost = Op(0, "cas", 0, INF, (0, 9), None)
    assert check([lost, Op(1, "read", 5, 6, (9, 1), True)], (0, 0))
    assert check([lost, Op(1, "read", 5, 6, (0, 0), True)], (0, 0))
    assert not check([lost, Op(1, "read", 5, 6, (8, 1), True)], (0, 0))
