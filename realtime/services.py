"""Connections to the shared services: Redis (fan-out, presence, queues) and PostgreSQL (truth)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
import orjson
import redis.asyncio as aioredis
from prometheus_client import Histogram

from realtime.config import Settings

#: A connection from ``pool.acquire()`` or ``asyncpg.connect()``: code that runs queries accepts both.
if TYPE_CHECKING:
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    Conn = asyncpg.Connection

REDIS_RTT = Histogram(
    "amaro_redis_rtt_seconds", "Redis PING round-trip time measured by readiness checks",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)


def open_redis(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """A Redis client speaking bytes (msgpack crosses Redis, never pickle or text). Its pool waits
    for a free connection when all are busy (redis-py's default pool raises instead, which turned
    connect bursts into errors)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=5, decode_responses=False,
        socket_connect_timeout=5, socket_timeout=10, health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
    )


async def open_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=30,
    )
    assert pool is not None
    return pool


@dataclass
class Services:
    """The open connections a role needs. Built once at start-up, closed on shutdown."""

    settings: Settings
    redis: aioredis.Redis
    db: asyncpg.Pool

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        redis = open_redis(settings.redis_url)
        db = await open_pool(settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        return cls(settings=settings, redis=redis, db=db)

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
