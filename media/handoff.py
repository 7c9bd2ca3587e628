"""Hand-off to NARA when the last byte lands: verify, publish, enqueue exactly once.

Every step is idempotent, so a retried final PATCH, a HEAD after a crash or the cleanup sweep can
run ``finish`` again from wherever the previous attempt stopped:

1. complete the multipart object (a store that already published it says so) and write its header;
2. verify the stored size is exactly what ``length`` bytes encrypt to;
3. PostgreSQL: uploading -> complete, record the object, post -> processing (one transaction);
4. Redis: the guarded enqueue (jobs.py) sets the per-upload guard and XADDs the job, or does nothing if
   the guard exists; then PostgreSQL: complete -> enqueued.
"""

from __future__ import annotations

import structlog

from media import metrics, uploads
from media.crypto import TAG, header_key
from media.errors import StoreError
from media.events import PROGRESS, emit
from media.jobs import MediaJob, enqueue
from media.runtime import MediaContext
from media.store import Part
from media.uploads import Upload, UploadState

log = structlog.get_logger(__name__)


def stored_size(length: int, chunk_size: int) -> int:
    chunks = max(1, -(-length // chunk_size))
    return length + chunks * TAG


def uplink_bps(upload: Upload) -> int:
    """Bits per second while bytes were actually arriving (pauses between requests excluded)."""
    return int(upload.length * 8 * 1000 / max(upload.active_ms, 1))


def job_for(upload: Upload) -> MediaJob:
    return MediaJob(upload_id=upload.id, user_id=upload.user_id, post_id=upload.post_id,
                    object_key=upload.object_key, content_type=upload.content_type or "application/octet-stream",
                    size=upload.length, uplink_bps=uplink_bps(upload))


async def finish(ctx: MediaContext, upload: Upload) -> Upload:
    """Drive a fully received upload to ``enqueued``; safe to call any number of times."""
    if upload.state is UploadState.UPLOADING:
        if upload.offset != upload.length:
            raise ValueError("finish() called before the last byte landed")
        parts = [Part(number, etag) for number, etag in enumerate(upload.parts, start=1)]
        await ctx.store.complete_multipart(upload.object_key, upload.multipart_id, parts)
        await ctx.store.put(header_key(upload.object_key), upload.header.encode())
        expected = stored_size(upload.length, upload.header.chunk_size)
        actual = await ctx.store.size(upload.object_key)
        if actual != expected:
            raise StoreError(f"stored object is {actual} bytes, expected {expected}", code="size_mismatch")
        published = await uploads.publish(ctx.db, ctx.posts, upload)
        reloaded = published or await uploads.load_any(ctx.db, upload.id)
        assert reloaded is not None
        upload = reloaded
    if upload.state is UploadState.COMPLETE:
        placed = await enqueue(ctx.redis, ctx.jobs, job_for(upload))
        await uploads.mark_enqueued(ctx.db, upload.id)
        if placed:
            metrics.HANDOFFS.inc()
            log.info("upload_handed_off", upload_id=upload.id, size=upload.length, content_type=upload.content_type)
            await emit(ctx.events, upload.user_id, upload.id, upload.post_id, PROGRESS,
                       {"offset": upload.length, "length": upload.length, "uploaded": True,
                        "content_type": upload.content_type, "uplink_bps": uplink_bps(upload)})
        reloaded = await uploads.load_any(ctx.db, upload.id)
        assert reloaded is not None
        upload = reloaded
    return upload
