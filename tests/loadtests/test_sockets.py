"""The load generator's socket answers the hub's protocol pings, so a benchmark's idle sockets
stay open however long a run lasts (a socket that leaves two pings unanswered is closed)."""

from __future__ import annotations

import asyncio

import asyncpg

from amaro.services import Services
from amaro.settings import Settings
from loadtests.sockets import Frame, Socket
from tests.conformance.conftest import spec_node
from tests.realtime.conftest import make_user
from tests.realtime.wsclient import token_for

INTERVAL_S = 0.3


async def test_an_idle_generator_socket_answers_pings_and_stays_open(settings: Settings, services: Services,
                                                                     db: asyncpg.Pool) -> None:
    async with spec_node(settings, services, "loadtest-socket-ping", ping_interval_s=INTERVAL_S) as node:
        seen: list[Frame] = []
        sock = await Socket.open(node.ws_url, token_for(await make_user(db)), on_frame=lambda f, _: seen.append(f))
        await asyncio.sleep(INTERVAL_S * 8)  # silent on our side: only the answers to pings go out
        assert sock.is_open
        assert (await sock.ask({"t": "ping"}))["t"] == "pong"
        assert not [f for f in seen if f.get("t") in ("ping", "disconnect")]  # pings never reach the tally
        await sock.close()
