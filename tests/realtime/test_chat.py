from __future__ import annotations

import asyncio

import asyncpg
import pytest

from feed.rooms import add_members, create_room
from realtime.chat import ChatStore, NotMember
from realtime.store import ChannelStore
from tests.realtime.conftest import chat_send, make_user


async def test_send_assigns_room_offsets_and_dedupes_cmid(db: asyncpg.Pool) -> None:
    a, b, c = [await make_user(db) for _ in range(3)]
    room = await create_room(db, a, [b], title="t")
    chat = ChatStore(db)
    first = await chat_send(chat, room, a, "c1", "hello")
    second = await chat_send(chat, room, b, "c1", "hi")  # same cmid, other sender: another message
    retry = await chat_send(chat, room, a, "c1", "hello again")
    assert first.created and second.created and not retry.created
    assert (first.message.offset, second.message.offset) == (1, 2)
    assert retry.message.mid == first.message.mid and retry.frame == first.frame
    # What PostgreSQL gives back (history, gap refills) is exactly what was published.
    assert (await ChannelStore(db).range(f"room:{room}", 0, 2)) == [(1, first.frame), (2, second.frame)]
    page, _ = await chat.history(room, -1, 10)
    assert page == [second.message, first.message]
    with pytest.raises(NotMember):
        await chat_send(chat, room, c, "c2", "intruder")
    await add_members(db, room, [c])
    assert (await chat_send(chat, room, c, "c2", "now a member")).message.offset == 3


async def test_concurrent_sends_get_distinct_contiguous_offsets(db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    room = await create_room(db, a, [b])
    chat = ChatStore(db)
    sent = await asyncio.gather(*(chat_send(chat, room, a if i % 2 else b, f"k{i}", str(i)) for i in range(20)))
    # A retried cmid racing its original is stored once.
    dupes = await asyncio.gather(*(chat_send(chat, room, a, "same", "x") for _ in range(5)))
    assert sorted(s.message.offset for s in sent) == list(range(1, 21))
    assert len({d.message.mid for d in dupes}) == 1 and dupes[0].message.offset == 21


async def test_history_pages_and_receipts(db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    room = await create_room(db, a, [b], direct=True)
    assert await create_room(db, b, [a], direct=True) == room
    chat = ChatStore(db)
    for i in range(5):
        await chat_send(chat, room, a, f"m{i}", f"body {i}")
    page, more = await chat.history(room, -1, 3)
    assert [m.offset for m in page] == [5, 4, 3] and more
    page, more = await chat.history(room, 3, 10)
    assert [m.body for m in page] == ["body 1", "body 0"] and not more
    assert await chat.receipt(room, b, "read", 3)
    assert not await chat.receipt(room, b, "read", 2)  # never backwards
    assert await chat.receipt(room, b, "read", 99)  # clamped to the last message
    assert await db.fetchval("SELECT seq FROM receipts WHERE user_id = $1::uuid", b) == 5
