"""Group commit: the generic batcher, the chat batch statement, and two writers ("nodes") at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import asyncpg
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from feed.rooms import create_room
from realtime import keys
from realtime.broker import RedisBroker
from realtime.chat import ChatStore, NotMember, Outgoing, Sent
from realtime.groupcommit import GroupCommit
from realtime.store import ChannelStore, Stored
from realtime.writers import ChatWriter
from tests.realtime.conftest import chat_send, make_user


async def test_batches_form_while_one_is_in_flight_and_results_keep_their_order() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        batches.append(list(items))
        if len(batches) == 1:
            await gate.wait()  # hold the first batch: the others queue behind it
        return [ValueError(i) if i == 13 else i * 10 for i in items]

    batcher: GroupCommit[int, int] = GroupCommit("test", flush, max_items=8)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.01)
    assert batches == [[0]]  # an idle batcher flushes at once (no fixed wait)
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 20)]
    await asyncio.sleep(0.01)
    assert len(batches) == 1  # nothing else goes while the first batch is in flight
    gate.set()
    assert await first == 0
    results = await asyncio.gather(*rest, return_exceptions=True)
    # Submission order is kept inside and across batches; max_items bounds a batch.
    assert batches[1:] == [list(range(1, 9)), list(range(9, 17)), list(range(17, 20))]
    # One item's failure fails that item only.
    assert [r if isinstance(r, int) else "error" for r in results] == [
        i * 10 if i != 13 else "error" for i in range(1, 20)]
    assert isinstance(results[12], ValueError)


async def test_a_failed_flush_fails_its_batch_only() -> None:
    calls = 0

    async def flush(items: Sequence[str]) -> list[str | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database gone")
        return [s.upper() for s in items]

    batcher: GroupCommit[str, str] = GroupCommit("test", flush)
    failed = await asyncio.gather(batcher.submit("a"), batcher.submit("b"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in failed)
    assert await batcher.submit("c") == "C"  # the next batch goes through


async def test_a_batch_mixes_rooms_keeps_order_dedupes_retries_and_isolates_failures(db: asyncpg.Pool) -> None:
    a, b, c, outsider = [await make_user(db) for _ in range(4)]
    r1 = await create_room(db, a, [b])
    r2 = await create_room(db, b, [c])
    chat = ChatStore(db)
    earlier = await chat_send(chat, r1, a, "old", "stored before")
    items = [
        Outgoing(r1, a, "x1", "one"),
        Outgoing(r2, b, "y1", "two"),
        Outgoing(r1, b, "x2", "three"),
        Outgoing(r1, a, "old", "a retry of a stored message"),
        Outgoing(r2, outsider, "z", "not a member"),
        Outgoing(r1, a, "x1", "the same cmid again in this batch"),
        Outgoing(r2, c, "y2", "four"),
    ]
    results = await chat.send_batch(items)
    sent = [r for r in results if isinstance(r, Sent)]
    assert len(sent) == 6 and isinstance(results[4], NotMember)
    one, two, three, retry, _, again, four = results
    assert isinstance(one, Sent) and isinstance(two, Sent) and isinstance(three, Sent)
    assert isinstance(retry, Sent) and isinstance(again, Sent) and isinstance(four, Sent)
    # Offsets per room follow the batch order, after what was stored before.
    assert [(s.message.room, s.message.offset) for s in (one, three)] == [(r1, 2), (r1, 3)]
    assert [(s.message.room, s.message.offset) for s in (two, four)] == [(r2, 1), (r2, 2)]
    assert one.created and two.created and three.created and four.created
    assert not retry.created and retry.message.mid == earlier.message.mid and retry.frame == earlier.frame
    assert not again.created and again.message.mid == one.message.mid
    # PostgreSQL rebuilds exactly the published frames.
    store = ChannelStore(db)
    assert await store.range(f"room:{r1}", 0, 3) == [(1, earlier.frame), (2, one.frame), (3, three.frame)]
    assert await store.range(f"room:{r2}", 0, 2) == [(1, two.frame), (2, four.frame)]


async def test_an_item_with_bad_data_does_not_fail_the_others(db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    room = await create_room(db, a, [b])
    results = await ChatStore(db).send_batch([
        Outgoing(room, a, "ok1", "fine"),
        Outgoing(room, b, "bad", "PostgreSQL text cannot hold \x00"),
        Outgoing(room, a, "ok2", "fine too"),
    ])
    assert isinstance(results[1], asyncpg.DataError)
    assert [r.message.offset for r in results if isinstance(r, Sent)] == [1, 2]  # no hole


async def test_two_writers_sharing_rooms_commit_in_order_without_deadlock(
        db: asyncpg.Pool, redis: aioredis.Redis) -> None:
    users = [await make_user(db) for _ in range(4)]
    rooms = [await create_room(db, users[0], users[1:]) for _ in range(6)]
    store = ChannelStore(db)
    writers = [ChatWriter(ChatStore(db), RedisBroker(redis, f"w{n}-{uuid.uuid4().hex[:6]}"), store, max_items=16)
               for n in range(2)]

    async def sender(n: int) -> list[Sent]:
        # Each sender walks the rooms in its own order, so batches of the two writers overlap in
        # opposite lock orders; each sender waits for its ack before its next send.
        user, writer = users[n], writers[n % 2]
        order = rooms if n % 2 else rooms[::-1]
        out = []
        for i in range(30):
            out.append(await writer.send(Outgoing(order[i % len(order)], user, f"{n}-{i}", f"{n}:{i}")))
        return out

    try:
        per_sender = await asyncio.wait_for(asyncio.gather(*(sender(n) for n in range(4))), 30)
    finally:
        for w in writers:
            await w.close()
    for sent in per_sender:
        by_room: dict[str, list[int]] = {}
        for s in sent:
            assert s.created
            by_room.setdefault(s.message.room, []).append(s.message.offset)
        assert all(offsets == sorted(offsets) for offsets in by_room.values())  # a sender's order holds
    for room in rooms:
        ch = f"room:{room}"
        rows = await store.range(ch, 0, 1000)
        assert [off for off, _ in rows] == list(range(1, 21))  # 120 sends over 6 rooms, no hole
        # Redis holds the same events at the same offsets, appended in order (no gap left).
        entries = await redis.xrange(keys.channel_stream(ch))
        assert [(int(eid.split(b"-")[0]), f[b"p"]) for eid, f in entries] == rows


async def test_writer_raises_not_member_for_that_sender_only(db: asyncpg.Pool, redis: aioredis.Redis) -> None:
    a, b, outsider = [await make_user(db) for _ in range(3)]
    room = await create_room(db, a, [b])
    writer = ChatWriter(ChatStore(db), RedisBroker(redis, "w-solo"), ChannelStore(db))
    try:
        results = await asyncio.gather(writer.send(Outgoing(room, a, "1", "hi")),
                                       writer.send(Outgoing(room, outsider, "2", "let me in")),
                                       writer.send(Outgoing(room, b, "3", "hello")), return_exceptions=True)
    finally:
        await writer.close()
    assert isinstance(results[1], NotMember)
    assert [r.message.offset for r in results if isinstance(r, Sent)] == [1, 2]


async def test_the_after_stage_runs_in_batch_order_before_results_and_overlaps_the_next_flush() -> None:
    events: list[str] = []
    hold_first_after = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        events.append(f"flush {list(items)}")
        return list(items)

    async def after(items: Sequence[int], results: Sequence[int | BaseException]) -> None:
        events.append(f"after {list(results)} start")
        if results == [0]:
            await hold_first_after.wait()
        events.append(f"after {list(results)} end")

    batcher: GroupCommit[int, int] = GroupCommit("test", flush, after=after)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.01)
    # Batch 1 was written while batch 0 was still publishing; nobody has a result yet.
    assert events == ["flush [0]", "after [0] start", "flush [1]"]
    assert not first.done() and not second.done()
    hold_first_after.set()
    assert await asyncio.gather(first, second) == [0, 1]
    assert events[3:] == ["after [0] end", "after [1] start", "after [1] end"]


async def test_a_busy_batcher_waits_its_window_an_idle_one_does_not() -> None:
    batches: list[list[int]] = []

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        batches.append(list(items))
        return list(items)

    batcher: GroupCommit[int, int] = GroupCommit("test", flush, window_s=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await batcher.submit(1) == 1
    assert loop.time() - started < 0.04  # idle: flushed at once
    # Busy now (a batch was just formed): the next send waits the window, and a send arriving
    # within it joins the same batch.
    first = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(batcher.submit(3))
    assert await asyncio.gather(first, second) == [2, 3]
    assert batches == [[1], [2, 3]]


async def test_event_batches_mix_channels_keep_order_and_dedupe_keys(db: asyncpg.Pool) -> None:
    from protocol import frames as F
    from realtime.store import Appending, append_batch

    a, b = f"user:{uuid.uuid4()}", f"user:{uuid.uuid4()}"

    def event(ch: str, data: object) -> Appending:
        def build(epoch: str, offset: int, mid: str, ts: int) -> F.Frame:
            if data == "boom":
                raise ValueError("cannot build")
            return F.Event(ch=ch, epoch=epoch, offset=offset, mid=mid, sender="s", data=data, ts=ts)
        return event_item(ch, build, data)

    def event_item(ch: str, build: object, data: object) -> Appending:
        key = str(data) if isinstance(data, str) and data.startswith("k") else None
        return Appending(ch, "event", "s", key, build, F.Event.TYPE)  # type: ignore[arg-type]

    async with db.acquire() as conn:
        first = await append_batch(conn, [event(a, "k1"), event(b, 1), event(a, 2), event(a, "boom"),
                                          event(a, "k1"), event(b, 3)])
        again = await append_batch(conn, [event(a, "k1"), event(a, 4)])
    k1, b1, a2, boom, k1_again, b3 = first
    assert isinstance(boom, ValueError)
    assert all(isinstance(r, Stored) for r in (k1, b1, a2, k1_again, b3))
    assert [(r.channel, r.offset, r.created) for r in (k1, a2, k1_again)] == [(a, 1, True), (a, 2, True), (a, 1, False)]
    assert [(r.channel, r.offset) for r in (b1, b3)] == [(b, 1), (b, 2)]
    assert isinstance(again[0], Stored) and again[0].mid == k1.mid and not again[0].created
    assert isinstance(again[1], Stored) and again[1].offset == 3  # no hole where "boom" failed
    assert [off for off, _ in await ChannelStore(db).range(a, 0, 10)] == [1, 2, 3]


async def test_each_batch_records_how_long_its_transaction_took() -> None:
    def slow_batches(over: float) -> float:
        total = REGISTRY.get_sample_value("amaro_hub_commit_seconds_count", {"writer": "timed"}) or 0.0
        within = REGISTRY.get_sample_value("amaro_hub_commit_seconds_bucket", {"writer": "timed", "le": str(over)})
        return total - (within or 0.0)

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        await asyncio.sleep(0.03)  # a transaction that takes 30 ms
        return list(items)

    before = slow_batches(0.025)
    batcher: GroupCommit[int, int] = GroupCommit("timed", flush)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(3))) == [0, 1, 2]
    assert slow_batches(0.025) == before + 1  # one batch, seen as slower than 25 ms
