"""SPEC §9 (reactions) and §6: `react(on=false)` clears the user's reaction and is answered `ack`
like setting it; subscribers of the target's channel get the new total counts."""

from __future__ import annotations

import asyncpg

from feed.rooms import create_room
from protocol import frames as F
from tests.conftest import RunningNode
from tests.realtime.conftest import make_post, make_user
from tests.realtime.wsclient import Client


async def test_clearing_a_reaction_is_acked_and_counted(running_node: RunningNode, db: asyncpg.Pool) -> None:
    author, fan = await make_user(db), await make_user(db)
    post = await make_post(db, author)
    ca, cf = await Client.connect(running_node.ws_url, author), await Client.connect(running_node.ws_url, fan)
    await ca.subscribe(f"post:{post}")
    for on in (True, False):
        answer = await cf.request(F.React(id=cf.next_id(), target_kind="post", target_id=post, emoji="🔥", on=on))
        assert isinstance(answer, F.Ack), answer
        want = 1 if on else 0
        counts = await ca.expect(F.ReactionCounts, lambda c: c.counts.get("🔥", 0) == want)  # noqa: B023
        assert counts.ch == f"post:{post}"
    # Clearing what is not set is acked too, and changes nothing.
    again = await cf.request(F.React(id=cf.next_id(), target_kind="post", target_id=post, emoji="🔥", on=False))
    assert isinstance(again, F.Ack)
    # A chat message's reaction set and cleared, seen by the room.
    room = await create_room(db, author, [fan])
    await ca.subscribe(f"room:{room}")
    sent = await ca.chat(room, "r-1", "dance!")
    for on in (True, False):
        answer = await cf.request(F.React(id=cf.next_id(), target_kind="message", target_id=sent.mid,
                                          emoji="💃", on=on))
        assert isinstance(answer, F.Ack) and answer.ch == f"room:{room}", answer
        want = 1 if on else 0
        await ca.expect(F.ReactionCounts, lambda c: c.target_id == sent.mid
                        and c.counts.get("💃", 0) == want)  # noqa: B023
    await ca.close()
    await cf.close()
