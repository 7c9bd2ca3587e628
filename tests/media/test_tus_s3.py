"""The tus path end to end on a real S3 API (moto's server): multipart parts, staged tails in the
bucket (never on local disk) as segments each request writes once, termination aborting the
multipart upload and deleting what was staged."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from amaro.services import Services
from media import keys
from media.app import close_store, upload_routes
from media.config import CHUNK_SIZE, MiB
from media.crypto import TAG
from media.runtime import MediaContext
from tests.media.conftest import (
    RecordingEvents,
    User,
    create_upload,
    make_context,
    mp4_bytes,
    s3_settings,
    send_patch,
    stored_plaintext,
)


@pytest_asyncio.fixture(loop_scope="session")
async def s3ctx(services: Services, tmp_path: Path, moto_endpoint: str) -> AsyncIterator[MediaContext]:
    context = await make_context(services, s3_settings(tmp_path, moto_endpoint), RecordingEvents())
    try:
        yield context
    finally:
        await close_store(context.store)


@pytest_asyncio.fixture(loop_scope="session")
async def s3client(s3ctx: MediaContext) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=upload_routes(s3ctx))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s3.test") as c:
        yield c


async def test_multipart_upload_with_tails_on_s3(s3client: httpx.AsyncClient, s3ctx: MediaContext, user: User,
                                                 db: asyncpg.Pool, tmp_path: Path) -> None:
    data = mp4_bytes(12 * MiB + 12345, seed=21)
    url = await create_upload(s3client, user, len(data))
    cuts = [0, 100, 3 * MiB, 5 * MiB + 1, 10 * MiB + 7, len(data)]
    for start, end in itertools.pairwise(cuts):
        response = await send_patch(s3client, user, url, start, data[start:end])
        assert response.status_code == 204, response.text
        row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", url.rsplit("/", 1)[1])
        if row["tail_key"]:
            assert await s3ctx.store.exists(row["tail_key"])  # the staged tail lives in the bucket
    assert row["state"] == "enqueued" and len(row["parts"]) == 3
    assert await stored_plaintext(s3ctx, row["object_key"]) == data
    assert [k async for k in s3ctx.store.list_keys("staging/")] == []  # type: ignore[attr-defined]
    assert not any(tmp_path.rglob("*.tail*"))


async def test_terminate_aborts_s3_multipart(s3client: httpx.AsyncClient, s3ctx: MediaContext, user: User,
                                             db: asyncpg.Pool) -> None:
    data = mp4_bytes(6 * MiB, seed=2)
    url = await create_upload(s3client, user, len(data))
    assert (await send_patch(s3client, user, url, 0, data[: 5 * MiB + 10])).status_code == 204
    row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", url.rsplit("/", 1)[1])
    assert (await s3client.delete(url, headers=user.auth)).status_code == 204
    client = s3ctx.store._client  # type: ignore[attr-defined]
    listed = await client.list_multipart_uploads(Bucket=s3ctx.media.s3_bucket)
    assert row["multipart_id"] not in [u["UploadId"] for u in listed.get("Uploads", [])]
    assert not await s3ctx.store.exists(row["tail_key"])


async def staging_sizes(ctx: MediaContext) -> dict[str, int]:
    sizes = {}
    async for key in ctx.store.list_keys("staging/"):  # type: ignore[attr-defined]
        size = await ctx.store.size(key)
        assert size is not None
        sizes[key] = size
    return sizes


async def test_small_requests_stage_each_chunk_once_on_s3(s3client: httpx.AsyncClient, s3ctx: MediaContext,
                                                          user: User, db: asyncpg.Pool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """TUSKit sends 500 KB requests: each stages only the whole chunks it added, as a segment of
    its own; the tail object lists them and holds the partial chunk, and the segments are read
    once, by the request that completes the part. Nothing is left in staging afterwards."""
    step = 500_000
    data = mp4_bytes(6 * MiB + 777, seed=33)
    url = await create_upload(s3client, user, len(data))
    store = s3ctx.store
    read: list[str] = []

    def recording(real: Any) -> Any:
        def call(key: str, **options: Any) -> Any:
            read.append(key)
            return real(key, **options)
        return call

    for name in ("get", "get_buffer", "stream"):  # observed, not replaced: the bucket still answers
        monkeypatch.setattr(store, name, recording(getattr(store, name)))
    offset = 0
    while offset < len(data):
        end = min(offset + step, len(data))
        before = await staging_sizes(s3ctx)
        read.clear()
        response = await send_patch(s3client, user, url, offset, data[offset:end])
        assert response.status_code == 204, response.text
        segments_read = [k for k in read if ".segment." in k]
        completes_part = offset // (5 * MiB) != end // (5 * MiB) or end == len(data)
        assert bool(segments_read) == (completes_part and offset % (5 * MiB) >= CHUNK_SIZE), (offset, read)
        row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", url.rsplit("/", 1)[1])
        after = await staging_sizes(s3ctx)
        if row["tail_key"] and end // CHUNK_SIZE > offset // CHUNK_SIZE and end < 5 * MiB:
            assert keys.is_segmented(row["tail_key"])
            assert after[row["tail_key"]] < CHUNK_SIZE + 200  # the partial chunk and the list
            added = {k: v for k, v in after.items() if k not in before and k != row["tail_key"]}
            whole_added = (end // CHUNK_SIZE - offset // CHUNK_SIZE) * (CHUNK_SIZE + TAG)
            assert list(added.values()) == [whole_added]  # this request's whole chunks, once
        offset = end
    row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", url.rsplit("/", 1)[1])
    assert row["state"] == "enqueued" and len(row["parts"]) == 2
    assert await stored_plaintext(s3ctx, row["object_key"]) == data
    assert await staging_sizes(s3ctx) == {}


async def test_terminate_deletes_the_staged_segments(s3client: httpx.AsyncClient, s3ctx: MediaContext, user: User,
                                                     db: asyncpg.Pool) -> None:
    data = mp4_bytes(6 * MiB, seed=4)
    url = await create_upload(s3client, user, len(data))
    for start, end in [(0, 300_000), (300_000, 900_000)]:
        assert (await send_patch(s3client, user, url, start, data[start:end])).status_code == 204
    assert len(await staging_sizes(s3ctx)) == 3  # two segments and the tail that lists them
    assert (await s3client.delete(url, headers=user.auth)).status_code == 204
    assert await staging_sizes(s3ctx) == {}


async def test_a_tail_listing_objects_outside_its_upload_is_refused(
        s3client: httpx.AsyncClient, s3ctx: MediaContext, user: User, db: asyncpg.Pool) -> None:
    """The list in a segmented tail names objects by key: one naming anything but this upload's
    own segments is refused, and the upload stays at its offset."""
    import msgpack
    data = mp4_bytes(2 * MiB, seed=5)
    url = await create_upload(s3client, user, len(data))
    assert (await send_patch(s3client, user, url, 0, data[:300_000])).status_code == 204
    row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", url.rsplit("/", 1)[1])
    version, segments, partial = msgpack.unpackb(await s3ctx.store.get(row["tail_key"]))
    secret = "originals/zz/someone-elses-object"
    await s3ctx.store.put(secret, b"x" * segments[0][1])
    await s3ctx.store.put(row["tail_key"], msgpack.packb([version, [[secret, segments[0][1]]], partial]))
    response = await send_patch(s3client, user, url, 300_000, data[300_000:])
    assert (response.status_code, response.headers["Amaro-Error"]) == (500, "tail_mismatch")
    head = await s3client.head(url, headers=user.auth)
    assert head.headers["Upload-Offset"] == "300000"
