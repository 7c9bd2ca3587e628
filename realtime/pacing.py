"""Background Redis work in slices.

Periodic chores (presence heartbeats and sweeps, interest refreshes, position checks) touch every
connection or channel of a node. Sent as one pipeline of thousands of commands, a chore holds the
event loop while redis-py packs and parses it, and holds Redis (single-threaded) while it runs the
scripts: every chat message in flight waits behind it. Measured on the fan-out benchmark, those
stalls were the whole latency tail (p99 137 ms with them, 19 ms without). So chores go in slices of
``SLICE`` commands with a short pause between slices, and live traffic slips in between.

Slices sent back to back still made a burst: the fan-out benchmark's slow deliveries (over 20 ms)
came in spikes of 100-300 ms every ~1.25 s, one per hub heartbeat (2.5 s each, two hubs), with the
delivery p50 doubling inside them. A chore now also spreads its slices over part of its period
(``over_s``), so each costs a slice's 1-2 ms now and then instead of a burst.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

SLICE = 100  # commands per pipeline of a chore (a slice costs Redis and the loop about 1-2 ms)
PAUSE_S = 0.002  # between two slices of one chore


async def sliced(items: Sequence[T], size: int = SLICE, *, over_s: float = 0.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncIterator[Sequence[T]]:
    """``items`` in slices of ``size``, pausing between two slices ``PAUSE_S`` or, to spread them
    over about ``over_s`` seconds, longer. ``sleep`` takes the pauses (a test records them)."""
    slices = -(-len(items) // size)
    pause = max(PAUSE_S, over_s / slices) if slices > 1 else 0.0
    for start in range(0, len(items), size):
        if start:
            await sleep(pause)
        yield items[start:start + size]
