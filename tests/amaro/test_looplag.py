"""The loop-lag watcher sees a blocked event loop."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY

from amaro import looplag


def observed_over(seconds: float) -> float:
    total = REGISTRY.get_sample_value("amaro_event_loop_lag_seconds_count") or 0.0
    within = REGISTRY.get_sample_value("amaro_event_loop_lag_seconds_bucket", {"le": str(seconds)}) or 0.0
    return total - within


async def test_a_blocking_call_shows_as_lag() -> None:
    before = observed_over(0.02)
    watcher = asyncio.create_task(looplag.watch(0.01))
    try:
        await asyncio.sleep(0.03)
        time.sleep(0.08)  # what a CPU-bound call in a handler would do
        await asyncio.sleep(0.05)
    finally:
        watcher.cancel()
    assert observed_over(0.02) >= before + 1
