"""The ingest role's application: ``/uploads`` plus ``/healthz``, ``/readyz`` and ``/metrics``,
scaled apart from hub nodes. Its lifespan opens the services and runs the background sweeps
itself; progress and failure events reach the uploader's socket through the hubs' fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from amaro.http import RequestContext, health_routes
from amaro.parts import close_media, event_sink, open_media, token_signer
from amaro.services import Services
from amaro.settings import Settings
from media.app import build_uploads_app, drain_uploads
from media.cleanup import run_cleanup, run_key_rotation
from media.events import MediaEvents
from media.runtime import MediaContext


class _Deferred:
    """An ASGI app whose target exists only once the lifespan opened the services."""

    def __init__(self) -> None:
        self.target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.target is None:
            response = PlainTextResponse("starting", status_code=503, headers={"Retry-After": "1"})
            await response(scope, receive, send)
            return
        await self.target(scope, receive, send)


def build_ingest_app(settings: Settings, *, events: MediaEvents | None = None, ensure_bucket: bool = False,
                     background: bool = True) -> Starlette:
    """``events``: where media events go (default: stored and fanned out like the hubs' own).
    ``background`` runs the expiry/hand-off sweep and scheduled key rotation."""
    uploads = _Deferred()
    opened: list[Services] = []
    contexts: list[MediaContext] = []

    async def check() -> dict[str, str]:
        checks = await opened[0].check() if opened else {"services": "starting"}
        if getattr(app.state, "draining", False):
            checks["node"] = "draining"
        return checks

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        s = settings.services
        services = await Services.open(s.redis_url, s.database_url, pool_min=s.db_pool_min, pool_max=s.db_pool_max)
        opened.append(services)
        sink = events if events is not None else event_sink(settings, services.redis, services.db)
        ctx = await open_media(settings, services.redis, services.db, events=sink, tokens=token_signer(settings),
                               ensure_bucket=ensure_bucket)
        contexts.append(ctx)
        uploads.target = build_uploads_app(ctx)
        tasks = [asyncio.create_task(run_cleanup(ctx)), asyncio.create_task(run_key_rotation(ctx))] \
            if background else []
        try:
            yield
        finally:
            await drain_uploads(ctx, settings.node.drain_timeout_s)
            uploads.target = None
            opened.clear()
            contexts.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await close_media(ctx)
            await services.close()

    app = Starlette(routes=[*health_routes(check), Mount("/uploads", app=uploads)], lifespan=lifespan)
    app.add_middleware(RequestContext)
    app.state.media_contexts = contexts  # drain (roles.py) reaches the live context through this
    return app


async def drain_ingest(app: Starlette, timeout_s: float) -> None:
    app.state.draining = True  # /readyz answers 503 from now on
    for ctx in list(app.state.media_contexts):
        await drain_uploads(ctx, timeout_s)
