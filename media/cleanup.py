"""Background upkeep owned by the ingest role: expiry, stuck hand-offs and scheduled key rotation.

Each loop runs until cancelled, sleeps between rounds, and logs (never raises) a failed round so
one bad upload or a store hiccup does not stop the sweeping.
"""

from __future__ import annotations

import asyncio

import structlog

from media import uploads
from media.errors import MediaError
from media.handoff import finish
from media.ingest import discard
from media.locks import UploadLock
from media.runtime import MediaContext
from media.uploads import UploadState

log = structlog.get_logger(__name__)
HANDOFF_GRACE_S = 30.0


async def sweep_once(ctx: MediaContext) -> dict[str, int]:
    """One round: expire unfinished uploads past ``expires_at`` (aborting their multipart parts and
    staged tails), and finish hand-offs a crashed node left at ``complete``."""
    expired = handed_off = 0
    for upload in await uploads.due_for_expiry(ctx.db):
        lock = UploadLock(ctx.redis, upload.id, ctx.media.lock_ttl_s)
        try:
            await lock.acquire()
        except MediaError:
            continue  # a request is writing it right now; the next round gets it
        try:
            if await discard(ctx, upload, UploadState.EXPIRED) is not None:
                expired += 1
        except Exception as exc:  # one broken upload must not stop the sweep of the others
            log.error("media_expire_failed", upload_id=upload.id, error=repr(exc))
        finally:
            await lock.release()
    for upload in await uploads.stuck_handoffs(ctx.db, HANDOFF_GRACE_S):
        try:
            await finish(ctx, upload)
            handed_off += 1
        except Exception as exc:
            log.error("media_handoff_failed", upload_id=upload.id, error=repr(exc))
    if expired or handed_off:
        log.info("media_sweep", expired=expired, handed_off=handed_off)
    return {"expired": expired, "handed_off": handed_off}


async def run_cleanup(ctx: MediaContext, *, interval_s: float | None = None) -> None:
    """Sweep forever every ``interval_s`` (default ``AMARO_MEDIA_CLEANUP_INTERVAL``)."""
    every = ctx.media.cleanup_interval_s if interval_s is None else interval_s
    while True:
        try:
            await sweep_once(ctx)
        except Exception as exc:
            log.error("media_sweep_failed", error=repr(exc))
        await asyncio.sleep(every)


async def run_key_rotation(ctx: MediaContext, *, check_every_s: float = 3600.0) -> None:
    """Rotate the file keyring when its newest key is older than ``AMARO_MEDIA_KEY_ROTATION``."""
    if not ctx.keyring.writable or ctx.media.key_rotation_s <= 0:
        return
    while True:
        try:
            new_id = await asyncio.to_thread(ctx.keyring.rotate_if_due, ctx.media.key_rotation_s)
            if new_id is not None:
                log.info("master_key_rotated", key_id=new_id)
        except Exception as exc:
            log.error("key_rotation_failed", error=repr(exc))
        await asyncio.sleep(check_every_s)
