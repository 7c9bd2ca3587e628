"""The fanout report's tail-over-time figure (pure)."""

from __future__ import annotations

from loadtests.fanout import SLOW_MS, slow_per_second


def test_slow_deliveries_are_counted_by_the_second_they_arrived_in() -> None:
    start = 1_000.0
    got = slow_per_second([1_000.1, 1_000.9, 1_002.5, 1_002.0, 999.9, 1_007.2], start, 3.2)
    # 4 seconds of run (3.2 rounded up); one just before the start counts in the first, one
    # arriving while the run settles counts in the last.
    assert got == {"over_ms": SLOW_MS, "count": 6, "per_second": [3, 0, 2, 1]}


def test_a_run_without_slow_deliveries_reports_zeros() -> None:
    assert slow_per_second([], 5.0, 2.0) == {"over_ms": SLOW_MS, "count": 0, "per_second": [0, 0]}
