from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from realtime import keys, pacing
from realtime.broker import BrokerConfig, RedisBroker


def channel() -> str:
    return f"post:{uuid.uuid4()}"


def frame(offset: int) -> bytes:
    return f"frame-{offset}".encode()


async def test_routes_only_to_nodes_holding_subscribers(redis: aioredis.Redis) -> None:
    ch = channel()
    a = RedisBroker(redis, f"a-{uuid.uuid4().hex[:6]}")
    b = RedisBroker(redis, f"b-{uuid.uuid4().hex[:6]}")
    publisher = RedisBroker(redis, "publisher")
    assert await a.watch(ch) is None  # nothing published yet
    start_a, start_b = await a.read_inbox("$", block_ms=1), await b.read_inbox("$", block_ms=1)

    async def no_backfill(ch: str, after: int, upto: int) -> list[tuple[int, bytes]]:
        raise AssertionError("no gap expected")

    await publisher.publish(ch, "e1", 1, frame(1), "event", no_backfill)
    await publisher.publish(ch, "e1", 1, frame(1), "event", no_backfill)  # a retry: no second copy
    await publisher.broadcast(ch, b"typing", "typing.ev")
    _, got = await a.read_inbox(start_a[0], block_ms=100)
    assert [(r.channel, r.offset, r.payload) for r in got] == [(ch, 1, frame(1)), (ch, -1, b"typing")]
    _, nothing = await b.read_inbox(start_b[0], block_ms=1)
    assert nothing == []
    assert await b.watch(ch) == ("e1", 1)
    await a.unwatch(ch)
    await publisher.publish(ch, "e1", 2, frame(2), "event", no_backfill)
    _, got_b = await b.read_inbox(start_b[0], block_ms=100)
    _, got_a = await a.read_inbox(start_a[0], block_ms=1)
    assert [r.offset for r in got_b] == [2] and [r.offset for r in got_a] == [1, -1]


async def test_out_of_order_publishers_never_leave_a_hole(redis: aioredis.Redis) -> None:
    ch = channel()
    stored = {i: frame(i) for i in range(1, 6)}  # what PostgreSQL holds
    loads: list[tuple[int, int]] = []

    async def backfill(c: str, after: int, upto: int) -> list[tuple[int, bytes]]:
        loads.append((after, upto))
        return [(i, stored[i]) for i in range(after + 1, upto + 1)]

    pub = RedisBroker(redis, "publisher")
    await pub.publish(ch, "e1", 1, stored[1], "event", backfill)
    await pub.publish(ch, "e1", 4, stored[4], "event", backfill)  # 2 and 3 are still in flight
    assert loads == [(1, 3)]
    await pub.publish(ch, "e1", 3, stored[3], "event", backfill)  # late: already there
    await pub.publish(ch, "e1", 5, stored[5], "event", backfill)
    assert await pub.history(ch, 0, 5) == [(i, stored[i]) for i in range(1, 6)]
    assert await pub.history(ch, 2, 4) == [(3, stored[3]), (4, stored[4])]
    assert await pub.history(ch, 5, 5) == []


async def test_history_is_capped_and_a_lost_stream_restarts(redis: aioredis.Redis) -> None:
    ch = channel()
    pub = RedisBroker(redis, "publisher", BrokerConfig(history_size=10))

    async def backfill(c: str, after: int, upto: int) -> list[tuple[int, bytes]]:
        return [(i, frame(i)) for i in range(after + 1, upto + 1)]

    for i in range(1, 301):
        await pub.publish(ch, "e1", i, frame(i), "event", backfill)
    length = await redis.xlen(keys.channel_stream(ch))
    assert 10 <= length < 300  # MAXLEN ~ trims in whole nodes: bounded, not exact
    assert await pub.history(ch, 0, 300) is None  # trimmed: the caller reads PostgreSQL
    assert await pub.history(ch, 295, 300) == [(i, frame(i)) for i in range(296, 301)]
    await redis.delete(keys.channel_meta(ch), keys.channel_stream(ch))  # Redis lost it
    await pub.publish(ch, "e1", 301, frame(301), "event", backfill)
    assert await pub.history(ch, 300, 301) == [(301, frame(301))]
    assert await pub.history(ch, 299, 301) is None


