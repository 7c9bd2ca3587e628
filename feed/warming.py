"""Warming before peaks: prepare what people will read before they come.

The platform learns when each user is usually active: every socket that opens is an arrival
(the hub reports it), counted once per user per hour of the week (0 = Monday 00:00 UTC, 167 =
Sunday 23:00). Ahead of each hour, one node takes the users seen most often in that hour slot and,
within a budget and only while the machine is not busy, warms what they will read first (their
home timeline in Redis and the posts of its first page in the caches: ``Warmable``).

Metrics: ``amaro_feed_warmed_total`` counts warmed users, ``amaro_feed_warm_served_total`` those
who then arrived within the hour (their app reads its timeline first thing), so the ratio of the
two says how good the guesses are.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

WARMED = Counter("amaro_feed_warmed_total", "Users whose timelines were warmed ahead of their usual hour")
WARM_ENTRIES = Counter("amaro_feed_warmed_entries_total", "Timeline entries and cached posts prepared by warming")
SERVED = Counter("amaro_feed_warm_served_total", "Warmed users who then arrived within the hour")
SKIPPED = Counter("amaro_feed_warm_skipped_total", "Warming rounds skipped", ["reason"])
HOURS_PER_WEEK = 168
SLOT_TTL_S = 2 * 3600  # an arrival marker lives past its hour
WARMED_TTL_S = 2 * 3600


class Warmable(Protocol):
    async def warm(self, user: str) -> int:
        """Prepare ``user``'s first reads; returns how many entries it prepared."""
        ...


def hour_of_week(at: dt.datetime) -> int:
    """0 for Monday 00:00-01:00 UTC ... 167 for Sunday 23:00-24:00."""
    at = at.astimezone(dt.UTC)
    return at.weekday() * 24 + at.hour


def _slot_key(how: int) -> str:
    return f"warm:{{hours}}:{how}"


class Activity:
    """Arrivals, counted once per user per hour of the week. ``arrived`` is called by the hub for
    every socket that opens: it only remembers the user; a flush every few seconds writes what is
    new to Redis in one pipeline."""

    def __init__(self, redis: aioredis.Redis, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.redis = redis
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._pending: set[str] = set()
        self._seen: set[tuple[str, int]] = set()  # (user, absolute hour): counted by this node already
        self._hour = -1

    def arrived(self, user: str) -> None:
        self._pending.add(user)

    async def flush(self) -> int:
        """Count the users who arrived since the last flush in this hour slot (each user once per
        hour, whichever node saw them first). Returns how many were counted now."""
        if not self._pending:
            return 0
        now = self.clock()
        absolute = int(now.timestamp() // 3600)
        if absolute != self._hour:
            self._hour, self._seen = absolute, set()
        users, self._pending = [u for u in self._pending if (u, absolute) not in self._seen], set()
        if not users:
            return 0
        how = hour_of_week(now)
        async with self.redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.set(f"warm:seen:{{{user}}}:{absolute}", b"1", nx=True, ex=SLOT_TTL_S)
            first = await pipe.execute()
        counted = [u for u, new in zip(users, first, strict=True) if new]
        self._seen.update((u, absolute) for u in users)
        if counted:
            async with self.redis.pipeline(transaction=False) as pipe:
                for user in counted:
                    pipe.zincrby(_slot_key(how), 1, user)
                    pipe.getdel(f"warm:warmed:{{{user}}}")
                replies = await pipe.execute()
            SERVED.inc(sum(1 for reply in replies[1::2] if reply is not None))
        return len(counted)


class Warmer:
    """Warms the users likely to arrive in the coming hour, one node at a time."""

    def __init__(self, redis: aioredis.Redis, target: Warmable, *, budget: int, max_load: float,
                 lead_s: float = 600.0, min_arrivals: int = 2, clock: Callable[[], dt.datetime] | None = None,
                 load: Callable[[], float] | None = None) -> None:
        self.redis = redis
        self.target = target
        self.budget = budget
        self.max_load = max_load
        self.lead_s = lead_s
        self.min_arrivals = min_arrivals
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.load = load or _load_per_cpu

    def candidates_hour(self) -> int:
        return hour_of_week(self.clock() + dt.timedelta(seconds=self.lead_s))

    async def round(self) -> int:
        """One warming round; returns how many users were warmed."""
        if self.budget <= 0:
            return 0
        if self.load() > self.max_load:
            SKIPPED.labels("busy").inc()
            return 0
        how = self.candidates_hour()
        users = await self.redis.zrevrangebyscore(_slot_key(how), "+inf", self.min_arrivals, start=0,
                                                  num=self.budget)
        if not users:  # nobody to guess yet: no lock taken, a later round of this window may find some
            SKIPPED.labels("nobody").inc()
            return 0
        window = int(self.clock().timestamp() // 600)
        if not await self.redis.set(f"warm:lock:{how}:{window}", b"1", nx=True, ex=900):
            SKIPPED.labels("another_node").inc()
            return 0
        warmed = 0
        for raw in users:
            if self.load() > self.max_load:
                SKIPPED.labels("busy").inc()
                break
            user = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                entries = await self.target.warm(user)
            except Exception as exc:  # one user's trouble never stops the round
                log.warning("warm_failed", user_id=user, error=type(exc).__name__)
                continue
            await self.redis.set(f"warm:warmed:{{{user}}}", b"1", ex=WARMED_TTL_S)
            WARMED.inc()
            WARM_ENTRIES.inc(entries)
            warmed += 1
            await asyncio.sleep(0)  # let live traffic in between users
        if warmed:
            log.info("feed_warmed", hour_of_week=how, users=warmed)
        return warmed


def _load_per_cpu() -> float:
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # pragma: no cover - platforms without a load average
        return 0.0


async def run_warming(activity: Activity, warmer: Warmer, *, interval_s: float, flush_s: float = 5.0) -> None:
    """The node's warming task: flush arrivals every ``flush_s``, warm every ``interval_s``."""
    next_round = time.monotonic() + min(interval_s, 60.0)
    while True:
        await asyncio.sleep(flush_s)
        with contextlib.suppress(RedisError, OSError):
            await activity.flush()
        if time.monotonic() >= next_round:
            next_round = time.monotonic() + interval_s
            try:
                await warmer.round()
            except (RedisError, OSError) as exc:
                log.warning("warm_round_failed", error=type(exc).__name__)
