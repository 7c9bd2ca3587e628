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

from amaro.http import ApiCors, RequestContext, health_routes
from amaro.infra.connect import listen_connection, open_redis
from amaro.parts import close_media, feed_api, open_media, openapi_route, token_signer, url_signer
from amaro.services import Services
from amaro.settings import Settings
from amaro.web import web_routes
from feed.access import Access
from feed.accounts import Accounts
from feed.api import AttemptLimits, auth_endpoints
from feed.app import FeedApi
from feed.cache import Invalidations
from feed.passwords import PasswordHasher
from feed.tokens import TokenSigner
from feed.warming import Activity, Warmer, run_warming
from feed.web import Endpoint
from media.app import drain_uploads, upload_routes
from media.cleanup import run_cleanup, run_key_rotation
from media.playback import playback_openapi, playback_routes
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
    media: MediaContext
    feed: FeedApi
    invalidations: Invalidations
    activity: Activity
    warmer: Warmer
    serve_uploads: bool = True
    draining: bool = False
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
        # The media context also serves playback and the media side of deleted posts: a node that
        # takes no uploads still has one.
        media = await open_media(settings, services.redis, services.db, events=hub.events, tokens=signer)
        feed = feed_api(settings, services, hub, media, signer)
        hub.hub.reaction_observer = feed.social.reactions  # reaction.created, reaction totals' cache
        activity = Activity(services.redis)
        hub.hub.arrivals = activity  # when people usually arrive: warming ahead of them
        warmer = Warmer(services.redis, feed.social.timelines, budget=settings.feed.warm_budget,
                        max_load=settings.feed.warm_max_load)
        serve_uploads = settings.node.hub_uploads if uploads is None else uploads
        return cls(settings, services, signer, accounts, access, hub_redis, hub, media, feed,
                   Invalidations(services.redis, feed.caches.all()), activity, warmer, serve_uploads)

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint of ``/api/v1`` this node serves, in the API's own terms (OpenAPI)."""
        auth = self.settings.auth
        limits = AttemptLimits(self.hub.limits, auth.attempts_per_address, auth.attempts_per_username)
        return [*auth_endpoints(self.accounts, limits), *self.feed.endpoints()]

    def routes(self) -> list[BaseRoute]:
        endpoints = self.endpoints()
        routes: list[BaseRoute] = [
            *health_routes(self.readiness),
            *(e.route(self.signer) for e in endpoints),
            openapi_route(endpoints, playback_openapi()),
            *playback_routes(self.media, url_signer(self.settings), self.access),
        ]
        if self.serve_uploads:
            routes += upload_routes(self.media)
        node = self.settings.node
        # Last: the web app's catch-all file route must not shadow the API, uploads or media.
        routes += web_routes(node.web_dir, node.public_ws_urls, self.settings.playback.url_base,
                             lambda: self.ws_port)
        return routes

    @property
    def ws_port(self) -> int:
        return self.hub.sockets.port

    async def start(self) -> None:
        """Listen for sockets and start the background work (the HTTP server is the caller's)."""
        node = self.settings.node
        await self.hub.start(node.host, node.ws_port)
        self.invalidations.start()
        database_url = self.settings.services.database_url
        # Publications in other processes (NARA-1r's) and graph changes reach the hubs as
        # notifications, on a connection of the node's own (feed/announce.py).
        self.feed.social.start(lambda: listen_connection(database_url))
        self._tasks = [asyncio.create_task(run_warming(self.activity, self.warmer,
                                                       interval_s=self.settings.feed.warm_interval_s),
                                           name="feed-warming")]
        if self.serve_uploads:
            self._tasks += [asyncio.create_task(run_cleanup(self.media), name="media-cleanup"),
                            asyncio.create_task(run_key_rotation(self.media), name="media-key-rotation")]

    async def readiness(self) -> dict[str, str]:
        """``/readyz``: the services answer and the node is not draining (a balancer stops sending
        it new sockets and requests the moment drain starts)."""
        checks = await self.services.check()
        if self.draining:
            checks["node"] = "draining"
        return checks

    async def drain(self) -> None:
        """Tell sockets to reconnect elsewhere and let uploads commit what arrived, together."""
        self.draining = True
        if not self.serve_uploads:
            await self.hub.drain()
            return
        await asyncio.gather(self.hub.drain(), drain_uploads(self.media, self.settings.node.drain_timeout_s))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.feed.social.stop()
        await self.invalidations.stop()
        await self.hub.stop()
        await self.hub_redis.aclose(close_connection_pool=True)
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
    app.add_middleware(ApiCors, origins=parts.settings.node.allowed_origins)
    app.add_middleware(RequestContext)
    return app
