"""How much uploading may happen at once, so no user or node starves realtime traffic.

* ``UserSlots``: concurrent upload requests per user across nodes (leases that expire on a crash).
* ``NodeLimits``: concurrent upload requests on this node and a budget of bytes held in buffers
  (each request reserves one part plus one chunk before it reads a byte).

Refusals never wait long: a client told 429/503 with Retry-After retries; a queued request would
hold a socket and memory doing nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from media import keys, metrics
from media.errors import busy
from media.scripts import source


class UserSlots:
    def __init__(self, redis: aioredis.Redis, limit: int, lease_s: float) -> None:
        self._redis = redis
        self._limit = limit
        self._lease_ms = int(lease_s * 1000)

    @contextlib.asynccontextmanager
    async def hold(self, user_id: str) -> AsyncIterator[SlotLease]:
        key, token = keys.user_slots(user_id), secrets.token_hex(8)
        now_ms = int(time.time() * 1000)
        taken = await self._redis.eval(source("acquire_slot"), 1, key, token, now_ms, self._lease_ms, self._limit)
        if not taken:
            raise busy(f"at most {self._limit} uploads per user may stream at once", status=429)
        try:
            yield SlotLease(self._redis, key, token, self._lease_ms)
        finally:
            await self._redis.zrem(key, token)


class SlotLease:
    def __init__(self, redis: aioredis.Redis, key: str, token: str, lease_ms: int) -> None:
        self._redis, self._key, self._token, self._lease_ms = redis, key, token, lease_ms

    async def renew(self) -> None:
        """A long request pushes its lease forward (called with each upload-lock renewal)."""
        expiry = int(time.time() * 1000) + self._lease_ms
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._key, {self._token: expiry}, xx=True)
            pipe.pexpire(self._key, self._lease_ms)
            await pipe.execute()


class NodeLimits:
    """Per-node admission. Pure asyncio objects, shared by every request on this node."""

    def __init__(self, max_requests: int, bytes_budget: int) -> None:
        self.max_requests = max_requests
        self.bytes_budget = bytes_budget
        self.active = 0
        self.reserved = 0
        self._freed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def admit(self, reserve: int, *, wait_s: float = 2.0) -> AsyncIterator[None]:
        """Count one request and reserve ``reserve`` buffer bytes, waiting at most ``wait_s``."""
        async with self._freed:
            try:
                await asyncio.wait_for(self._freed.wait_for(lambda: self._fits(reserve)), wait_s)
            except TimeoutError:
                raise busy("this node is at its upload capacity; retry shortly") from None
            self.active += 1
            self.reserved += reserve
            metrics.ACTIVE.set(self.active)
            metrics.RESERVED.set(self.reserved)
        try:
            yield
        finally:
            async with self._freed:
                self.active -= 1
                self.reserved -= reserve
                metrics.ACTIVE.set(self.active)
                metrics.RESERVED.set(self.reserved)
                self._freed.notify_all()

    async def idle(self, timeout_s: float) -> bool:
        """Wait until no upload request runs on this node; False if ``timeout_s`` passed first."""
        async with self._freed:
            try:
                await asyncio.wait_for(self._freed.wait_for(lambda: self.active == 0), timeout_s)
            except TimeoutError:
                return False
        return True

    def _fits(self, reserve: int) -> bool:
        return self.active < self.max_requests and self.reserved + reserve <= self.bytes_budget
