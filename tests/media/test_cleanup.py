"""Expiry sweeping, stuck hand-offs, and re-wrapping stored objects after a key rotation."""

from __future__ import annotations

import asyncpg
import httpx
import redis.asyncio as aioredis

from media import keys
from media.app import close_store, open_store
from media.cleanup import sweep_once
from media.config import CHUNK_SIZE
from media.crypto import TAG, DataKey, encrypt_bytes, read_header
from media.keyring import Keyring
from media.rotation import rewrap_objects, rotate_keys
from media.runtime import MediaContext
from media.uploads import Upload
from tests.media.conftest import User, create_upload, jobs_for, mp4_bytes, send_patch, stored_plaintext


async def test_sweep_expires_and_aborts_parts(client: httpx.AsyncClient, ctx: MediaContext, user: User,
                                              db: asyncpg.Pool) -> None:
    data = mp4_bytes(300_000)
    url = await create_upload(client, user, len(data))
    assert (await send_patch(client, user, url, 0, data[:200_000])).status_code == 204
    upload_id = url.rsplit("/", 1)[1]
    row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", upload_id)
    await db.execute("UPDATE media_uploads SET expires_at = now() - interval '1 minute' WHERE id = $1", upload_id)
    result = await sweep_once(ctx)
    assert result["expired"] >= 1
    assert (await db.fetchval("SELECT state FROM media_uploads WHERE id = $1", upload_id)) == "expired"
    assert (await db.fetchval("SELECT state FROM posts WHERE id = $1", row["post_id"])) == "failed"
    assert not await ctx.store.exists(row["tail_key"])
    assert not (ctx.media.local_dir / ".multipart" / row["multipart_id"]).exists()
    assert (await client.head(url, headers=user.auth)).status_code == 410


async def test_sweep_skips_an_upload_being_written(client: httpx.AsyncClient, ctx: MediaContext, user: User,
                                                   db: asyncpg.Pool, redis: aioredis.Redis) -> None:
    url = await create_upload(client, user, 1000)
    upload_id = url.rsplit("/", 1)[1]
    await db.execute("UPDATE media_uploads SET expires_at = now() - interval '1 minute' WHERE id = $1", upload_id)
    await redis.set(keys.upload_lock(upload_id), b"writer", px=5000)
    await sweep_once(ctx)
    assert (await db.fetchval("SELECT state FROM media_uploads WHERE id = $1", upload_id)) == "uploading"
    await redis.delete(keys.upload_lock(upload_id))
    await sweep_once(ctx)
    assert (await db.fetchval("SELECT state FROM media_uploads WHERE id = $1", upload_id)) == "expired"


async def test_sweep_finishes_a_hand_off_left_by_a_crash(client: httpx.AsyncClient, ctx: MediaContext,
                                                         user: User, db: asyncpg.Pool,
                                                         redis: aioredis.Redis) -> None:
    data = mp4_bytes(1000)
    url = await create_upload(client, user, len(data))
    assert (await send_patch(client, user, url, 0, data)).status_code == 204
    upload_id = url.rsplit("/", 1)[1]
    # Pretend the node died after publishing, before the job was placed.
    await redis.delete(ctx.jobs.guard(upload_id))
    await db.execute("UPDATE media_uploads SET state = 'complete', completed_at = now() - interval '1 hour' "
                     "WHERE id = $1", upload_id)
    await redis.xtrim(ctx.jobs.stream, maxlen=0)
    await sweep_once(ctx)
    assert (await db.fetchval("SELECT state FROM media_uploads WHERE id = $1", upload_id)) == "enqueued"
    assert len(await jobs_for(redis, upload_id)) == 1
    await db.execute("UPDATE media_uploads SET state = 'complete' WHERE id = $1", upload_id)
    await sweep_once(ctx)  # the guard holds: still one job
    assert len(await jobs_for(redis, upload_id)) == 1


