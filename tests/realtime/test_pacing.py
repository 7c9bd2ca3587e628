"""Chores in slices (realtime/pacing.py): the pauses between slices, recorded instead of slept.

Only ``sliced`` gets the recording sleep: patching ``asyncio.sleep`` itself reached every task of
the shared event loop, and a session server's ``await asyncio.sleep(0.1)`` loop then spun without
yielding, so the suite hung here."""

from __future__ import annotations

import pytest

from realtime import pacing


@pytest.fixture
def pauses() -> list[float]:
    return []


async def collect(items: list[int], size: int, over_s: float = 0.0, *, pauses: list[float]) -> list[list[int]]:
    async def record(seconds: float) -> None:
        pauses.append(seconds)

    return [list(part) async for part in pacing.sliced(items, size, over_s=over_s, sleep=record)]


async def test_slices_keep_every_item_in_order_with_the_short_pause_between(pauses: list[float]) -> None:
    assert await collect(list(range(7)), 3, pauses=pauses) == [[0, 1, 2], [3, 4, 5], [6]]
    assert pauses == [pacing.PAUSE_S, pacing.PAUSE_S]


async def test_a_spread_chore_pauses_so_its_slices_cover_the_span(pauses: list[float]) -> None:
    assert len(await collect(list(range(400)), 100, over_s=1.0, pauses=pauses)) == 4
    assert pauses == [0.25, 0.25, 0.25]  # slice k starts at about k * 0.25 s


async def test_the_short_pause_is_a_floor_and_one_slice_never_waits(pauses: list[float]) -> None:
    await collect(list(range(4000)), 100, over_s=0.01, pauses=pauses)
    assert set(pauses) == {pacing.PAUSE_S}
    pauses.clear()
    assert await collect([1, 2], 100, over_s=5.0, pauses=pauses) == [[1, 2]]
    assert await collect([], 100, over_s=5.0, pauses=pauses) == []
    assert pauses == []
