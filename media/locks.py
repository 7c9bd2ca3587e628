"""One writer per upload across all nodes.

* ``UploadLock``: Redis ``SET NX PX`` with an owner token, renewed while the request streams,
  released by compare-and-delete (Lua, media/lua).
* ``KeepAlive``: renews the lock and the user's slot (limits.py) while a request runs.

Refusals never wait long: a client told 423 retries; a queued request would hold a socket and
memory doing nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import redis.asyncio as aioredis
import structlog

from media import keys
from media.errors import locked
from media.limits import SlotLease
from media.scripts import source

log = structlog.get_logger(__name__)


class UploadLock:
    def __init__(self, redis: aioredis.Redis, upload_id: str, ttl_s: float) -> None:
        self._redis = redis
        self._key = keys.upload_lock(upload_id)
        self._token = secrets.token_hex(16)
        self._ttl_ms = int(ttl_s * 1000)

    async def acquire(self) -> None:
        """Take the lock or raise the 423 a tus client retries."""
        if not await self._redis.set(self._key, self._token, nx=True, px=self._ttl_ms):
            raise locked()

    async def renew(self) -> bool:
        renewed = await self._redis.eval(source("renew_lock"), 1, self._key, self._token, self._ttl_ms)
        return bool(renewed)

    async def release(self) -> None:
        await self._redis.eval(source("release_lock"), 1, self._key, self._token)


class KeepAlive:
    """Renews an upload lock and a user slot every third of the lock's TTL while a request runs.

    Renewal is time-based, not progress-based: a phone on a thin uplink may need minutes for one
    part and must not lose its lock meanwhile. ``lost`` turns true if another writer took over
    (the lock expired during a pause); the writer then refuses to commit.
    """

    def __init__(self, lock: UploadLock, lease: SlotLease, ttl_s: float) -> None:
        self._lock, self._lease, self._every = lock, lease, ttl_s / 3
        self.lost = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                if not await self._lock.renew():
                    self.lost = True
                    return
                await self._lease.renew()
            except Exception as exc:  # a Redis blip: retry next round; the TTL leaves two more chances
                log.warning("upload_lock_renew_failed", error=repr(exc))

    async def __aenter__(self) -> KeepAlive:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