async def test_rewrap_moves_objects_to_the_newest_key(client: httpx.AsyncClient, ctx: MediaContext, user: User,
                                                      db: asyncpg.Pool) -> None:
    data = mp4_bytes(200_000, seed=5)
    done_url = await create_upload(client, user, len(data))
    assert (await send_patch(client, user, done_url, 0, data)).status_code == 204
    open_url = await create_upload(client, user, len(data))
    assert (await send_patch(client, user, open_url, 0, data[:70_000])).status_code == 204
    old_key = ctx.keyring.current()[0]
    new_key = ctx.keyring.rotate()
    done = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", done_url.rsplit("/", 1)[1])
    stored_before = await ctx.store.get(done["object_key"])
    assert (await read_header(ctx.store, done["object_key"])).key_id == old_key
    assert await rewrap_objects(ctx.db, ctx.store, ctx.keyring) >= 2
    assert (await read_header(ctx.store, done["object_key"])).key_id == new_key
    assert await ctx.store.get(done["object_key"]) == stored_before  # data untouched
    assert await stored_plaintext(ctx, done["object_key"]) == data
    assert await db.fetchval("SELECT key_id FROM media_objects WHERE id = $1", done["id"]) == new_key
    # The unfinished upload continues under its re-wrapped key and completes readable.
    assert (await send_patch(client, user, open_url, 70_000, data[70_000:])).status_code == 204
    row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", open_url.rsplit("/", 1)[1])
    assert (await read_header(ctx.store, row["object_key"])).key_id == new_key
    assert await stored_plaintext(ctx, row["object_key"]) == data


async def test_sweep_publishes_a_fully_received_upload_left_by_a_crash(
        client: httpx.AsyncClient, ctx: MediaContext, user: User, db: asyncpg.Pool, redis: aioredis.Redis) -> None:
    """The last byte was committed, then the node died before publishing: the sweep finishes it (even
    past its expiry: a complete upload is never thrown away)."""
    data = mp4_bytes(200_000, seed=8)
    url = await create_upload(client, user, len(data))
    upload_id = url.rsplit("/", 1)[1]
    row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", upload_id)
    # What the dead node had written: both parts of the sealed object (parts hold 2 chunks here).
    stored = encrypt_bytes(DataKey.open(ctx.keyring, Upload.from_row(row).header), data)
    sealed_part = 2 * (CHUNK_SIZE + TAG)
    etag = await ctx.store.upload_part(row["object_key"], row["multipart_id"], 1, stored[:sealed_part])
    etag2 = await ctx.store.upload_part(row["object_key"], row["multipart_id"], 2, stored[sealed_part:])
    await db.execute(
        """UPDATE media_uploads SET "offset" = length, parts = $2, content_type = 'video/mp4',
           updated_at = now() - interval '1 hour', expires_at = now() - interval '1 minute' WHERE id = $1""",
        upload_id, [etag, etag2])
    await sweep_once(ctx)
    assert (await db.fetchval("SELECT state FROM media_uploads WHERE id = $1", upload_id)) == "enqueued"
    assert await stored_plaintext(ctx, row["object_key"]) == data
    assert len(await jobs_for(redis, upload_id)) == 1


async def test_cli_rotate_and_rewrap_functions(client: httpx.AsyncClient, ctx: MediaContext, user: User,
                                               db: asyncpg.Pool) -> None:
    """What ``amaro keys rotate`` / ``amaro keys rewrap`` call (``amaro.roles.keys_main``), with their
    own keyring and store."""
    data = mp4_bytes(100_000, seed=6)
    url = await create_upload(client, user, len(data))
    assert (await send_patch(client, user, url, 0, data)).status_code == 204
    object_key = await db.fetchval("SELECT object_key FROM media_uploads WHERE id = $1", url.rsplit("/", 1)[1])
    new_id = await rotate_keys(ctx.media)
    assert ctx.keyring.current()[0] == new_id  # the running node sees the rotation through the file
    store = await open_store(ctx.media)
    try:
        assert await rewrap_objects(db, store, Keyring.load(ctx.media)) >= 1
    finally:
        await close_store(store)
    assert (await read_header(ctx.store, object_key)).key_id == new_id
    assert await stored_plaintext(ctx, object_key) == data
