"""The upload path as the composition root uses it: open the configured store, the tus endpoint to
mount at ``/uploads``, and the drain that lets streaming requests commit what arrived.

Backends are imported lazily: the local store never loads aioboto3.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp

from media.config import MediaSettings
from media.cors import CORSMiddleware
from media.runtime import MediaContext
from media.store import MediaStore, require_media_store
from media.tus import TusApp


async def open_store(settings: MediaSettings, *, ensure_bucket: bool = False) -> MediaStore:
    """The store ``settings.store`` names; close it with ``close_store`` on shutdown."""
    if settings.store == "s3":
        from media.store_s3 import S3Store
        s3 = await S3Store.open(settings)
        if ensure_bucket:
            await s3.ensure_bucket()
        return require_media_store(s3)
    from media.localstore.store import LocalStore
    return require_media_store(LocalStore(settings.local_dir))


async def close_store(store: MediaStore) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        await close()


def build_uploads_app(ctx: MediaContext) -> ASGIApp:
    """The tus endpoint with CORS; mount it at ``/uploads``."""
    return CORSMiddleware(TusApp(ctx), ctx.allowed_origins)


def upload_routes(ctx: MediaContext) -> list[BaseRoute]:
    return [Mount("/uploads", app=build_uploads_app(ctx))]


async def drain_uploads(ctx: MediaContext, timeout_s: float = 10.0) -> bool:
    """Stop taking upload bytes on this node: streaming requests commit what arrived and answer 503
    (clients resume on another node from HEAD's offset); new POST/PATCH get 503. Returns True once
    no upload request runs, False if ``timeout_s`` passed first. Call it before the server stops."""
    ctx.draining.set()
    return await ctx.node_limits.idle(timeout_s)
