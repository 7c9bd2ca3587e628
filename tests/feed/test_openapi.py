"""The OpenAPI document at /api/v1/openapi.json is the API this node serves: every route under
/api/v1 is in it, every operation in it is a route that answers, and the document is valid 3.1."""

from __future__ import annotations

import re

import httpx
from starlette.routing import Route

from amaro.services import Services
from amaro.settings import Settings
from tests.conftest import RunningNode, serve_node, with_node

PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def served(node: RunningNode) -> set[tuple[str, str]]:
    out = set()
    for route in node.app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/v1/") and route.path != "/api/v1/openapi.json":
            out |= {(route.path, m.lower()) for m in (route.methods or ()) if m != "HEAD"}
    return out


async def test_the_document_and_the_routes_are_the_same(running_node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=running_node.http_url, timeout=10) as http:
        response = await http.get("/api/v1/openapi.json")
        assert response.status_code == 200 and response.headers["etag"]
        doc = response.json()
        assert doc["openapi"] == "3.1.0" and doc["info"]["title"]
        documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
        assert documented == served(running_node)
        for path, method in sorted(documented):
            op = doc["paths"][path][method]
            assert op["summary"] and op["responses"] and op["operationId"]
            for name in re.findall(r"{(\w+)}", path):
                assert any(p["name"] == name and p["in"] == "path" for p in op["parameters"]), (path, name)
            # The route answers: without credentials a protected operation says 401, never 404/405.
            url = re.sub(r"{\w+}", PLACEHOLDER, path)
            answer = await http.request(method.upper(), url)
            assert answer.status_code not in (404, 405) or answer.headers.get("content-type", "").startswith(
                "application/json"), (method, path, answer.status_code, answer.text[:200])
            if op.get("security") == [{"bearer": []}]:
                assert answer.status_code == 401, (method, path, answer.status_code)
        ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
        assert len(ids) == len(set(ids))
        assert (await http.get("/api/v1/openapi.json", headers={"If-None-Match": response.headers["etag"]})
                ).status_code == 304


async def test_cors_preflight_for_allowed_origins_only(running_node: RunningNode) -> None:
    # The test node allows no origin; a preflight from anywhere gets no allowance.
    async with httpx.AsyncClient(base_url=running_node.http_url, timeout=10) as http:
        refused = await http.options("/api/v1/auth/login", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in refused.headers


async def test_cors_preflight_answers_an_allowed_origin(settings: Settings, services: Services) -> None:
    origin = "https://app.example.org"
    async with serve_node(with_node(settings, node_id="cors-node", allowed_origins=(origin,)), services) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            preflight = await http.options("/api/v1/auth/login", headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"})
            assert preflight.status_code == 200, preflight.text
            assert preflight.headers["access-control-allow-origin"] == origin
            assert "POST" in preflight.headers["access-control-allow-methods"]
            refused = await http.post("/api/v1/auth/login", json={}, headers={"Origin": origin})
            assert refused.headers["access-control-allow-origin"] == origin  # errors are readable too
