"""Running the roles: open services, build the app, serve until told to stop, drain, close."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from types import FrameType

import structlog
import uvicorn
from prometheus_client import start_http_server

from amaro import looplag
from amaro.infra.connect import open_pool
from amaro.infra.cpus import background_cpus, lower_thread_priority, pin
from amaro.node import NodeParts, build_app
from amaro.parts import JOB_EVENT_TIMEOUT_S, close_media, event_sink, open_media, token_signer
from amaro.services import Services
from amaro.settings import Settings

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
    node = settings.node
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=node.host,
        port=node.port,
        loop="none",  # the loop is already running (uvloop, see cli.run_async)
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        ws="none",  # sockets have a listener of their own (realtime/ws.py)
        timeout_graceful_shutdown=max(1, int(node.drain_timeout_s)),
        proxy_headers=True,
    )


async def open_services(settings: Settings) -> Services:
    s = settings.services
    return await Services.open(s.redis_url, s.database_url, pool_min=s.db_pool_min, pool_max=s.db_pool_max)


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
    services = await open_services(settings)
    try:
        parts = await NodeParts.open(settings, services)
        node = settings.node
        server = DrainingServer(uvicorn_config(build_app(parts), settings), parts.drain, node.drain_timeout_s)
        log.info("node_starting", role="hub", node=node.node_id, host=node.host, port=node.port,
                 ws_port=node.ws_port)
        async with _watching_loop():
            await server.serve()
    finally:
        await services.close()
    return 0


async def serve_ingest(settings: Settings) -> int:
    """An upload-only node, scaled apart from the hubs. On a machine it shares with hubs it keeps
    off their CPU (``AMARO_INGEST_CPUS``, auto: every CPU but the first; amaro/infra/cpus.py)."""
    from amaro.ingest import build_ingest_app, drain_ingest

    cpus = background_cpus(settings.ingest.cpus, name="AMARO_INGEST_CPUS")
    if cpus and pin(0, cpus):
        log.info("ingest_cpus", cpus=cpus)
    app = build_ingest_app(settings)
    node = settings.node

    async def drain() -> None:
        await drain_ingest(app, node.drain_timeout_s)

    server = DrainingServer(uvicorn_config(app, settings), drain, node.drain_timeout_s)
    log.info("node_starting", role="ingest", node=node.node_id, host=node.host, port=node.port)
    async with _watching_loop():
        await server.serve()
    return 0


async def serve_worker(settings: Settings) -> int:
    """A NARA-1r worker: jobs from the Redis Streams consumer group, originals decrypted from the
    media store, outputs stored back, events to the uploader through the hubs' fan-out."""
    from feed.posts import PostStates
    from media.worker_store import WorkerStore
    from nara.catalog import PgCatalog
    from nara.worker import run_worker

    nara = settings.nara
    if nara.limits.nice > 0:
        # A worker is bulk work through and through: its own reads, decryption and writes of
        # originals and outputs go to the disk and CPU after everything else (nice 19, idle I/O
        # class; amaro/infra/cpus.py). Threads and children started from here inherit both.
        log.info("worker_priority_lowered", applied=lower_thread_priority())
    if settings.worker.metrics_port:
        # Workers serve no HTTP otherwise; Prometheus scrapes queue depth, job ages and encode speed here.
        start_http_server(settings.worker.metrics_port, addr=settings.worker.metrics_addr)
    services = await open_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        sink = event_sink(settings, services.redis, services.db, timeout_s=JOB_EVENT_TIMEOUT_S)
        media = await open_media(settings, services.redis, services.db, events=sink, tokens=token_signer(settings))
        try:
            log.info("worker_starting", node=settings.node.node_id, concurrency=nara.concurrency)
            await run_worker(nara, services.redis, WorkerStore(media.store, media.keyring), sink, stop,
                             catalog=PgCatalog(services.db, PostStates()))
        finally:
            await close_media(media)
    finally:
        await services.close()
    return 0


async def migrate_main(settings: Settings) -> int:
    import asyncpg

    from amaro.migrations import migrate

    conn = await asyncpg.connect(settings.services.database_url)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    log.info("migrations_done", applied=len(applied))
    return 0


async def keys_main(settings: Settings, action: str) -> int:
    """``amaro keys rotate``: new originals use a new master key. ``amaro keys rewrap``: re-wrap
    every original's data key with the newest master key (headers only, data untouched)."""
    from media.app import close_store, open_store
    from media.keyring import Keyring
    from media.rotation import rewrap_objects, rotate_keys

    if action == "rotate":
        key_id = await rotate_keys(settings.media)
        log.info("media_key_rotated", key_id=key_id)
        print(key_id)
        return 0
    keyring = await asyncio.to_thread(Keyring.load, settings.media)
    db = await open_pool(settings.services.database_url)
    store = await open_store(settings.media)
    try:
        count = await rewrap_objects(db, store, keyring)
    finally:
        await close_store(store)
        await db.close()
    log.info("media_keys_rewrapped", objects=count)
    print(count)
    return 0
