"""Composition of a node's HTTP/WebSocket application: health, readiness, metrics, auth, the hub.

``build_app`` takes already-open services, so an app is a plain object built from its parts; the
lifespan only starts and stops the parts' background tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from feed.accounts import Accounts
from feed.api import AttemptLimits, auth_routes
from feed.passwords import PasswordHasher
from feed.tokens import TokenSigner, signer_for
from media.app import close_media, drain_uploads, open_media, upload_routes
from media.cleanup import run_cleanup, run_key_rotation
from media.context import MediaContext
from media.playback import playback_routes
from realtime.config import Settings
from realtime.http import RequestContext, health_routes
from realtime.limits import UserLimits
from realtime.node import HubNode
from realtime.services import Services


@dataclass
class NodeParts:
    """Everything a node's app is made of; the CLI and the tests build one with ``open``."""

    settings: Settings
    services: Services
    signer: TokenSigner
    accounts: Accounts
    hub: HubNode
    media: MediaContext | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, settings: Settings, services: Services, *, uploads: bool = True) -> NodeParts:
        signer = signer_for(settings)
        hasher = PasswordHasher(settings.password_memory_kib, settings.password_iterations)
        accounts = Accounts(services.db, signer, hasher, settings.refresh_ttl_s)
        hub = HubNode(settings, services, signer)
        media = await open_media(services, events=hub.events) if uploads else None
        return cls(settings, services, signer, accounts, hub, media)

    def routes(self) -> list[BaseRoute]:
        return [
            *health_routes(self.services.check),
            *auth_routes(self.accounts, AttemptLimits(UserLimits(self.services.redis),
                                                      self.settings.auth_attempts_per_address,
                                                      self.settings.auth_attempts_per_username)),
            *self.hub.routes(),
            *(upload_routes(self.media) if self.media is not None else ()),
            *(playback_routes(self.media, self.settings) if self.media is not None else ()),
        ]

    async def start(self) -> None:
        await self.hub.start()
        if self.media is not None:
            self._tasks = [asyncio.create_task(run_cleanup(self.media), name="media-cleanup"),
                           asyncio.create_task(run_key_rotation(self.media), name="media-key-rotation")]

    async def drain(self) -> None:
        """Tell sockets to reconnect elsewhere and let uploads commit what arrived, together."""
        if self.media is None:
            await self.hub.drain()
            return
        await asyncio.gather(self.hub.drain(), drain_uploads(self.media, self.settings.drain_timeout_s))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.hub.stop()
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
