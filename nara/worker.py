"""The NARA worker: jobs from a Redis Streams consumer group, at-least-once, idempotent outputs.

Delivery model:

* ``XREADGROUP`` hands a new job to one worker; the job is ``XACK``-ed (and deleted) only after
  its outputs are stored and its events emitted.
* A running job's idle time is refreshed by a heartbeat (``XCLAIM ... JUSTID``); a worker that
  dies stops refreshing, and after ``claim_idle_s`` another worker takes the job with
  ``XAUTOCLAIM``. The delivery count Redis keeps is the attempt number.
* A retryable failure releases the job with its idle time set so it becomes claimable after an
  exponential backoff. Past ``max_attempts``, or on a non-retryable failure, the job goes to the
  dead-letter stream with its reason, the uploader gets a "failed" event, and it is acknowledged.
* Output keys derive from the upload id and the stored plan, so a reclaimed job overwrites the
  same objects and never duplicates them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from nara import metrics
from nara.catalog import Catalog, NullCatalog
from nara.errors import NaraError
from nara.events import FAILED, EventSink, announce
from nara.job import Job
from nara.keys import DEFAULT, JOB_FIELD, NaraKeys
from nara.pipeline import Context, run_job
from nara.planner import Audience
from nara.settings import NaraSettings
from nara.storage import BoundedStore, MediaStore
from nara.tools import Tools, locate

DEDUPE_TTL_S = 7 * 24 * 3600


async def ensure_group(redis: Redis, nk: NaraKeys = DEFAULT) -> None:
    try:
        await redis.xgroup_create(nk.jobs, nk.group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _id_ms(msg_id: bytes) -> int:
    return int(msg_id.split(b"-", 1)[0])


class Worker:
    """One worker process's job loop. ``run`` returns after ``stop`` is set: no new jobs are taken,
    running ones get ``shutdown_grace_s`` to finish, then are cancelled (their ffmpeg process
    groups killed) and stay pending for another worker."""

    def __init__(self, settings: NaraSettings, redis: Redis, ctx: Context) -> None:
        self.settings = settings
        self.redis = redis
        self.ctx = ctx
        self.keys = settings.keys
        self.slots = asyncio.Semaphore(settings.concurrency)
        self.in_flight: dict[bytes, asyncio.Task[None]] = {}
        self.log = structlog.get_logger("nara.worker").bind(consumer=settings.consumer)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await ensure_group(self.redis, self.keys)
                break
            except (RedisError, OSError) as exc:
                self.log.warning("redis_unavailable", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
        self.log.info("worker_started", concurrency=self.settings.concurrency)
        # The loops watch ``halt``, set on stop *and* when ``run`` itself is cancelled: a loop whose
        # cancellation was swallowed (redis-py can turn a cancel that races its own read timeout
        # into a TimeoutError, which _supervise survives) still ends instead of hanging the gather.
        halt = asyncio.Event()
        loops = [
            asyncio.create_task(self._supervise(loop, halt), name=f"nara-{loop.__name__.strip('_')}")
            for loop in (self._reader, self._reclaimer, self._heartbeat, self._gauges)
        ]
        try:
            await stop.wait()
            halt.set()
            for task in loops:
                task.cancel()
            if self.in_flight:
                # A deploy lets running jobs finish for a while; what is left stays pending and
                # another worker reclaims it.
                await asyncio.wait(list(self.in_flight.values()), timeout=self.settings.shutdown_grace_s)
        finally:
            halt.set()
            for task in [*loops, *self.in_flight.values()]:
                task.cancel()
            await asyncio.gather(*loops, *self.in_flight.values(), return_exceptions=True)
            self.log.info("worker_stopped")

    async def _supervise(self, loop: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event) -> None:
        """Keep a loop alive across Redis outages (and a lost group after a Redis restart)."""
        while not stop.is_set():
            try:
                await loop(stop)
            except (RedisError, OSError) as exc:
                self.log.warning("redis_unavailable", loop=loop.__name__, error=repr(exc))
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    with contextlib.suppress(RedisError, OSError):
                        await ensure_group(self.redis, self.keys)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)

    def _spawn(self, msg_id: bytes, fields: dict[bytes, bytes], delivered: int) -> None:
        task = asyncio.create_task(self._handle(msg_id, fields, delivered), name=f"nara-job-{msg_id!r}")
        self.in_flight[msg_id] = task
        metrics.IN_FLIGHT.set(len(self.in_flight))

    async def _reader(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.slots.acquire()
            try:
                reply = await self.redis.xreadgroup(
                    self.keys.group, self.settings.consumer, {self.keys.jobs: ">"},
                    count=1, block=self.settings.block_ms,
                )
            except BaseException:
                self.slots.release()
                raise
            entries = _entries(reply)
            if not entries:
                self.slots.release()
                continue
            msg_id, fields = entries[0]
            self._spawn(msg_id, fields, 1)

    async def _reclaimer(self, stop: asyncio.Event) -> None:
        idle_ms = int(self.settings.claim_idle_s * 1000)
        cursor: bytes | str = "0-0"
        while not stop.is_set():
            await self.slots.acquire()
            try:
                reply = await self.redis.xautoclaim(
                    self.keys.jobs, self.keys.group, self.settings.consumer, idle_ms, cursor, count=1
                )
                cursor, claimed = reply[0], [m for m in reply[1] if m and m[1]]
                gone = [m[0] for m in reply[1] if m and not m[1]]
                if gone:  # Redis 6.2 reports entries deleted while pending this way
                    await self.redis.xack(self.keys.jobs, self.keys.group, *gone)
                if claimed and claimed[0][0] in self.in_flight:
                    claimed = []  # our own running job whose heartbeat lagged: keep running it
                if claimed:
                    msg_id, fields = claimed[0]
                    info = await self.redis.xpending_range(
                        self.keys.jobs, self.keys.group, msg_id, msg_id, 1
                    )
                    delivered = int(info[0]["times_delivered"]) if info else 2
                    metrics.RECLAIMED.inc()
                    self.log.info("reclaimed", msg_id=msg_id.decode(), delivered=delivered)
                    self._spawn(msg_id, fields, delivered)
                    continue
            except BaseException:
                self.slots.release()
                raise
            self.slots.release()
            cursor = "0-0"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.reclaim_interval_s)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        every = max(0.2, self.settings.claim_idle_s / 3)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
            if not self.in_flight:
                continue
            # Only ids still owned by us: never steal back a job another worker has reclaimed.
            owned = await self.redis.xpending_range(
                self.keys.jobs, self.keys.group, "-", "+", 1000, consumername=self.settings.consumer
            )
            ids: list[Any] = [e["message_id"] for e in owned if e["message_id"] in self.in_flight]
            if ids:
                await self.redis.xclaim(
                    self.keys.jobs, self.keys.group, self.settings.consumer, 0, ids, justid=True
                )

    async def _gauges(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(ResponseError):
                for group in await self.redis.xinfo_groups(self.keys.jobs):
                    if group.get("name") in (self.keys.group, self.keys.group.encode()):
                        metrics.QUEUE_DEPTH.set(float(group.get("lag") or 0))
                        metrics.PENDING.set(float(group.get("pending") or 0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5.0)

    async def _ack(self, msg_id: bytes) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.keys.jobs, self.keys.group, msg_id)
            pipe.xdel(self.keys.jobs, msg_id)
            await pipe.execute()

    async def _handle(self, msg_id: bytes, fields: dict[bytes, bytes], delivered: int) -> None:
        log = self.log.bind(msg_id=msg_id.decode(), attempt=delivered)
        job: Job | None = None
        try:
            metrics.JOB_AGE.observe(max(0.0, time.time() - _id_ms(msg_id) / 1000))
            raw: Any = msgpack.unpackb(fields.get(JOB_FIELD.encode(), b""), raw=False)
            job = Job.from_map(raw if isinstance(raw, dict) else {})
            log = log.bind(job_id=job.job_id)
            log.info("job_started")
            await run_job(job, self.ctx)
            await self._ack(msg_id)
            log.info("job_done")
        except NaraError as exc:
            await self._failed(msg_id, fields, job, exc, delivered, log)
        except (ValueError, msgpack.UnpackException) as exc:
            await self._failed(msg_id, fields, job, _internal(exc, retryable=False), delivered, log)
        except Exception as exc:
            log.exception("job_crashed")
            await self._failed(msg_id, fields, job, _internal(exc, retryable=True), delivered, log)
        finally:
            self.in_flight.pop(msg_id, None)
            metrics.IN_FLIGHT.set(len(self.in_flight))
            self.slots.release()

    async def _failed(self, msg_id: bytes, fields: dict[bytes, bytes], job: Job | None, exc: NaraError,
                      delivered: int, log: Any) -> None:
        if exc.retryable and delivered < self.settings.max_attempts:
            backoff = self.settings.backoff(delivered)
            idle_ms = max(0, int((self.settings.claim_idle_s - backoff) * 1000))
            metrics.RETRIES.labels(exc.reason).inc()
            log.warning("job_retry", reason=exc.reason, detail=exc.detail, backoff_s=backoff)
            if job is not None:
                await self.redis.set(self.keys.last_error(job.job_id), exc.reason, ex=DEDUPE_TTL_S)
            # Keep the message pending (no new delivery) but make it claimable after the backoff.
            await self.redis.xclaim(
                self.keys.jobs, self.keys.group, self.settings.consumer, 0, [msg_id], idle=idle_ms, justid=True
            )
            return
        metrics.FAILURES.labels(exc.reason).inc()
        log.warning("job_failed", reason=exc.reason, detail=exc.detail)
        if job is not None:
            data: dict[str, object] = {"reason": exc.reason, "detail": exc.detail[:300]}
            # Catalog first (media row failed, post failed), then tell the uploader.
            await self.ctx.catalog.record(job, FAILED, data)
            await announce(self.ctx.sink, job.user_id, job.upload_id, job.post_id, FAILED, data)
        await self.redis.xadd(self.keys.dead, {
            "job": fields.get(JOB_FIELD.encode(), b""), "msg_id": msg_id, "reason": exc.reason,
            "detail": exc.detail[:500], "attempts": delivered, "consumer": self.settings.consumer,
        }, maxlen=100_000, approximate=True)
        await self._ack(msg_id)


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XREADGROUP replies come as a list (RESP2) or a dict (RESP3) of stream -> entries."""
    streams = reply.values() if isinstance(reply, dict) else [msgs for _, msgs in (reply or [])]
    return [(msg_id, fields) for msgs in streams for msg_id, fields in msgs if fields]


def _internal(exc: BaseException, *, retryable: bool) -> NaraError:
    err = NaraError(f"{type(exc).__name__}: {exc}")
    err.retryable = retryable
    return err


async def run_worker(settings: NaraSettings, redis: Redis, store: MediaStore, sink: EventSink,
                     stop: asyncio.Event, *, tools: Tools | None = None,
                     audience: Audience | None = None, catalog: Catalog | None = None) -> None:
    """Run one worker until ``stop`` is set. The composition root (``amaro worker`` / ``amaro dev``)
    owns the Redis client, the store, the sink and the catalog (where media rows are written
    before each event; none: events only), and runs this outside the hub's event loop."""
    ctx = Context(settings, tools or locate(settings.ffmpeg, settings.ffprobe), BoundedStore(store),
                  sink, audience or Audience(), catalog or NullCatalog())
    await Worker(settings, redis, ctx).run(stop)
