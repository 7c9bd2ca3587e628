"""Health, readiness, metrics and request ids on a real node."""

from __future__ import annotations

import httpx

from tests.conftest import RunningNode


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
