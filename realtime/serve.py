"""Running the roles: open services, build the app, serve until told to stop, drain, close."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

import structlog
import uvicorn

from realtime.app import NodeParts, build_app
from realtime.config import Settings
from realtime.node import HubNode
from realtime.services import Services

log = structlog.get_logger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn, except that the first SIGTERM/SIGINT drains the hub (clients told to reconnect
    elsewhere, in-flight work finished) before the server stops; a second signal stops at once."""

    def __init__(self, config: uvicorn.Config, hub: HubNode, drain_timeout_s: float) -> None:
        super().__init__(config)
        self._hub = hub
        self._drain_timeout_s = drain_timeout_s
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_task is not None or self.should_exit:
            super().handle_exit(sig, frame)
            return
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self._begin_drain, sig, frame)

    def _begin_drain(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain_then_exit(sig, frame))

    async def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
        log.info("drain_started", signal=signal.Signals(sig).name)
        try:
            await asyncio.wait_for(self._hub.drain(), self._drain_timeout_s)
        except TimeoutError:
            log.warning("drain_deadline_passed", seconds=self._drain_timeout_s)
        except Exception:
            log.exception("drain_failed")
        super().handle_exit(sig, frame)


def uvicorn_config(app: object, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        loop="none",  # the loop is already running (uvloop, see cli.run_async)
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        # uvicorn's defaults accept 16 MiB messages and negotiate compression; our frames are
        # capped at AMARO_MAX_FRAME and compression would let a small message inflate hugely.
        ws_max_size=settings.max_frame,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ping_interval_s,
        ws_ping_timeout=settings.ping_interval_s,
        timeout_graceful_shutdown=max(1, int(settings.drain_timeout_s)),
        proxy_headers=True,
    )


async def serve_hub(settings: Settings, role: str = "hub") -> int:
    services = await Services.open(settings)
    try:
        parts = NodeParts.assemble(settings, services)
        app = build_app(parts)
        server = DrainingServer(uvicorn_config(app, settings), parts.hub, settings.drain_timeout_s)
        log.info("node_starting", role=role, node=settings.node_id, host=settings.host, port=settings.port)
        await server.serve()
    finally:
        await services.close()
    return 0


async def serve_worker(settings: Settings) -> int:
    log.error("worker_unavailable", reason="the NARA worker is not wired into this build yet")
    return 1


async def keys_main(settings: Settings, action: str) -> int:
    log.error("keys_unavailable", action=action, reason="media key management is not wired into this build yet")
    return 1
