"""Composition of a node's HTTP/WebSocket application: health, readiness, metrics, auth, the hub.

``build_app`` takes already-open services, so an app is a plain object built from its parts; the
lifespan only starts and stops the parts' background tasks.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feed.accounts import Accounts
from feed.api import AttemptLimits, JSONResponse, auth_routes
from feed.passwords import PasswordHasher
from feed.tokens import TokenSigner
from realtime.config import Settings
from realtime.limits import UserLimits
from realtime.node import HubNode
from realtime.services import Services

HTTP_REQUESTS = Counter("amaro_http_requests_total", "HTTP requests by route and status",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("amaro_http_request_seconds", "HTTP request latency by route", ["route"])


def make_signer(settings: Settings) -> TokenSigner:
    return TokenSigner(settings.token_secret.encode(),
                       tuple(s.encode() for s in settings.token_previous_secrets),
                       ttl_s=settings.access_ttl_s)


class RequestContext:
    """Pure ASGI middleware: a request id per HTTP request (echoed as ``X-Request-Id``), bound to
    every log line of that request, plus request metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isascii() else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if scope["type"] == "websocket":
            try:
                await self.app(scope, receive, send)
            finally:
                structlog.contextvars.unbind_contextvars("request_id")
            return
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(scope.get("method", ""), name, str(status)).inc()
            HTTP_LATENCY.labels(name).observe(time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id")


@dataclass
class NodeParts:
    """Everything a hub node's app is made of; the CLI and the tests build one."""

    settings: Settings
    services: Services
    signer: TokenSigner
    accounts: Accounts
    hub: HubNode

    @classmethod
    def assemble(cls, settings: Settings, services: Services) -> NodeParts:
        signer = make_signer(settings)
        hasher = PasswordHasher(settings.password_memory_kib, settings.password_iterations)
        accounts = Accounts(services.db, signer, hasher, settings.refresh_ttl_s)
        hub = HubNode(settings, services, signer)
        return cls(settings, services, signer, accounts, hub)


def health_routes(services: Services) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        checks = await services.check()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503,
                            headers={"Cache-Control": "no-store"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]


def build_app(parts: NodeParts, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await parts.hub.start()
        try:
            yield
        finally:
            await parts.hub.drain()
            await parts.hub.stop()

    routes: list[BaseRoute] = [
        *health_routes(parts.services),
        *auth_routes(parts.accounts, AttemptLimits(UserLimits(parts.services.redis),
                                                   parts.settings.auth_attempts_per_address,
                                                   parts.settings.auth_attempts_per_username)),
        *parts.hub.routes(),
        *extra_routes,
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(RequestContext)
    return app
