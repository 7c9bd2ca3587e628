"""Background Redis work in slices.

Periodic chores (presence heartbeats and sweeps, interest refreshes, position checks) touch every
connection or channel of a node. Sent as one pipeline of thousands of commands, a chore would hold
the event loop while the pipeline is packed and parsed, and hold Redis (single-threaded) while it
runs the scripts: every chat message in flight would wait behind it, and such stalls make the
fan-out's latency tail (BENCHMARKS.md, "Chat fan-out"). So chores go in slices of ``SLICE``
commands with a pause between slices, and live traffic slips in between.

Slices sent back to back are still a burst, once per period of every node. So a chore also spreads
its slices over part of its period (``over_s``): each slice is a short stall now and then instead
of one long one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

SLICE = 100  # commands per pipeline of a chore: small enough that a slice holds Redis and the loop briefly
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
