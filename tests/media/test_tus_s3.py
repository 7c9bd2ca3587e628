"""The tus path end to end on a real S3 API (moto's server): multipart parts, staged tails in the
bucket (never on local disk), termination aborting the multipart upload."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest_asyncio
from starlette.applications import Starlette

from media.app import upload_routes
from media.backends import close_store
from media.config import MiB
from media.context import MediaContext
from realtime.services import Services
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
