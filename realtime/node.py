"""HubNode: the hub role's long-lived state and tasks, and the routes it serves."""

from __future__ import annotations

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from feed.tokens import TokenSigner
from realtime.config import Settings
from realtime.services import Services
from realtime.ws import serve_socket


class HubNode:
    def __init__(self, settings: Settings, services: Services, signer: TokenSigner) -> None:
        self.settings = settings
        self.services = services
        self.signer = signer
        self.draining = False

    def routes(self) -> list[BaseRoute]:
        async def endpoint(ws: WebSocket) -> None:
            await serve_socket(ws, self.settings, self.signer)

        return [WebSocketRoute("/ws", endpoint)]

    async def start(self) -> None:
        """Start background tasks (fan-out readers, presence heartbeats)."""

    async def drain(self) -> None:
        """Stop accepting sockets and tell clients to reconnect elsewhere."""
        self.draining = True

    async def stop(self) -> None:
        """Cancel every task this node owns."""
