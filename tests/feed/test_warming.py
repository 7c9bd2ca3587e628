"""Warming learns when users arrive and prepares them ahead of their usual hour (real Redis)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import httpx
import redis.asyncio as aioredis

from feed.warming import SERVED, WARMED, Activity, Warmer, hour_of_week
from tests.conftest import RunningNode
from tests.feed.people import join

MONDAY_9 = dt.datetime(2026, 12, 7, 9, 15, tzinfo=dt.UTC)  # a Monday


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


class Target:
    """What warming prepares: records who, answers how many entries."""

    def __init__(self) -> None:
        self.warmed: list[str] = []

    async def warm(self, user: str) -> int:
        self.warmed.append(user)
        return 20


async def forget_warming(redis: aioredis.Redis) -> None:
    """Only warming's own keys: the session's Redis database is shared by every test."""
    keys = [key async for key in redis.scan_iter(match="warm:*", count=500)]
    if keys:
        await redis.delete(*keys)


def test_hours_of_the_week() -> None:
    assert hour_of_week(MONDAY_9) == 9
    assert hour_of_week(MONDAY_9 + dt.timedelta(days=6, hours=14)) == 167
    assert hour_of_week(dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == 8


async def test_users_who_come_at_an_hour_are_warmed_before_it_and_counted_served(redis: aioredis.Redis) -> None:
    await forget_warming(redis)
    regular, once, never = (str(uuid.uuid4()) for _ in range(3))
    clock = Clock(MONDAY_9)
    activity = Activity(redis, clock=clock)
    for week in range(3):  # the regular user opens the app every Monday at nine
        clock.at = MONDAY_9 + dt.timedelta(weeks=week)
        activity.arrived(regular)
        activity.arrived(regular)  # a second tab counts once
        if week == 0:
            activity.arrived(once)
        assert await activity.flush() == (2 if week == 0 else 1)
    target = Target()
    clock.at = MONDAY_9 + dt.timedelta(weeks=3) - dt.timedelta(minutes=25)  # 08:50, ten minutes ahead
    warmer = Warmer(redis, target, budget=10, max_load=10.0, lead_s=600, clock=clock, load=lambda: 0.1)
    early = Warmer(redis, target, budget=10, max_load=10.0, lead_s=600, min_arrivals=4, clock=clock,
                   load=lambda: 0.1)
    assert await early.round() == 0  # nobody seen four times: a round that finds nobody locks nothing
    warmed_before, served_before = WARMED._value.get(), SERVED._value.get()
    assert await warmer.round() == 1
    assert target.warmed == [regular]  # seen three Mondays at nine; the one-off visitor is not guessed
    assert await warmer.round() == 0  # one round per hour slot, whichever node
    clock.at = MONDAY_9 + dt.timedelta(weeks=3)
    activity.arrived(regular)
    activity.arrived(never)
    await activity.flush()
    assert WARMED._value.get() - warmed_before == 1
    assert SERVED._value.get() - served_before == 1


async def test_no_warming_while_the_machine_is_busy(redis: aioredis.Redis) -> None:
    await forget_warming(redis)
    user = str(uuid.uuid4())
    clock = Clock(MONDAY_9)
    activity = Activity(redis, clock=clock)
    for week in range(2):
        clock.at = MONDAY_9 + dt.timedelta(weeks=week)
        activity.arrived(user)
        await activity.flush()
    target = Target()
    clock.at = MONDAY_9 - dt.timedelta(minutes=20) + dt.timedelta(weeks=2)
    busy = Warmer(redis, target, budget=10, max_load=0.7, clock=clock, load=lambda: 1.5)
    assert await busy.round() == 0 and target.warmed == []
    none = Warmer(redis, target, budget=0, max_load=0.7, clock=clock, load=lambda: 0.0)
    assert await none.round() == 0


async def test_a_nodes_sockets_are_arrivals_and_warming_prepares_a_real_home_timeline(
        running_node: RunningNode, redis: aioredis.Redis) -> None:
    """Wired end to end: a socket that opens is counted in its hour slot (the node flushes every few
    seconds), and warming a user builds their home timeline in Redis (timelines.py)."""
    async with httpx.AsyncClient(base_url=running_node.http_url, timeout=10) as http:
        reader, author = await join(http), await join(http)
        await reader.follow(author)
        posted = await author.send("POST", "/api/v1/posts", {"body": "warm me", "visibility": "public"})
        assert posted.status_code == 201
        await redis.delete(f"tl:home:{{{reader.id}}}")  # as if Redis had lost it
        socket = await reader.socket(running_node.ws_url)
        slot = f"warm:{{hours}}:{hour_of_week(dt.datetime.now(dt.UTC))}"
        deadline = time.monotonic() + 15
        while await redis.zscore(slot, reader.id) is None:
            assert time.monotonic() < deadline, "the arrival was never counted"
            await asyncio.sleep(0.2)
        await socket.close()
    entries = await running_node.parts.feed.social.timelines.warm(reader.id)
    assert entries >= 2
    assert await redis.zscore(f"tl:home:{{{reader.id}}}", posted.json()["id"]) is not None
