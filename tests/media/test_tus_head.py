"""HEAD: the server's offset is the truth a client resumes from, on any node."""

from __future__ import annotations

import asyncpg
import httpx
from starlette.applications import Starlette

from amaro.services import Services
from media.app import close_store, upload_routes
from media.runtime import MediaContext
from tests.media.conftest import RecordingEvents, User, create_upload, make_context, mp4_bytes, send_patch


async def test_head_reports_offset_length_and_expiry(client: httpx.AsyncClient, user: User) -> None:
    url = await create_upload(client, user, 5000)
    head = await client.head(url, headers=user.auth)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0" and head.headers["Upload-Length"] == "5000"
    assert head.headers["Cache-Control"] == "no-store" and head.headers["Upload-Expires"]
    assert head.headers["Tus-Resumable"] == "1.0.0"
    assert (await client.head(url, headers={"Tus-Resumable": "1.0.0"})).status_code == 401


async def test_expired_upload_is_410(client: httpx.AsyncClient, user: User, db: asyncpg.Pool) -> None:
    url = await create_upload(client, user, 5000)
    await db.execute("UPDATE media_uploads SET expires_at = now() - interval '1 second' WHERE id = $1",
                     url.rsplit("/", 1)[1])
    assert (await client.head(url, headers=user.auth)).status_code == 410
    assert (await send_patch(client, user, url, 0, mp4_bytes(100))).status_code == 410


async def test_resume_on_another_node(client: httpx.AsyncClient, ctx: MediaContext, services: Services,
                                      user: User, db: asyncpg.Pool) -> None:
    """Node B has its own process state (limits, store client) but the same Redis, PostgreSQL and store."""
    data = mp4_bytes(400_000, seed=11)
    url = await create_upload(client, user, len(data))
    assert (await send_patch(client, user, url, 0, data[:150_001])).status_code == 204  # mid-part, mid-chunk
    node_b = await make_context(services, ctx.media, RecordingEvents())
    try:
        app_b = Starlette(routes=upload_routes(node_b))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_b), base_url="http://b.test") as other:
            offset = int((await other.head(url, headers=user.auth)).headers["Upload-Offset"])
            assert offset == 150_001
            done = await send_patch(other, user, url, offset, data[offset:])
            assert done.status_code == 204, done.text
    finally:
        await close_store(node_b.store)
    from tests.media.conftest import stored_plaintext
    row = await db.fetchrow("SELECT object_key, state FROM media_uploads WHERE id = $1", url.rsplit("/", 1)[1])
    assert row["state"] == "enqueued"
    assert await stored_plaintext(ctx, row["object_key"]) == data
