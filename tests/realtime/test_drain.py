"""Graceful drain: clients are told to go elsewhere with jitter, then closed; nothing new is accepted."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
import uvicorn

from amaro.node import NodeParts, build_app
from amaro.roles import uvicorn_config
from amaro.services import Services
from amaro.settings import Settings
from amaro_client import HandshakeError
from protocol import frames as F
from realtime.ws import HubConnection, SocketTransport
from tests.conftest import free_port, with_node
from tests.realtime.conftest import make_user
from tests.realtime.wsclient import Client


async def test_drain_tells_clients_to_reconnect_and_closes_them(settings: Settings, services: Services,
                                                                db: asyncpg.Pool) -> None:
    node_settings = with_node(settings, port=free_port(), ws_port=0, node_id="test-drain", drain_timeout_s=4.0)
    parts = await NodeParts.open(node_settings, services, uploads=False)
    server = uvicorn.Server(uvicorn_config(build_app(parts), node_settings))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)
    url = f"ws://127.0.0.1:{parts.ws_port}/ws"
    try:
        clients = [await Client.connect(url, await make_user(db)) for _ in range(3)]
        for c in clients:
            await c.subscribe(f"user:{c.user}")
        # The coalescing fast path is in use (one transport.write per flush).
        assert all(isinstance(conn.transport, SocketTransport) and isinstance(conn.transport.ws, HubConnection)
                   and conn.transport.ws.hub_transport is not None
                   for conn in parts.hub.hub.connections.values())
        started = time.monotonic()
        await parts.hub.drain()
        assert time.monotonic() - started < node_settings.node.drain_timeout_s
        for c in clients:
            drain = await c.expect(F.Drain)
            assert 0 <= drain.reconnect_after_ms <= 5000
            bye = await c.expect(F.Disconnect)
            assert bye.code == 4010 and bye.reconnect
            with pytest.raises(ConnectionError):
                await c.recv(timeout=5)
            assert c.close_code == 4010
        with pytest.raises(HandshakeError) as refused:  # refused before the upgrade, told to retry
            await Client.connect(url, await make_user(db))
        assert refused.value.status == 503
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
