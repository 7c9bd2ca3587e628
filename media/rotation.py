"""Key rotation and re-wrap, for ``amaro keys rotate`` / ``amaro keys rewrap`` and tests.

Re-wrapping replaces only an object's header (its data key wrapped with the newest master key);
the encrypted data is never read or rewritten.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from media.config import MediaSettings
from media.crypto import Header, header_key, read_header, rewrap
from media.errors import MediaError
from media.keyring import Keyring
from media.store import ObjectStore
from media.uploads import UploadState

log = structlog.get_logger(__name__)


async def rewrap_object(store: ObjectStore, keyring: Keyring, object_key: str) -> str:
    """Re-wrap one object's data key with the newest master key; returns the key id now used."""
    header = await read_header(store, object_key)
    newest = keyring.newest().key_id
    if header.key_id == newest:
        return newest
    fresh = rewrap(header, keyring)
    await store.put(header_key(object_key), fresh.encode())
    return fresh.key_id


async def rewrap_objects(db: asyncpg.Pool, store: ObjectStore, keyring: Keyring, *, batch: int = 100) -> int:
    """Re-wrap every published object and every unfinished upload still on an older master key.

    Returns how many were re-wrapped. An object that cannot be (header missing, key unknown) is
    logged and skipped so one bad object never blocks the rest; run again after fixing it.
    """
    newest = keyring.newest().key_id
    done = failed = 0
    last = "00000000-0000-0000-0000-000000000000"
    while True:
        rows = await db.fetch(
            "SELECT id, object_key FROM media_objects WHERE key_id <> $1 AND id > $2::uuid ORDER BY id LIMIT $3",
            newest, last, batch)
        if not rows:
            break
        last = str(rows[-1]["id"])
        for row in rows:
            try:
                key_id = await rewrap_object(store, keyring, row["object_key"])
            except MediaError as exc:
                log.warning("rewrap_failed", object_key=row["object_key"], error=exc.message)
                failed += 1
                continue
            await db.execute("UPDATE media_objects SET key_id = $2, rewrapped_at = now() WHERE id = $1",
                             row["id"], key_id)
            done += 1
    for row in await db.fetch("SELECT id, header FROM media_uploads WHERE state = $1", UploadState.UPLOADING.value):
        header = Header.decode(bytes(row["header"]))
        if header.key_id == newest:
            continue
        try:
            fresh = rewrap(header, keyring)
        except MediaError as exc:
            log.warning("rewrap_failed", upload_id=str(row["id"]), error=exc.message)
            failed += 1
            continue
        # Guarded by the old header: a concurrent change wins and is re-wrapped next time.
        await db.execute("UPDATE media_uploads SET header = $2 WHERE id = $1 AND header = $3",
                         row["id"], fresh.encode(), bytes(row["header"]))
        done += 1
    log.info("media_rewrapped", count=done, failed=failed, key_id=newest)
    return done


async def rotate_keys(media: MediaSettings) -> str:
    """``amaro keys rotate``: add a new newest master key; returns its id."""
    keyring = await asyncio.to_thread(Keyring.load, media)
    key_id = await asyncio.to_thread(keyring.rotate)
    log.info("master_key_rotated", key_id=key_id)
    return key_id
