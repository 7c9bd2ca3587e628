"""Media child processes run at background priority, so a hub on the same machine keeps its CPU."""

from __future__ import annotations

import os
import sys

from nara.guard import run_guarded

PROBE = "import os; print(os.sched_getscheduler(0), os.nice(0))"


async def test_children_run_sched_idle_and_niced() -> None:
    done = await run_guarded([sys.executable, "-c", PROBE], timeout_s=10, nice=10)
    policy, niceness = (int(v) for v in done.stdout.split())
    assert policy == os.SCHED_IDLE
    assert niceness == os.nice(0) + 10


async def test_nice_zero_keeps_normal_scheduling() -> None:
    done = await run_guarded([sys.executable, "-c", PROBE], timeout_s=10, nice=0)
    policy, _ = (int(v) for v in done.stdout.split())
    assert policy == os.SCHED_OTHER
