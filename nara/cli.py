"""``python -m nara``: one standalone worker (local-directory store, events to the log).

The platform's composition root (``amaro worker`` / ``amaro dev``) calls
:func:`nara.worker.run_worker` with the real store and sink instead; this entry point exists for
operators and for the crash tests, which SIGKILL a real worker process.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from redis.asyncio import Redis

from nara.events import LogSink
from nara.settings import NaraSettings
from nara.storage import LocalStore
from nara.worker import run_worker


async def _main() -> None:
    settings = NaraSettings.from_env()
    redis = Redis.from_url(os.environ.get("AMARO_REDIS_URL", "redis://127.0.0.1:6379/0"))
    store = LocalStore(Path(os.environ.get("AMARO_NARA_STORE_DIR", ".amaro/objects")))
    port = os.environ.get("AMARO_NARA_METRICS_PORT")
    if port:
        from prometheus_client import start_http_server

        start_http_server(int(port), addr=os.environ.get("AMARO_NARA_METRICS_ADDR", "127.0.0.1"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_worker(settings, redis, store, LogSink(), stop)
    finally:
        await redis.aclose()


def main() -> None:
    asyncio.run(_main())
