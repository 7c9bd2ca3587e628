"""HTTP pieces every role serves: request context middleware and health, readiness, metrics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amaro.infra.web import JSONResponse

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]

HTTP_REQUESTS = Counter("amaro_http_requests_total", "HTTP requests by route and status",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("amaro_http_request_seconds", "HTTP request latency by route", ["route"])


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


def health_routes(check: ReadinessCheck) -> list[Route]:
    """``/healthz`` (alive), ``/readyz`` (``check`` says every dependency is "ok"), ``/metrics``."""

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        checks = await check()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503,
                            headers={"Cache-Control": "no-store"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]


class ApiCors:
    """CORS for the browser app on ``prefix`` (the JSON API): allow-listed origins only, with
    preflights answered; other paths pass through untouched (``/uploads`` answers its own, with
    the tus headers)."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...], prefix: str = "/api/") -> None:
        from starlette.middleware.cors import CORSMiddleware

        self.app = app
        self.prefix = prefix
        self.cors = CORSMiddleware(
            app, allow_origins=list(origins), allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "X-Request-Id"],
            expose_headers=["ETag", "Retry-After", "X-Request-Id"], max_age=86400,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(self.prefix):
            await self.cors(scope, receive, send)
            return
        await self.app(scope, receive, send)
