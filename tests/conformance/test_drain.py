"""SPEC §5.8 (drain) and §13 (4010): a draining node keeps serving everything but new `sub` for
its drain window, and closes with 4010 only at the end of it or when the client leaves."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from amaro.services import Services
from amaro.settings import Settings
from feed.rooms import create_room
from protocol import frames as F
from protocol.errors import ErrorCode
from tests.conformance.conftest import spec_node
from tests.realtime.conftest import make_user
from tests.realtime.wsclient import Client


async def test_everything_but_sub_works_for_the_drain_window(settings: Settings, services: Services,
                                                             db: asyncpg.Pool) -> None:
    async with spec_node(settings, services, "spec-drain-window", drain_timeout_s=4.0) as node:
        a, b = await make_user(db), await make_user(db)
        room = await create_room(db, a, [b])
        ca, cb = await Client.connect(node.ws_url, a), await Client.connect(node.ws_url, b)
        await ca.subscribe(f"room:{room}")
        await cb.subscribe(f"room:{room}")
        draining = asyncio.create_task(node.parts.drain())
        drain = await ca.expect(F.Drain)
        told = time.monotonic()
        await cb.expect(F.Drain)
        # Chat, pub, ping and unsub keep working; only a new subscription is refused (502, its id).
        ack = await ca.chat(room, "during-drain", "still here")
        msg = await cb.expect(F.ChatMessage, lambda m: m.cmid == "during-drain")
        assert msg.mid == ack.mid
        published = await ca.request(F.Publish(id=ca.next_id(), ch=f"room:{room}", key="k-drain", data=1))
        assert isinstance(published, F.Ack)
        refused = await ca.request(F.Subscribe(id=ca.next_id(), ch=f"user:{a}"))
        assert isinstance(refused, F.Error) and refused.code == ErrorCode.DRAINING
        await ca.sync()
        # The window lasts: nothing closes the socket for the next second.
        while (left := 1.0 - (time.monotonic() - told)) > 0:
            try:
                frame = await ca.recv(timeout=left)
            except TimeoutError:
                break
            assert not isinstance(frame, F.Disconnect), frame
        # At its end: disconnect(4010) repeating the drain's hint, then the close 4010.
        bye = await ca.expect(F.Disconnect, timeout=5)
        assert (bye.code, bye.reconnect, bye.reconnect_after_ms) == (4010, True, drain.reconnect_after_ms)
        while ca.close_code is None:
            try:
                await ca.recv(timeout=5)
            except ConnectionError:
                break
        assert ca.close_code == 4010
        await asyncio.wait_for(draining, 5)


async def test_drain_ends_once_every_client_has_left(settings: Settings, services: Services,
                                                     db: asyncpg.Pool) -> None:
    async with spec_node(settings, services, "spec-drain-leave", drain_timeout_s=20.0) as node:
        client = await Client.connect(node.ws_url, await make_user(db))
        started = time.monotonic()
        draining = asyncio.create_task(node.parts.drain())
        await client.expect(F.Drain)
        await asyncio.sleep(0.3)
        assert not draining.done()  # the window stays open while the client is there
        await client.close()  # the client opened its new socket elsewhere: it leaves
        await asyncio.wait_for(draining, 5)
        assert time.monotonic() - started < 5