async def test_a_short_channel_starts_whole_whichever_offset_reaches_redis_first(redis: aioredis.Redis) -> None:
    ch = channel()
    pub = RedisBroker(redis, "publisher")
    asked: list[tuple[int, int]] = []

    async def backfill(c: str, after: int, upto: int) -> list[tuple[int, bytes]]:
        asked.append((after, upto))
        return [(i, frame(i)) for i in range(after + 1, upto + 1)]

    # Another writer's offset 3 arrives before offsets 1 and 2 of a new channel.
    await pub.publish(ch, "e1", 3, frame(3), "event", backfill)
    assert asked == [(0, 2)]
    assert await pub.history(ch, 0, 3) == [(i, frame(i)) for i in range(1, 4)]
    for i in (1, 2):  # the late ones are duplicates now
        await pub.publish(ch, "e1", i, frame(i), "event", backfill)
    assert await redis.xlen(keys.channel_stream(ch)) == 3 and asked == [(0, 2)]
    # Lost while still short: it comes back whole too.
    await redis.delete(keys.channel_meta(ch), keys.channel_stream(ch))
    await pub.publish(ch, "e1", 4, frame(4), "event", backfill)
    assert await pub.history(ch, 0, 4) == [(i, frame(i)) for i in range(1, 5)]


async def test_chores_over_many_channels_run_in_slices_and_miss_none(redis: aioredis.Redis) -> None:
    node = RedisBroker(redis, f"n-{uuid.uuid4().hex[:6]}")
    publisher = RedisBroker(redis, "publisher")
    chans = [channel() for _ in range(2 * pacing.SLICE + 3)]

    async def no_backfill(ch: str, after: int, upto: int) -> list[tuple[int, bytes]]:
        raise AssertionError("no gap expected")

    for i, ch in enumerate(chans):
        if i % 2:
            await publisher.publish(ch, "e1", 1, frame(1), "event", no_backfill)
    assert await node.tops(chans) == [1 if i % 2 else None for i in range(len(chans))]
    await node.refresh(chans)
    for ch in (chans[0], chans[pacing.SLICE], chans[-1]):  # first, middle and last slice
        assert await redis.zscore(keys.channel_nodes(ch), node.node_id) is not None


async def test_a_node_hands_its_own_subscribers_their_events_without_its_inbox(redis: aioredis.Redis) -> None:
    from realtime.broker import Publication, Routed

    ch, other_ch = channel(), channel()
    me = RedisBroker(redis, f"me-{uuid.uuid4().hex[:6]}")
    other = RedisBroker(redis, f"other-{uuid.uuid4().hex[:6]}")
    here: list[Routed] = []

    async def deliver(routed: Routed) -> None:
        here.append(routed)

    me.local = deliver
    for node in (me, other):
        await node.watch(ch)
    await other.watch(other_ch)
    mine_start, other_start = await me.read_inbox("$", block_ms=1), await other.read_inbox("$", block_ms=1)

    async def no_backfill(ch: str, after: int, upto: int) -> list[tuple[int, bytes]]:
        raise AssertionError("no gap expected")

    await me.publish(ch, "e1", 1, frame(1), "event", no_backfill)  # single publish
    await me.publish_many([Publication(ch, "e1", 2, frame(2), "event"),  # pipelined publish
                           Publication(other_ch, "e1", 1, frame(1), "event")], no_backfill)
    await me.broadcast(ch, b"typing", "typing.ev")  # ephemeral
    assert [(r.channel, r.offset, r.payload) for r in here] == [
        (ch, 1, frame(1)), (ch, 2, frame(2)), (ch, -1, b"typing")]
    _, in_my_inbox = await me.read_inbox(mine_start[0], block_ms=1)
    assert in_my_inbox == []
    _, routed = await other.read_inbox(other_start[0], block_ms=100)
    assert [(r.channel, r.offset) for r in routed] == [(ch, 1), (ch, 2), (other_ch, 1), (ch, -1)]

    async def failing(routed: Routed) -> None:
        raise RuntimeError("the hub could not fill a gap")

    me.local = failing  # a failed local delivery is logged; the others still get the event
    await me.publish(ch, "e1", 3, frame(3), "event", no_backfill)
    _, routed = await other.read_inbox(other_start[0], block_ms=100)
    assert (ch, 3) in [(r.channel, r.offset) for r in routed]
