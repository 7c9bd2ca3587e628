"""Running the roles: open services, build the app, serve until told to stop, drain, close."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from types import FrameType

import structlog
import uvicorn
from prometheus_client import start_http_server

from realtime import looplag
from realtime.app import NodeParts, build_app
from realtime.config import Settings, env_bool, env_int, env_str
from realtime.cpus import background_cpus, lower_thread_priority, pin
from realtime.services import Services

log = structlog.get_logger(__name__)

Drain = Callable[[], Awaitable[object]]


class DrainingServer(uvicorn.Server):
    """uvicorn, except that the first SIGTERM/SIGINT drains the node (clients told to reconnect
    elsewhere, uploads commit what arrived, in-flight work finished) before the server stops; a
    second signal stops at once."""

    def __init__(self, config: uvicorn.Config, drain: Drain, drain_timeout_s: float) -> None:
        super().__init__(config)
        self._drain = drain
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
            await asyncio.wait_for(self._drain(), self._drain_timeout_s)
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


@contextlib.asynccontextmanager
async def _watching_loop() -> AsyncIterator[None]:
    """``amaro_event_loop_lag_seconds`` for as long as the server runs (looplag.py)."""
    task = asyncio.create_task(looplag.watch(), name="loop-lag")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def serve_hub(settings: Settings) -> int:
    """A hub node: sockets, the auth API and (unless ``AMARO_HUB_UPLOADS=0``) the upload path."""
    services = await Services.open(settings)
    try:
        parts = await NodeParts.open(settings, services, uploads=env_bool(os.environ, "AMARO_HUB_UPLOADS", True))
        server = DrainingServer(uvicorn_config(build_app(parts), settings), parts.drain, settings.drain_timeout_s)
        log.info("node_starting", role="hub", node=settings.node_id, host=settings.host, port=settings.port)
        async with _watching_loop():
            await server.serve()
    finally:
        await services.close()
    return 0


async def serve_ingest(settings: Settings) -> int:
    """An upload-only node, scaled apart from the hubs. On a machine it shares with hubs it keeps
    off their CPU (``AMARO_INGEST_CPUS``, auto: every CPU but the first; realtime/cpus.py)."""
    from media.app import build_ingest_app, drain_uploads

    cpus = background_cpus(env_str(os.environ, "AMARO_INGEST_CPUS", "auto"), name="AMARO_INGEST_CPUS")
    if cpus and pin(0, cpus):
        log.info("ingest_cpus", cpus=cpus)
    app = build_ingest_app(settings)

    async def drain() -> None:
        ctx = getattr(app.state, "media", None)
        if ctx is not None:
            await drain_uploads(ctx, settings.drain_timeout_s)

    server = DrainingServer(uvicorn_config(app, settings), drain, settings.drain_timeout_s)
    log.info("node_starting", role="ingest", node=settings.node_id, host=settings.host, port=settings.port)
    async with _watching_loop():
        await server.serve()
    return 0


async def serve_worker(settings: Settings) -> int:
    """A NARA-1r worker: jobs from the Redis Streams consumer group, originals decrypted from the
    media store, outputs stored back, events to the uploader through the hubs' fan-out."""
    from media.app import close_media, open_media
    from media.originals import NaraStore
    from nara.catalog import PgCatalog
    from nara.settings import NaraSettings
    from nara.worker import run_worker
    from realtime.events import EventSink

    nara_settings = NaraSettings.from_env()
    if nara_settings.limits.nice > 0:
        # A worker is bulk work through and through: its own reads, decryption and writes of
        # originals and outputs go to the disk and CPU after everything else (nice 19, idle I/O
        # class; realtime/cpus.py). Threads and children started from here inherit both.
        log.info("worker_priority_lowered", applied=lower_thread_priority())
    metrics_port = env_int(os.environ, "AMARO_WORKER_METRICS_PORT", 0)
    if metrics_port:
        # Workers serve no HTTP otherwise; Prometheus scrapes queue depth, job ages and encode speed here.
        start_http_server(metrics_port, addr=env_str(os.environ, "AMARO_WORKER_METRICS_ADDR", "127.0.0.1"))
    services = await Services.open(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        sink = EventSink.from_services(services)
        media = await open_media(services, events=sink)
        try:
            log.info("worker_starting", node=settings.node_id, concurrency=nara_settings.concurrency)
            await run_worker(nara_settings, services.redis, NaraStore(media.store, media.keyring), sink, stop,
                             catalog=PgCatalog(services.db))
        finally:
            await close_media(media)
    finally:
        await services.close()
    return 0


async def keys_main(settings: Settings, action: str) -> int:
    """``amaro keys rotate``: new originals use a new master key. ``amaro keys rewrap``: re-wrap
    every original's data key with the newest master key (headers only, data untouched)."""
    from media.rotation import rewrap_all, rotate_keys

    if action == "rotate":
        key_id = await rotate_keys(settings)
        log.info("media_key_rotated", key_id=key_id)
        print(key_id)
    else:
        count = await rewrap_all(settings)
        log.info("media_keys_rewrapped", objects=count)
        print(count)
    return 0
