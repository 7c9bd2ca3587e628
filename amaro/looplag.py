"""Event-loop lag: how late a short timer fires, i.e. how long the loop was busy elsewhere.

A blocked loop delays every socket of the node at once, which per-request metrics cannot show
(the request that blocks measures fast, everyone else slow). Every server role runs ``watch``;
``amaro_event_loop_lag_seconds`` is the figure to alert on (p99 above a few ms).
"""

from __future__ import annotations

import asyncio

from prometheus_client import Histogram

LOOP_LAG = Histogram(
    "amaro_event_loop_lag_seconds", "How late a 25 ms timer fired: time the event loop spent elsewhere",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
PERIOD_S = 0.025


async def watch(period_s: float = PERIOD_S) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period_s
        await asyncio.sleep(period_s)
        LOOP_LAG.observe(max(0.0, loop.time() - due))
