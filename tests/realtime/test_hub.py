"""The hub through a real node (HTTP and the socket listener in the test process) and real sockets."""

from __future__ import annotations

import uuid

import asyncpg
import redis.asyncio as aioredis

from feed.rooms import create_room
from protocol import frames as F
from protocol.errors import ErrorCode
from realtime import keys
from tests.conftest import RunningNode
from tests.realtime.conftest import follow, make_post, make_user, room_pair
from tests.realtime.wsclient import Client


async def test_chat_between_members_with_ack_and_cmid_dedupe(running_node: RunningNode, db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    room = await create_room(db, a, [b])
    ca, cb = await Client.connect(running_node.ws_url, a), await Client.connect(running_node.ws_url, b)
    ch = f"room:{room}"
    await ca.subscribe(ch)
    sub = await cb.subscribe(ch)
    assert sub.offset == 0 and sub.epoch
    ack = await ca.chat(room, "c-1", "hello")
    msg = await cb.expect(F.ChatMessage)
    assert (msg.body, msg.sender, msg.offset, msg.mid) == ("hello", a, ack.offset, ack.mid)
    retry = await ca.chat(room, "c-1", "hello")
    assert retry.mid == ack.mid and retry.offset == ack.offset
    ack2 = await cb.chat(room, "c-2", "back")
    assert ack2.offset == ack.offset + 1
    got = await ca.expect(F.ChatMessage, lambda m: m.sender == b)
    assert got.body == "back"
    # The retry was not delivered a second time.
    assert [m.mid for m in cb.seen if isinstance(m, F.ChatMessage)] == [ack.mid, ack2.mid]
    page = await ca.request(F.ChatHistory(id=ca.next_id(), room=room))
    assert isinstance(page, F.ChatPage) and [m.body for m in page.messages] == ["back", "hello"]
    await ca.close()
    await cb.close()


async def test_permissions_are_enforced_on_subscribe_and_send(running_node: RunningNode, db: asyncpg.Pool) -> None:
    a, b, c = await make_user(db), await make_user(db), await make_user(db)
    room = await create_room(db, a, [b])
    private = await make_post(db, a, visibility="followers")
    cc = await Client.connect(running_node.ws_url, c)
    for ch in (f"room:{room}", f"user:{a}", f"post:{private}", f"online:{a}"):
        answer = await cc.request(F.Subscribe(id=cc.next_id(), ch=ch))
        assert isinstance(answer, F.Error) and answer.code == ErrorCode.PERMISSION_DENIED, (ch, answer)
    answer = await cc.request(F.ChatSend(id=cc.next_id(), room=room, cmid="x", body="let me in"))
    assert isinstance(answer, F.Error) and answer.code == ErrorCode.PERMISSION_DENIED
    answer = await cc.request(F.Subscribe(id=cc.next_id(), ch=f"room:{uuid.uuid4().hex[:8]}"))
    assert isinstance(answer, F.Error) and answer.code == ErrorCode.CHANNEL_NOT_FOUND
    # Following makes followers-only posts and online state visible.
    await follow(db, c, a)
    await cc.subscribe(f"post:{private}")
    await cc.subscribe(f"online:{a}")
    await cc.subscribe(f"user:{c}")
    # Publishing on someone's personal channel is refused even when subscribed elsewhere.
    answer = await cc.request(F.Publish(id=cc.next_id(), ch=f"user:{c}", key="k", data={"x": 1}))
    assert isinstance(answer, F.Error) and answer.code == ErrorCode.PERMISSION_DENIED
    await cc.close()


async def test_resume_after_reconnect_gets_the_whole_gap_in_order(running_node: RunningNode,
                                                                   db: asyncpg.Pool, redis: aioredis.Redis) -> None:
    pair = await room_pair(db, running_node.ws_url)
    room, ch, ca, cb, sub, b = pair.room, pair.ch, pair.first, pair.second, pair.sub, pair.second.user
    await ca.chat(room, "m0", "before")
    first = await cb.expect(F.ChatMessage)
    await cb.close()
    acks = [await ca.chat(room, f"m{i}", f"missed {i}") for i in range(1, 6)]
    cb = await Client.connect(running_node.ws_url, b)
    again = await cb.subscribe(ch, epoch=sub.epoch, offset=first.offset)
    assert again.recovered and again.offset == acks[-1].offset
    got = [await cb.expect(F.ChatMessage) for _ in acks]
    assert [m.mid for m in got] == [x.mid for x in acks]
    # Live after the replay, no duplicate.
    live = await ca.chat(room, "m6", "live")
    assert (await cb.expect(F.ChatMessage)).mid == live.mid
    await cb.close()

    # Redis loses the channel (restart, eviction): the resume is served from PostgreSQL.
    await redis.delete(keys.channel_stream(ch), keys.channel_meta(ch))
    more = [await ca.chat(room, f"n{i}", f"after loss {i}") for i in range(3)]
    cb = await Client.connect(running_node.ws_url, b)
    again = await cb.subscribe(ch, epoch=sub.epoch, offset=first.offset)
    assert again.recovered
    got = [await cb.expect(F.ChatMessage) for _ in range(len(acks) + 1 + len(more))]
    assert [m.offset for m in got] == list(range(first.offset + 1, more[-1].offset + 1))
    # A position from another epoch cannot be resumed: the client is told to refetch.
    await cb.close()
    cb = await Client.connect(running_node.ws_url, b)
    stale = await cb.subscribe(ch, epoch="other", offset=1)
    assert not stale.recovered
    await ca.close()
    await cb.close()


async def test_presence_typing_and_reactions(running_node: RunningNode, db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    await follow(db, b, a)
    room = await create_room(db, a, [b])
    post = await make_post(db, a)
    ch = f"room:{room}"
    cb = await Client.connect(running_node.ws_url, b)
    await cb.subscribe(f"online:{a}")
    snap = await cb.expect(F.PresenceSnapshot, lambda s: s.ch == f"online:{a}")
    assert a not in snap.users
    ca = await Client.connect(running_node.ws_url, a)
    await cb.expect(F.PresenceJoin, lambda j: j.user == a)
    # A second device of the same user is not a second join.
    ca2 = await Client.connect(running_node.ws_url, a)
    await cb.subscribe(ch, presence=True)
    room_snap = await cb.expect(F.PresenceSnapshot, lambda s: s.ch == ch)
    assert room_snap.users == (b,) and room_snap.count == 1
    await ca.subscribe(ch, presence=True)
    await cb.expect(F.PresenceJoin, lambda j: j.ch == ch and j.user == a)

    await ca.send(F.Typing(ch=ch))
    await ca.send(F.Typing(ch=ch))  # throttled: one start per 2 s
    typing = await cb.expect(F.TypingNotice)
    assert typing.user == a and typing.active
    await ca.send(F.Typing(ch=ch, active=False))
    stop = await cb.expect(F.TypingNotice)
    assert not stop.active
    assert len([f for f in cb.seen if isinstance(f, F.TypingNotice) and f.active]) == 1

    await cb.subscribe(f"post:{post}")
    for i, emoji in zip(range(100, 105), ["🔥", "🔥", "❤", "😂", "🔥"], strict=True):
        await ca.send(F.React(id=i, target_kind="post", target_id=post, emoji=emoji))
    acks = [await ca.expect(F.Ack) for _ in range(5)]
    assert sorted(x.id for x in acks) == list(range(100, 105))
    counts = await cb.expect(F.ReactionCounts, lambda c: c.counts == {"🔥": 1, "❤": 1, "😂": 1})
    assert counts.target_id == post
    assert len([f for f in cb.seen if isinstance(f, F.ReactionCounts)]) <= 2  # coalesced

    # Leaving: the user is gone only when the last device left (after a short grace).
    await ca.close()
    await ca2.close()
    left = await cb.expect(F.PresenceLeave, lambda x: x.ch == f"online:{a}", timeout=10)
    assert left.user == a
    assert not [f for f in cb.seen if isinstance(f, F.PresenceJoin) and f.ch == f"online:{a}"][1:]
    await cb.close()


async def test_publish_is_idempotent_by_key_and_refuses_oversize(running_node: RunningNode, db: asyncpg.Pool) -> None:
    author, viewer = await make_user(db), await make_user(db)
    post = await make_post(db, author)
    ch = f"post:{post}"
    ca, cv = await Client.connect(running_node.ws_url, author), await Client.connect(running_node.ws_url, viewer)
    await ca.subscribe(ch)
    await cv.subscribe(ch)
    first = await cv.request(F.Publish(id=cv.next_id(), ch=ch, key="k1", data={"comment": "wow"}))
    retry = await cv.request(F.Publish(id=cv.next_id(), ch=ch, key="k1", data={"comment": "wow"}))
    other = await cv.request(F.Publish(id=cv.next_id(), ch=ch, key="k2", data={"comment": "again"}))
    another = await cv.request(F.Publish(id=cv.next_id(), ch=ch, key="k3", data={"comment": "and again"}))
    assert isinstance(first, F.Ack) and isinstance(retry, F.Ack) and isinstance(other, F.Ack)
    assert isinstance(another, F.Ack)
    assert (retry.offset, retry.mid) == (first.offset, first.mid)
    assert len({first.offset, other.offset, another.offset}) == 3
    events = [await ca.expect(F.Event) for _ in range(3)]
    assert [e.sender for e in events] == [viewer] * 3  # the authenticated user, never a field
    assert [e.data["comment"] for e in events] == ["wow", "again", "and again"]
    big = await cv.request(F.Publish(id=cv.next_id(), ch=ch, key="big", data="x" * (65_536 - 110)))
    assert isinstance(big, F.Error) and big.code in (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.FRAME_TOO_LARGE)
    await ca.close()
    await cv.close()


async def test_removed_members_lose_their_subscription_at_once(running_node: RunningNode, db: asyncpg.Pool,
                                                               redis: aioredis.Redis) -> None:
    from feed.rooms import remove_member
    from realtime.broker import RedisBroker
    from realtime.events import EventSink
    from realtime.store import ChannelStore

    a, b = await make_user(db), await make_user(db)
    room = await create_room(db, a, [b])
    ch = f"room:{room}"
    ca, cb = await Client.connect(running_node.ws_url, a), await Client.connect(running_node.ws_url, b)
    await ca.subscribe(ch)
    await cb.subscribe(ch)
    await remove_member(db, room, b, EventSink(ChannelStore(db), RedisBroker(redis, "feed-api")))
    gone = await cb.expect(F.Unsubscribed)
    assert (gone.id, gone.ch) == (0, ch)
    ack = await ca.chat(room, "after", "b must not see this")
    if not [f for f in ca.seen if isinstance(f, F.ChatMessage) and f.mid == ack.mid]:
        await ca.expect(F.ChatMessage, lambda m: m.mid == ack.mid)  # delivered (to a) by now
    await cb.send(F.Ping(id=5))
    await cb.expect(F.Pong)
    assert not [f for f in cb.seen if isinstance(f, F.ChatMessage)]
    answer = await cb.request(F.Subscribe(id=cb.next_id(), ch=ch))
    assert isinstance(answer, F.Error) and answer.code == ErrorCode.PERMISSION_DENIED
    await ca.close()
    await cb.close()
