"""EventSink (used by media/NARA without a hub) and abuse handling on a live node."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import msgpack
import pytest
import redis.asyncio as aioredis

from amaro.parts import event_sink
from amaro.services import Services
from amaro.settings import Settings
from protocol import frames as F
from protocol.errors import ErrorCode
from realtime.broker import RedisBroker
from realtime.events import EventSink
from realtime.store import ChannelStore
from tests.conftest import RunningNode
from tests.realtime.conftest import make_user
from tests.realtime.wsclient import Client


async def test_media_events_are_durable_deduplicated_and_delivered(running_node: RunningNode, settings: Settings,
                                                                    services: Services, db: asyncpg.Pool) -> None:
    user = await make_user(db)
    sink = event_sink(settings, services.redis, services.db)
    client = await Client.connect(running_node.ws_url, user)
    sub = await client.subscribe(f"user:{user}")
    await sink.media_event(user, "up-1", "post-1", "received", {})
    await sink.media_event(user, "up-1", "post-1", "good_enough", {"renditions": ["360p"]})
    await sink.media_event(user, "up-1", "post-1", "good_enough", {"renditions": ["360p"]})  # a retried job
    await sink.feed_update(user, "post.created", {"post": "post-1"})
    got = [await client.expect(F.MediaEvent) for _ in range(2)]
    assert [(e.phase, e.offset) for e in got] == [("received", 1), ("good_enough", 2)]
    assert got[1].data == {"renditions": ["360p"]} and got[1].upload == "up-1"
    feed = await client.expect(F.FeedUpdate)
    assert feed.kind == "post.created" and feed.offset == 3
    await client.close()
    # A client that missed them resumes from PostgreSQL/Redis with the same positions.
    again = await Client.connect(running_node.ws_url, user)
    resumed = await again.subscribe(f"user:{user}", epoch=sub.epoch, offset=0)
    assert resumed.recovered and resumed.offset == 3
    replay = [await again.recv() for _ in range(3)]
    assert [getattr(f, "mid", "") for f in replay] == [got[0].mid, got[1].mid, feed.mid]
    await again.close()
    with pytest.raises(ValueError):
        await sink.media_event(user, "up-1", "", "teleported", {})


async def test_floods_are_refused_then_disconnected(running_node: RunningNode, db: asyncpg.Pool) -> None:
    client = await Client.connect(running_node.ws_url, await make_user(db))
    for i in range(400):
        await client.send(F.Ping(id=i + 1))
    limited = 0
    with pytest.raises(ConnectionError):
        while True:
            frame = await client.recv(timeout=10)
            if isinstance(frame, F.Error):
                assert frame.code == ErrorCode.RATE_LIMITED
                limited += 1
    assert limited > 0
    assert client.close_code == 4009


async def test_garbage_never_breaks_the_node(running_node: RunningNode, db: asyncpg.Pool) -> None:
    user = await make_user(db)
    client = await Client.connect(running_node.ws_url, user)
    bad = [
        msgpack.packb({"t": "sub", "id": 1, "ch": "room:../../etc"}),
        msgpack.packb({"t": "chat.send", "id": 2, "room": "x" * 64, "cmid": "c", "body": "hi"}),
        msgpack.packb({"t": "react", "id": 3, "target_kind": "post", "target_id": "nope", "emoji": "x"}),
        msgpack.packb({"t": "react", "id": 4, "target_kind": "message", "target_id": "nope", "emoji": "x"}),
        msgpack.packb({"t": "pub", "id": 5, "ch": f"user:{user}", "key": "k", "data": 1}),  # not subscribed
        msgpack.packb({"t": "typing", "ch": f"user:{user}"}),  # not subscribed
        msgpack.packb({"t": "chat.history", "id": 6, "room": "00000000-0000-0000-0000-000000000000"}),
        msgpack.packb({"t": "unsub", "id": 7, "ch": f"user:{user}"}),
    ]
    for data in bad:
        await client.send_bytes(data)
    errors = [await client.expect(F.Error) for _ in range(7)]
    assert all(e.code in (ErrorCode.INVALID_FIELD, ErrorCode.CHANNEL_NOT_FOUND, ErrorCode.NOT_FOUND,
                          ErrorCode.NOT_SUBSCRIBED, ErrorCode.PERMISSION_DENIED) for e in errors), errors
    await client.send(F.Ping(id=99))
    assert await client.expect(F.Pong) == F.Pong(id=99)
    await asyncio.wait_for(client.close(), 5)


async def test_position_check_delivers_what_was_never_routed(running_node: RunningNode, settings: Settings,
                                                             services: Services, db: asyncpg.Pool) -> None:
    from realtime import keys

    user = await make_user(db)
    client = await Client.connect(running_node.ws_url, user)
    await client.subscribe(f"user:{user}")
    # Redis forgot which nodes hold subscribers (a restart): the event is stored but routed nowhere.
    await services.redis.delete(keys.channel_nodes(f"user:{user}"))
    await event_sink(settings, services.redis, services.db).media_event(user, "up-9", "", "received", {})
    event = await client.expect(F.MediaEvent, timeout=15)  # the node's periodic position check finds it
    assert event.upload == "up-9" and event.offset == 1
    await client.close()


async def test_a_sink_that_cannot_store_in_time_raises_instead_of_holding_its_caller(
        settings: Settings, redis: aioredis.Redis) -> None:
    """PostgreSQL out of connections stands for PostgreSQL away: the call ends at the deadline."""
    db = await asyncpg.create_pool(settings.services.database_url, min_size=1, max_size=1)
    assert db is not None
    try:
        async with db.acquire():  # the pool's only connection, held
            sink = EventSink(ChannelStore(db), RedisBroker(redis, "sink-deadline"), timeout_s=0.2)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await sink.media_event(str(uuid.uuid4()), "up-1", "", "received", {})
            assert time.monotonic() - started < 2.0
    finally:
        await db.close()


async def test_a_big_fan_out_stores_each_frame_once_and_holds_nobody_else(
        running_node: RunningNode, settings: Settings, services: Services, db: asyncpg.Pool) -> None:
    sink = event_sink(settings, services.redis, services.db)
    followers = [str(uuid.uuid4()) for _ in range(3000)]
    watcher = await make_user(db)
    client = await Client.connect(running_node.ws_url, watcher)
    await client.subscribe(f"user:{watcher}")
    fan_out = asyncio.create_task(sink.feed_updates(followers, "post.created", {"post": {"id": "p"}}, idem_key="k1"))
    await asyncio.sleep(0.05)  # the fan-out's events are queued first, its first batch committing
    await sink.feed_update(watcher, "follow.new", {"user": {"id": "x"}})
    committed = await db.fetchval("SELECT count(*) FROM channel_events WHERE channel = ANY($1::text[])",
                                  [f"user:{f}" for f in followers])
    assert committed < len(followers)  # the single event did not wait behind three thousand others
    assert (await client.expect(F.FeedUpdate)).kind == "follow.new"
    await fan_out
    await sink.feed_updates(followers, "post.created", {"post": {"id": "p"}}, idem_key="k1")  # a retried announce
    stored = await db.fetch("SELECT channel, count(*) AS n FROM channel_events WHERE channel = ANY($1::text[]) "
                            "GROUP BY channel", [f"user:{f}" for f in followers])
    assert len(stored) == 3000 and {r["n"] for r in stored} == {1}
    await client.close()
