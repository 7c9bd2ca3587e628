"""Composition of the upload path: the tus app for a hub to mount, and the standalone ingest role.

Hub node (services already open)::

    ctx = await open_media(services, events=hub_events)
    routes = [..., *upload_routes(ctx)]          # Mount("/uploads", build_uploads_app(ctx))
    tasks: run_cleanup(ctx), run_key_rotation(ctx)   (media.cleanup), then close_media(ctx)

Ingest role: ``build_ingest_app(settings)`` is a complete Starlette app (``/uploads``, ``/healthz``)
whose lifespan opens the services and runs the background tasks itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from feed.tokens import signer_for
from media.backends import close_store, open_store
from media.cleanup import run_cleanup, run_key_rotation
from media.config import MediaSettings
from media.context import MediaContext
from media.cors import CORSMiddleware
from media.events import MediaEvents, NoEvents
from media.keyring import Keyring
from media.tus import TusApp
from realtime.config import Settings
from realtime.events import EventSink
from realtime.http import RequestContext, health_routes
from realtime.services import Services


async def open_media(services: Services, media: MediaSettings | None = None, *,
                     events: MediaEvents | None = None, ensure_bucket: bool = False) -> MediaContext:
    """Open the store and keyring and return the context every media function takes."""
    settings = services.settings
    media = media or MediaSettings.from_env(data_dir=settings.data_dir)
    keyring = await asyncio.to_thread(Keyring.load, media)
    store = await open_store(media, ensure_bucket=ensure_bucket)
    tokens = signer_for(settings)
    return MediaContext(media=media, redis=services.redis, db=services.db, store=store, keyring=keyring,
                        tokens=tokens, events=events or NoEvents(), allowed_origins=settings.allowed_origins)


async def close_media(ctx: MediaContext) -> None:
    await close_store(ctx.store)


async def drain_uploads(ctx: MediaContext, timeout_s: float = 10.0) -> bool:
    """Stop taking upload bytes on this node: streaming requests commit what arrived and answer 503
    (clients resume on another node from HEAD's offset); new POST/PATCH get 503. Returns True once
    no upload request runs, False if ``timeout_s`` passed first. Call it before the server stops."""
    ctx.draining.set()
    return await ctx.node_limits.idle(timeout_s)


def build_uploads_app(ctx: MediaContext) -> ASGIApp:
    """The tus endpoint with CORS; mount it at ``/uploads``."""
    return CORSMiddleware(TusApp(ctx), ctx.allowed_origins)


def upload_routes(ctx: MediaContext) -> list[BaseRoute]:
    return [Mount("/uploads", app=build_uploads_app(ctx))]


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


def build_ingest_app(settings: Settings, media: MediaSettings | None = None, *,
                     events: MediaEvents | None = None, ensure_bucket: bool = False,
                     background: bool = True) -> Starlette:
    """The ingest role: ``/uploads`` plus ``/healthz``, ``/readyz`` and ``/metrics``; scaled apart
    from hub nodes. ``background`` runs the expiry/hand-off sweep and scheduled key rotation."""
    uploads = _Deferred()

    opened: list[Services] = []

    async def check() -> dict[str, str]:
        return await opened[0].check() if opened else {"services": "starting"}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await Services.open(settings)
        opened.append(services)
        # Progress and failure events reach the uploader's socket through the hubs' fan-out.
        sink = events if events is not None else EventSink.from_services(services)
        ctx = await open_media(services, media, events=sink, ensure_bucket=ensure_bucket)
        uploads.target = build_uploads_app(ctx)
        app.state.media = ctx
        tasks = [asyncio.create_task(run_cleanup(ctx)), asyncio.create_task(run_key_rotation(ctx))] \
            if background else []
        try:
            yield
        finally:
            await drain_uploads(ctx, settings.drain_timeout_s)
            uploads.target = None
            opened.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await close_media(ctx)
            await services.close()

    app = Starlette(routes=[*health_routes(check), Mount("/uploads", app=uploads)], lifespan=lifespan)
    app.add_middleware(RequestContext)
    return app
