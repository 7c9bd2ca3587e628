"""SPEC §9 (typing): `typing(ch, active)` reaches the *others* as `typing.ev`; at most one start
per 2 s per user and channel is forwarded, and a stop ends that: typing again right after a stop
is a new start, forwarded at once."""

from __future__ import annotations

import asyncpg

from feed.rooms import create_room
from protocol import frames as F
from tests.conftest import RunningNode
from tests.realtime.conftest import make_user
from tests.realtime.wsclient import Client


async def test_typing_reaches_others_not_the_typist_and_restarts_after_a_stop(running_node: RunningNode,
                                                                               db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    room = await create_room(db, a, [b])
    ch = f"room:{room}"
    typist, typist_tab, other = (await Client.connect(running_node.ws_url, a),
                                 await Client.connect(running_node.ws_url, a),
                                 await Client.connect(running_node.ws_url, b))
    for c in (typist, typist_tab, other):
        await c.subscribe(ch)
    await typist.send(F.Typing(ch=ch, active=True))
    started = await other.expect(F.TypingNotice)
    assert (started.ch, started.user, started.active) == (ch, a, True)
    await typist.send(F.Typing(ch=ch, active=True))  # a refresh within 2 s: not forwarded
    await typist.send(F.Typing(ch=ch, active=False))
    stopped = await other.expect(F.TypingNotice)
    assert (stopped.user, stopped.active) == (a, False)
    # Typing again at once after the stop is a new start.
    await typist.send(F.Typing(ch=ch, active=True))
    again = await other.expect(F.TypingNotice, timeout=3)
    assert (again.user, again.active) == (a, True)
    await typist.send(F.Typing(ch=ch, active=False))
    assert (await other.expect(F.TypingNotice)).active is False
    # The typist's own sockets heard none of it.
    for c in (typist, typist_tab):
        await c.sync()
        assert not [f for f in c.seen if isinstance(f, F.TypingNotice)]
    for c in (typist, typist_tab, other):
        await c.close()
