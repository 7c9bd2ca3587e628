"""Open the configured store. Backends are imported lazily: the local store never loads aioboto3."""

from __future__ import annotations

from media.config import MediaSettings
from media.store import MediaStore, require_media_store


async def open_store(settings: MediaSettings, *, ensure_bucket: bool = False) -> MediaStore:
    """The store ``settings.store`` names; close it with ``close_store`` on shutdown."""
    if settings.store == "s3":
        from media.store_s3 import S3Store
        s3 = await S3Store.open(settings)
        if ensure_bucket:
            await s3.ensure_bucket()
        return require_media_store(s3)
    from media.store_local import LocalStore
    return require_media_store(LocalStore(settings.local_dir))


async def close_store(store: MediaStore) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        await close()
