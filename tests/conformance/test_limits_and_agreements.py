"""SPEC §11 (default budgets), §9 (`presence.hb`) and §2 (log-out) as the server applies them:
50 frames/s per connection with a burst of 100; 60 writes (chat, pub, react) per user per 10 s;
`presence.hb(status)` answered by nothing and relayed to nobody; log-out `204` whatever the token."""

from __future__ import annotations

import asyncio
import secrets
import time

import asyncpg
import httpx

from feed.rooms import create_room
from protocol import frames as F
from protocol.errors import ErrorCode
from tests.conftest import RunningNode
from tests.realtime.conftest import make_user
from tests.realtime.wsclient import Client


async def answers_to(client: Client, ids: list[int]) -> dict[int, F.Frame]:
    got: dict[int, F.Frame] = {}
    while len(got) < len(ids):
        frame = await client.recv(timeout=5)
        rid = getattr(frame, "id", 0)
        if rid in ids and not isinstance(frame, F.Ping):
            assert rid not in got, (rid, frame)  # exactly one answer per request
            got[rid] = frame
    return got


async def test_frame_budget_is_a_burst_of_100(running_node: RunningNode, db: asyncpg.Pool) -> None:
    client = await Client.connect(running_node.ws_url, await make_user(db))
    await asyncio.sleep(0.1)  # the bucket is full
    ids = [client.next_id() for _ in range(130)]
    for rid in ids:
        await client.send(F.Ping(id=rid))
    got = await answers_to(client, ids)
    pongs = [rid for rid in ids if isinstance(got[rid], F.Pong)]
    refused = [got[rid] for rid in ids if not isinstance(got[rid], F.Pong)]
    assert 100 <= len(pongs) <= 110, len(pongs)
    assert all(isinstance(e, F.Error) and e.code == ErrorCode.RATE_LIMITED for e in refused)
    assert pongs[:100] == ids[:100]  # the burst passes in order
    await client.close()


async def test_writes_are_60_per_user_per_10_s(running_node: RunningNode, db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    room = await create_room(db, a, [b])
    if time.time() % 10 > 6:  # the window is fixed (10 s): start at the beginning of one
        await asyncio.sleep(10 - time.time() % 10 + 0.05)
    tabs = [await Client.connect(running_node.ws_url, a) for _ in range(2)]  # one budget for both
    results: list[F.Frame] = []
    for n in range(35):
        for i, tab in enumerate(tabs):
            await asyncio.sleep(0.02)  # under the frame budget: only the write budget is tested
            results.append(await tab.request(F.ChatSend(id=tab.next_id(), room=room, cmid=f"w{n}-{i}",
                                                        body="dance")))
    acked = [r for r in results if isinstance(r, F.ChatAck)]
    refused = [r for r in results if isinstance(r, F.Error)]
    assert len(acked) == 60 and len(refused) == 10
    assert all(e.code == ErrorCode.RATE_LIMITED for e in refused)
    for tab in tabs:
        await tab.close()


async def test_presence_hb_gets_no_answer_and_is_relayed_to_nobody(running_node: RunningNode,
                                                                   db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    room = await create_room(db, a, [b])
    ca, cb = await Client.connect(running_node.ws_url, a), await Client.connect(running_node.ws_url, b)
    await ca.subscribe(f"room:{room}", presence=True)
    await cb.subscribe(f"room:{room}", presence=True)
    await cb.sync()
    seen_before = len(cb.seen)
    for status in ("away", "online"):
        await ca.send(F.PresenceHeartbeat(status=status))
    await ca.sync()
    await cb.sync()
    assert not [f for f in ca.seen if isinstance(f, F.Error)]
    assert [type(f) for f in cb.seen[seen_before:]] == [F.Pong]  # nothing about a's status
    await ca.close()
    await cb.close()


async def test_logout_answers_204_whatever_the_token(running_node: RunningNode) -> None:
    name, password = f"spec{secrets.token_hex(4)}", "a-long-passphrase-1"
    async with httpx.AsyncClient(base_url=running_node.http_url) as http:
        grant = (await http.post("/api/v1/auth/signup", json={"username": name, "password": password})).json()
        garbage = await http.post("/api/v1/auth/logout", json={"refresh_token": "rt1_garbage"})
        assert garbage.status_code == 204
        real = await http.post("/api/v1/auth/logout", json={"refresh_token": grant["refresh_token"]})
        assert real.status_code == 204
        again = await http.post("/api/v1/auth/logout", json={"refresh_token": grant["refresh_token"]})
        assert again.status_code == 204
        refreshed = await http.post("/api/v1/auth/refresh", json={"refresh_token": grant["refresh_token"]})
        assert refreshed.status_code == 401
