"""A hub node whose Redis restarts empty: what was acknowledged stays, and the node carries on.

The node runs in-process against a Redis of its own (the real binary ``amaro dev`` embeds), killed
and started again with its data deleted: every stream, inbox, channel registration and loaded
script is gone. The hub's connections to Redis (redis-py's and the lean ones of redisconn.py) must
reconnect by themselves, the scripts load again, and chat keeps flowing; a message acknowledged
before the restart is still served from PostgreSQL to a client that resumes."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from amaro.embedded import EmbeddedRedis
from amaro.services import Services
from amaro.settings import Settings
from protocol import frames as F
from realtime import keys
from tests.conftest import serve_node, with_node
from tests.realtime.conftest import room_pair
from tests.realtime.wsclient import Client

pytestmark = pytest.mark.slow


@dataclasses.dataclass
class Node:
    ws_url: str
    redis: EmbeddedRedis


@pytest_asyncio.fixture
async def node(settings: Settings, tmp_path: Path) -> AsyncIterator[Node]:
    redis = EmbeddedRedis(tmp_path / "redis")
    url = await asyncio.to_thread(redis.start)
    node_settings = with_node(settings.with_services(redis_url=url, database_url=settings.services.database_url),
                              node_id="restart-node")
    services = await Services.open(url, node_settings.services.database_url)
    try:
        async with serve_node(node_settings, services) as running:
            yield Node(running.ws_url, redis)
    finally:
        await services.close()
        await asyncio.to_thread(redis.stop)


async def restart_empty(redis: EmbeddedRedis) -> None:
    assert redis.process is not None
    redis.process.kill()  # no shutdown: nothing is saved
    await asyncio.to_thread(redis.process.wait)
    for entry in redis.folder.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        elif entry.name != "redis.log":
            entry.unlink()
    await asyncio.to_thread(redis.start)


async def send_until_acked(client: Client, room: str, body: str, timeout_s: float = 20.0) -> F.ChatAck:
    """Retry with the same cmid (as a client does) until the node acknowledges."""
    cmid = uuid.uuid4().hex
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        answer = await client.request(F.ChatSend(id=client.next_id(), room=room, cmid=cmid, body=body))
        if isinstance(answer, F.ChatAck):
            return answer
        assert isinstance(answer, F.Error), answer
        assert asyncio.get_running_loop().time() < deadline, f"never acknowledged: {answer}"
        await asyncio.sleep(0.2)


async def test_acknowledged_chat_survives_an_empty_redis_restart_and_chat_resumes(
        node: Node, db: asyncpg.Pool) -> None:
    pair = await room_pair(db, node.ws_url)
    room, ch, ca, cb, sub, bob = pair.room, pair.ch, pair.first, pair.second, pair.sub, pair.second.user
    first = await ca.chat(room, uuid.uuid4().hex, "before the restart")
    got = await cb.expect(F.ChatMessage, lambda m: m.ch == ch)
    assert (got.offset, got.body) == (first.offset, "before the restart")

    await restart_empty(node.redis)

    second = await send_until_acked(ca, room, "after the restart")
    third = await send_until_acked(ca, room, "and once more")
    assert (first.offset, second.offset, third.offset) == (1, 2, 3)

    # The node's publish path is back on the new Redis: the channel stream holds what was sent
    # after the restart (the node's connections reconnected and loaded the scripts again).
    check = aioredis.Redis.from_url(node.redis.url)
    try:
        for _ in range(100):
            if await check.xrange(keys.channel_stream(ch), "3-0", "3-0"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("offset 3 never reached the restarted Redis")
    finally:
        await check.aclose()

    # Bob's live socket gets both, in order, without a duplicate: the node re-registers its
    # channels with its heartbeat and fills the gap from PostgreSQL.
    live = [await cb.expect(F.ChatMessage, lambda m: m.ch == ch, timeout=30) for _ in range(2)]
    assert [(m.offset, m.body) for m in live] == [(2, "after the restart"), (3, "and once more")]

    # A client resuming from the first message gets exactly what it missed.
    resumed = await Client.connect(node.ws_url, bob)
    answer = await resumed.subscribe(ch, epoch=sub.epoch, offset=1)
    assert answer.recovered
    replay = [await resumed.expect(F.ChatMessage, lambda m: m.ch == ch) for _ in range(2)]
    assert [m.offset for m in replay] == [2, 3]
    for client in (ca, cb, resumed):
        await client.close()
