"""A cancelled worker ends even when one of its loops swallows the cancellation.

redis-py can turn a cancel that races its own read timeout into ``redis.exceptions.TimeoutError``
(seen in the node's inbox loop); the worker's supervisor survives Redis errors, so before ``halt``
such a loop ran on forever and ``Worker.run`` (a test's ``await task``) never returned."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from nara.keys import NaraKeys
from nara.pipeline import Context
from nara.settings import NaraSettings
from nara.storage import LocalStore
from nara.tools import Tools
from nara.worker import Worker

from .sinks import RecordingSink


class SwallowingWorker(Worker):
    async def _gauges(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.sleep(0.2)
            except asyncio.CancelledError:
                raise RedisTimeoutError("Timeout reading from socket") from None


async def test_cancelled_run_returns_even_if_a_loop_swallows_the_cancel(
    redis_ns: tuple[Redis, NaraKeys], tools: Tools, tmp_path: Path
) -> None:
    redis, nk = redis_ns
    settings = NaraSettings(consumer="w-cancel", workdir=tmp_path / "work", keys=nk, block_ms=200,
                            reclaim_interval_s=0.2)
    worker = SwallowingWorker(settings, redis, Context(settings, tools, LocalStore(tmp_path / "s"), RecordingSink()))
    task = asyncio.create_task(worker.run(asyncio.Event()))
    await asyncio.sleep(0.5)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done, "Worker.run did not return after being cancelled"
