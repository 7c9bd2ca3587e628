"""SPEC §8 (positions) and §9 (application events): `pub` on a `room:` channel is a durable event
of that channel, so it takes the channel's next offset in the channel's one epoch, and chat keeps
flowing after it (live and on resume)."""

from __future__ import annotations

import asyncpg

from feed.rooms import create_room
from protocol import frames as F
from tests.conftest import RunningNode
from tests.realtime.conftest import make_user
from tests.realtime.wsclient import Client


async def test_pub_on_a_room_shares_its_position_and_never_silences_chat(running_node: RunningNode,
                                                                          db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    room = await create_room(db, a, [b])
    ch = f"room:{room}"
    ca, cb = await Client.connect(running_node.ws_url, a), await Client.connect(running_node.ws_url, b)
    await ca.subscribe(ch)
    sub = await cb.subscribe(ch)
    first = await ca.chat(room, "before", "one")
    assert first.offset == sub.offset + 1
    before = await cb.expect(F.ChatMessage, lambda m: m.cmid == "before")
    assert before.epoch == sub.epoch
    ack = await ca.request(F.Publish(id=ca.next_id(), ch=ch, key="k-room", data={"x": 1}))
    assert isinstance(ack, F.Ack) and ack.ch == ch
    assert ack.offset == first.offset + 1  # the channel's next offset, not a counter of its own
    event = await cb.expect(F.Event)
    assert (event.epoch, event.offset, event.mid, event.data) == (sub.epoch, ack.offset, ack.mid, {"x": 1})
    # Chat after the pub reaches the other member, at the next offset of the same epoch.
    after = await ca.chat(room, "after", "two")
    assert after.offset == ack.offset + 1
    msg = await cb.expect(F.ChatMessage, lambda m: m.cmid == "after", timeout=5)
    assert (msg.epoch, msg.offset, msg.body) == (sub.epoch, after.offset, "two")
    # A retried pub answers the original position.
    retry = await ca.request(F.Publish(id=ca.next_id(), ch=ch, key="k-room", data={"x": 1}))
    assert isinstance(retry, F.Ack) and (retry.offset, retry.mid) == (ack.offset, ack.mid)
    # Resuming from before the pub replays the event and the later message, in order, same epoch.
    cc = await Client.connect(running_node.ws_url, b)
    resumed = await cc.subscribe(ch, epoch=sub.epoch, offset=first.offset)
    assert resumed.recovered and resumed.epoch == sub.epoch and resumed.offset == after.offset
    replay = [await cc.recv(), await cc.recv()]
    assert [(type(f), getattr(f, "offset", None)) for f in replay] == [(F.Event, ack.offset),
                                                                      (F.ChatMessage, after.offset)]
    for c in (ca, cb, cc):
        await c.close()
