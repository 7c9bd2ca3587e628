"""SPEC §6 (every request gets exactly one answer carrying its id), §11 and §12 (a frame over
budget is refused with `error 400` and its `id`; a client that keeps sending while refused is
closed with 4009). The node here allows 5 frames/s (burst 5) and 20 refusals."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from amaro.services import Services
from amaro.settings import Settings
from protocol import frames as F
from protocol.errors import ErrorCode
from tests.conformance.conftest import spec_node
from tests.realtime.conftest import make_user
from tests.realtime.wsclient import Client


async def test_every_request_over_budget_is_answered_with_its_own_id(settings: Settings, services: Services,
                                                                    db: asyncpg.Pool) -> None:
    async with spec_node(settings, services, "spec-rate-ids", frame_rate=5.0, frame_burst=5.0,
                         flood_limit=20) as node:
        user = await make_user(db)
        client = await Client.connect(node.ws_url, user)
        ids = list(range(100, 112))
        for rid in ids:
            await client.send(F.ChatHistory(id=rid, room="00000000-0000-4000-8000-000000000000"))
        answers: dict[int, list[F.Frame]] = {}
        deadline = time.monotonic() + 5
        while sum(map(len, answers.values())) < len(ids) and time.monotonic() < deadline:
            frame = await client.recv(timeout=5)
            rid = getattr(frame, "id", 0)
            if rid in ids:
                answers.setdefault(rid, []).append(frame)
        assert sorted(answers) == ids and all(len(a) == 1 for a in answers.values())
        limited = [a[0] for a in answers.values() if isinstance(a[0], F.Error) and a[0].code == ErrorCode.RATE_LIMITED]
        assert len(limited) >= len(ids) - 6  # the burst passes, the rest is refused, each with its id
        await client.close()


async def test_client_that_keeps_sending_while_refused_is_closed_4009(settings: Settings, services: Services,
                                                                     db: asyncpg.Pool) -> None:
    async with spec_node(settings, services, "spec-rate-flood", frame_rate=5.0, frame_burst=5.0,
                         flood_limit=20) as node:
        client = await Client.connect(node.ws_url, await make_user(db))
        started = time.monotonic()
        # Six frames every 200 ms: one of them fits the budget each time, the others are refused.
        while client.close_code is None and time.monotonic() - started < 8:
            for _ in range(6):
                await client.send(F.Ping(id=client.next_id()))
            await asyncio.sleep(0.2)
        bye = await client.seen_or_expect(F.Disconnect, timeout=5)
        assert bye.code == 4009 and bye.reconnect
        while client.close_code is None:
            try:
                await client.recv(timeout=5)
            except ConnectionError:
                break
        assert client.close_code == 4009
        assert time.monotonic() - started < 8
