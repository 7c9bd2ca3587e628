"""SPEC §5.6 and §3: the server sends protocol `ping` frames on a quiet socket every
`ping_interval_ms` (WebSocket-level pings are not used) and closes a socket that left two of them
unanswered. Here `ping_interval_ms` is 300 ms."""

from __future__ import annotations

import time

import asyncpg

from amaro.services import Services
from amaro.settings import Settings
from protocol import frames as F
from tests.conformance.conftest import spec_node
from tests.realtime.conftest import make_user
from tests.realtime.wsclient import Client

INTERVAL_S = 0.3


async def test_quiet_socket_gets_pings_and_stays_open_while_it_answers(settings: Settings, services: Services,
                                                                       db: asyncpg.Pool) -> None:
    async with spec_node(settings, services, "spec-ping", ping_interval_s=INTERVAL_S) as node:
        client = await Client.connect(node.ws_url, await make_user(db))
        assert client.welcome.ping_interval_ms == int(INTERVAL_S * 1000)
        opened = time.monotonic()
        heard = opened
        pings = 0
        while time.monotonic() - opened < INTERVAL_S * 8:
            frame = await client.recv(timeout=INTERVAL_S * 2)  # never two intervals without a frame
            if isinstance(frame, F.Welcome):
                continue
            assert isinstance(frame, F.Ping), frame
            assert time.monotonic() - heard < INTERVAL_S * 2
            heard = time.monotonic()
            pings += 1
            await client.send(F.Pong(id=frame.id))
        assert pings >= 5
        assert client.close_code is None
        await client.close()


async def test_socket_leaving_two_pings_unanswered_is_closed(settings: Settings, services: Services,
                                                             db: asyncpg.Pool) -> None:
    async with spec_node(settings, services, "spec-ping-dead", ping_interval_s=INTERVAL_S) as node:
        client = await Client.connect(node.ws_url, await make_user(db))
        pings = 0
        opened = time.monotonic()
        while True:  # never answer
            try:
                frame = await client.recv(timeout=INTERVAL_S * 10)
            except ConnectionError:
                break
            pings += isinstance(frame, F.Ping)
        assert 2 <= pings <= 3
        assert client.close_code is not None
        assert time.monotonic() - opened < INTERVAL_S * 6
