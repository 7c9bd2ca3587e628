"""A deleted post's media: the upload stops counting against its owner's quota and its stored
objects (the encrypted original, its header, every output under ``media/<upload id>/``) are
removed. The feed calls this (``PostMedia``) once the post is deleted; running it again finds
nothing left to do."""

from __future__ import annotations

import structlog

from media import uploads
from media.crypto import header_key
from media.ingest import discard
from media.runtime import MediaContext
from media.store import Lister
from media.uploads import UploadState

log = structlog.get_logger(__name__)


class PostRemoval:
    def __init__(self, ctx: MediaContext) -> None:
        self.ctx = ctx

    async def post_deleted(self, post_id: str) -> None:
        ctx = self.ctx
        for upload in await uploads.of_post(ctx.db, post_id):
            if upload.state is UploadState.UPLOADING:
                await discard(ctx, upload, UploadState.TERMINATED)  # its parts go with it
                continue
            if await uploads.delete(ctx.db, upload.id) is None:
                continue  # ended already (or deleted by an earlier call)
            keys = [upload.object_key, header_key(upload.object_key)]
            if isinstance(ctx.store, Lister):
                keys += [key async for key in ctx.store.list_keys(f"media/{upload.id}/")]
            for key in keys:
                await ctx.store.delete(key)
            log.info("post_media_removed", post_id=post_id, upload_id=upload.id, objects=len(keys))
