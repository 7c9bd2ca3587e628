"""Connections to the shared services, set up one way for every part: Redis speaking bytes
(msgpack crosses Redis, never pickle or text) and PostgreSQL with jsonb decoded by orjson."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg
import orjson
import redis.asyncio as aioredis

#: A connection from ``pool.acquire()`` or ``asyncpg.connect()``: code that runs queries accepts both.
if TYPE_CHECKING:
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    Conn = asyncpg.Connection


def open_redis(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """A Redis client whose pool waits for a free connection when all are busy (redis-py's default
    pool raises instead, which turns connect bursts into errors)."""
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


async def listen_connection(url: str) -> asyncpg.Connection:
    """A connection of its own for ``LISTEN`` (a pool's connections come and go)."""
    return await asyncpg.connect(url, timeout=10, command_timeout=30)
