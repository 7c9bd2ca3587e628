"""A hub node, assembled: the HTTP application (health, readiness, metrics, auth, uploads,
playback) and the hub with its socket listener, built from open services.

``NodeParts.open`` takes already-open services, so a node is a plain object built from its parts
(the CLI and the tests build one the same way); the HTTP lifespan only starts and stops the parts'
background work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from amaro.http import RequestContext, health_routes
from amaro.infra.connect import open_redis
from amaro.parts import close_media, open_media, token_signer, url_signer
from amaro.services import Services
from amaro.settings import Settings
from feed.access import Access
from feed.accounts import Accounts
from feed.api import AttemptLimits, auth_routes
from feed.passwords import PasswordHasher
from feed.tokens import TokenSigner
from media.app import drain_uploads, upload_routes
from media.cleanup import run_cleanup, run_key_rotation
from media.playback import playback_routes
from media.runtime import MediaContext
from realtime.node import HubNode


@dataclass
class NodeParts:
    """Everything a hub node is made of."""

    settings: Settings
    services: Services
    signer: TokenSigner
    accounts: Accounts
    access: Access
    hub_redis: aioredis.Redis
    hub: HubNode
    media: MediaContext | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, settings: Settings, services: Services, *, uploads: bool | None = None) -> NodeParts:
        """``uploads``: serve ``/uploads/`` here (default: ``settings.node.hub_uploads``)."""
        signer = token_signer(settings)
        auth = settings.auth
        accounts = Accounts(services.db, signer, PasswordHasher(auth.password_memory_kib, auth.password_iterations),
                            auth.refresh_ttl_s)
        access = Access(services.db)
        # The hub's own pool, sized for its hot paths and waiting when exhausted.
        hub_redis = open_redis(settings.services.redis_url, max_connections=settings.hub.redis_connections)
        hub = HubNode(settings.hub, redis=hub_redis, db=services.db, access=access, tokens=signer)
        media = None
        if settings.node.hub_uploads if uploads is None else uploads:
            media = await open_media(settings, services.redis, services.db, events=hub.events, tokens=signer)
        return cls(settings, services, signer, accounts, access, hub_redis, hub, media)

    def routes(self) -> list[BaseRoute]:
        auth = self.settings.auth
        routes: list[BaseRoute] = [
            *health_routes(self.services.check),
            *auth_routes(self.accounts, AttemptLimits(self.hub.limits, auth.attempts_per_address,
                                                      auth.attempts_per_username)),
        ]
        if self.media is not None:
            routes += [*upload_routes(self.media), *playback_routes(self.media, url_signer(self.settings), self.access)]
        return routes

    @property
    def ws_port(self) -> int:
        return self.hub.sockets.port

    async def start(self) -> None:
        """Listen for sockets and start the background work (the HTTP server is the caller's)."""
        node = self.settings.node
        await self.hub.start(node.host, node.ws_port)
        if self.media is not None:
            self._tasks = [asyncio.create_task(run_cleanup(self.media), name="media-cleanup"),
                           asyncio.create_task(run_key_rotation(self.media), name="media-key-rotation")]

    async def drain(self) -> None:
        """Tell sockets to reconnect elsewhere and let uploads commit what arrived, together."""
        if self.media is None:
            await self.hub.drain()
            return
        await asyncio.gather(self.hub.drain(), drain_uploads(self.media, self.settings.node.drain_timeout_s))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.hub.stop()
        await self.hub_redis.aclose(close_connection_pool=True)
        if self.media is not None:
            await close_media(self.media)


def build_app(parts: NodeParts) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await parts.start()
        try:
            yield
        finally:
            await parts.drain()
            await parts.stop()

    app = Starlette(routes=parts.routes(), lifespan=lifespan)
    app.add_middleware(RequestContext)
    return app
