"""The lean Redis connection of the hot paths, against the real Redis of the suite."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from realtime.resp import RespConnection, run_script, run_scripts


def key() -> str:
    return f"resp-test:{uuid.uuid4().hex}"


@pytest_asyncio.fixture
async def conn(redis: aioredis.Redis) -> AsyncIterator[RespConnection]:
    c = RespConnection.like(redis)
    yield c
    c.close()


async def test_same_server_and_database_as_the_redis_py_client(redis: aioredis.Redis, conn: RespConnection) -> None:
    k = key()
    assert await conn.call("SET", k, b"\x00\xffbytes") == b"OK"
    assert await redis.get(k) == b"\x00\xffbytes"
    await redis.set(k, "41")
    assert await conn.call("INCR", k) == 42


async def test_pipeline_keeps_order_and_returns_error_replies_in_place(conn: RespConnection) -> None:
    k, text = key(), key()
    await conn.call("SET", text, "not a number")
    replies = await conn.pipeline([("INCRBY", k, 5), ("INCR", text), ("INCR", k), ("GET", k)])
    assert replies[0] == 5
    assert isinstance(replies[1], ResponseError)
    assert replies[2:] == [6, b"6"]
    with pytest.raises(ResponseError, match="not an integer"):
        await conn.call("INCR", text)
    assert await conn.call("GET", k) == b"6"  # the connection stays in step after an error
    assert await conn.pipeline([]) == []


async def test_concurrent_pipelines_on_one_connection_get_their_own_replies(conn: RespConnection) -> None:
    keys = [key() for _ in range(50)]

    async def bump(i: int, k: str) -> list[int]:
        return await conn.pipeline([("INCRBY", k, i + 1), ("INCRBY", k, 1000)])

    results = await asyncio.gather(*(bump(i, k) for i, k in enumerate(keys)))
    assert results == [[i + 1, i + 1001] for i in range(50)]


async def test_scripts_are_loaded_again_after_a_flush(redis: aioredis.Redis, conn: RespConnection) -> None:
    script = redis.register_script("return {KEYS[1], ARGV[1]}")
    await redis.script_flush()
    assert await run_script(conn, script, ("k",), ("a",)) == [b"k", b"a"]
    await redis.script_flush()
    calls = [((f"k{i}",), (i,)) for i in range(5)]
    assert await run_scripts(conn, script, calls) == [[f"k{i}".encode(), str(i).encode()] for i in range(5)]
    failing = redis.register_script("return redis.error_reply('BOOM nope')")
    with pytest.raises(ResponseError, match="BOOM"):
        await run_scripts(conn, failing, [((), ())])


async def test_a_lost_connection_fails_the_waiting_call_and_the_next_call_reconnects(
        redis: aioredis.Redis) -> None:
    reader = RespConnection.like(redis, blocking=True)
    try:
        client_id = await reader.call("CLIENT", "ID")
        read = asyncio.create_task(reader.call("XREAD", "BLOCK", 5000, "STREAMS", key(), "$"))
        await asyncio.sleep(0.1)
        await redis.execute_command("CLIENT", "KILL", "ID", client_id)
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(read, 2)
        assert await reader.call("PING") == b"PONG"
        assert await reader.call("CLIENT", "ID") != client_id
    finally:
        reader.close()


async def test_an_abandoned_blocking_read_does_not_hold_up_the_next_one(redis: aioredis.Redis) -> None:
    reader = RespConnection.like(redis, blocking=True)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await reader.call("XREAD", "BLOCK", 10_000, "STREAMS", key(), "$")
        started = time.monotonic()
        assert await reader.call("PING") == b"PONG"
        assert time.monotonic() - started < 2  # not queued behind the 10 s read
    finally:
        reader.close()


async def test_a_refused_setup_is_an_error_not_a_hang(redis: aioredis.Redis) -> None:
    kw = redis.connection_pool.connection_kwargs
    bad = RespConnection(host=kw.get("host", "127.0.0.1"), port=int(kw.get("port", 6379)), path=kw.get("path"),
                         db=1_000_000)
    with pytest.raises(ResponseError, match="DB index"):
        await asyncio.wait_for(bad.call("PING"), 5)
    bad.close()


async def test_a_closed_connection_reconnects_on_the_next_call(conn: RespConnection) -> None:
    assert await conn.call("PING") == b"PONG"
    conn.close()
    assert await conn.call("PING") == b"PONG"
