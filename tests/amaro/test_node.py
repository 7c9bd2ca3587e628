"""Health, readiness, metrics and request ids on a real node."""

from __future__ import annotations

import asyncio

import httpx

from amaro.services import Services
from amaro.settings import Settings
from protocol import frames as F
from tests.conftest import RunningNode, serve_node, with_node
from tests.realtime.wsclient import Client


async def test_health_ready_and_metrics(running_node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=running_node.http_url) as http:
        assert (await http.get("/healthz")).text == "ok"
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "checks": {"redis": "ok", "postgres": "ok"}}
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert "amaro_http_requests_total" in metrics.text
        assert "amaro_redis_rtt_seconds" in metrics.text


async def test_request_id_is_echoed_or_generated(running_node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=running_node.http_url) as http:
        mine = await http.get("/healthz", headers={"x-request-id": "abc123"})
        assert mine.headers["x-request-id"] == "abc123"
        generated = await http.get("/healthz")
        assert len(generated.headers["x-request-id"]) == 32
        hostile = await http.get("/healthz", headers={"x-request-id": "x" * 500})
        assert hostile.headers["x-request-id"] != "x" * 500


async def test_unknown_route_is_404(running_node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=running_node.http_url) as http:
        assert (await http.get("/nope")).status_code == 404


async def test_readiness_turns_false_the_moment_drain_starts(settings: Settings, services: Services) -> None:
    """A balancer stops sending new sockets and requests to a draining node: ``/readyz`` answers
    503 from the first instant of the drain (the drain sets it before its first wait)."""
    async with serve_node(with_node(settings, node_id="test-node-draining"), services) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            assert (await http.get("/readyz")).status_code == 200
            client = await Client.connect(node.ws_url, "drain-watcher")
            draining = asyncio.create_task(node.parts.drain())
            await asyncio.sleep(0)  # the drain has begun, it has not finished
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json() == {"ready": False, "checks": {"redis": "ok", "postgres": "ok", "node": "draining"}}
            await client.expect(F.Drain)
            await draining
            assert (await http.get("/readyz")).status_code == 503
            assert (await http.get("/healthz")).status_code == 200  # alive all the same
            await client.close()
