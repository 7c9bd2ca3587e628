"""A deleted post's media: the upload stops counting against its owner's quota and its stored
objects (the encrypted original, its header, every output under ``media/<upload id>/``) are
removed, with the row that lists the original for key rotation. The feed calls this
(``PostMedia``) once the post is deleted, and again from its sweep if a node died before it was
done: every step is idempotent, and a call after a failed one finishes the job (objects of an
upload already ``deleted`` are removed again, which finds nothing left or what was left).

An unfinished upload is ended as terminated under its upload lock (a request writing it holds the
lock: the call fails and the feed's sweep tries again later); if it completed meanwhile it is
deleted like a finished one.
"""

from __future__ import annotations

import uuid

import structlog

from media import uploads
from media.crypto import header_key
from media.ingest import discard
from media.locks import UploadLock
from media.runtime import MediaContext
from media.store import Lister
from media.uploads import Upload, UploadState

log = structlog.get_logger(__name__)


class PostRemoval:
    def __init__(self, ctx: MediaContext) -> None:
        self.ctx = ctx

    async def post_of_upload(self, upload_id: str, user_id: str) -> str | None:
        try:
            upload, owner = uuid.UUID(upload_id), uuid.UUID(user_id)
        except ValueError:
            return None
        found = await self.ctx.db.fetchval(
            "SELECT post_id::text FROM media_uploads WHERE id = $1 AND user_id = $2", upload, owner)
        return None if found is None else str(found)

    async def post_deleted(self, post_id: str) -> None:
        for upload in await uploads.of_post(self.ctx.db, post_id):
            await self._remove(upload)

    async def _remove(self, upload: Upload) -> None:
        ctx = self.ctx
        if upload.state is UploadState.UPLOADING:
            lock = UploadLock(ctx.redis, upload.id, ctx.media.lock_ttl_s)
            await lock.acquire()  # a request is writing it: raises, and the feed's sweep retries
            try:
                if await discard(ctx, upload, UploadState.TERMINATED) is not None:
                    return  # its parts went with it; nothing was published
            finally:
                await lock.release()
            reloaded = await uploads.load_any(ctx.db, upload.id)  # it completed meanwhile
            if reloaded is None:
                return
            upload = reloaded
        if await uploads.delete(ctx.db, upload.id) is None and upload.state is not UploadState.DELETED:
            current = await uploads.load_any(ctx.db, upload.id)
            if current is None or current.state is not UploadState.DELETED:
                return  # ended before it was published (terminated, expired, rejected): nothing stored
        keys = [upload.object_key, header_key(upload.object_key)]
        if isinstance(ctx.store, Lister):
            keys += [key async for key in ctx.store.list_keys(f"media/{upload.id}/")]
        for key in keys:
            await ctx.store.delete(key)
        await ctx.db.execute("DELETE FROM media_objects WHERE id = $1", upload.id)
        log.info("post_media_removed", post_id=upload.post_id, upload_id=upload.id, objects=len(keys))
