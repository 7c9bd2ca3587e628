"""The open connections a role needs: Redis (fan-out, presence, queues) and PostgreSQL (truth)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from prometheus_client import Histogram

from amaro.infra.connect import open_pool, open_redis

REDIS_RTT = Histogram(
    "amaro_redis_rtt_seconds", "Redis PING round-trip time measured by readiness checks",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)


@dataclass
class Services:
    """Built once at start-up, closed on shutdown."""

    redis: aioredis.Redis
    db: asyncpg.Pool

    @classmethod
    async def open(cls, redis_url: str, database_url: str, *, pool_min: int = 1, pool_max: int = 10) -> Services:
        redis = open_redis(redis_url)
        try:
            db = await open_pool(database_url, min_size=pool_min, max_size=pool_max)
        except BaseException:
            await redis.aclose()
            raise
        return cls(redis=redis, db=db)

    async def close(self) -> None:
        await self.redis.aclose()
        await asyncio.wait_for(self.db.close(), timeout=10)

    async def check(self, timeout_s: float = 2.0) -> dict[str, str]:
        """Readiness: each dependency answers within ``timeout_s``. Returns name -> "ok" or error."""
        result: dict[str, str] = {}
        try:
            started = time.perf_counter()
            await asyncio.wait_for(self.redis.ping(), timeout_s)
            REDIS_RTT.observe(time.perf_counter() - started)
            result["redis"] = "ok"
        except Exception as exc:
            result["redis"] = f"error: {type(exc).__name__}"
        try:
            await asyncio.wait_for(self.db.fetchval("SELECT 1"), timeout_s)
            result["postgres"] = "ok"
        except Exception as exc:
            result["postgres"] = f"error: {type(exc).__name__}"
        return result
