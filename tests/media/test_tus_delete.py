"""DELETE: termination aborts the multipart object and drops the staged tail."""

from __future__ import annotations

import asyncpg
import httpx

from media.runtime import MediaContext
from tests.media.conftest import User, create_upload, mp4_bytes, send_patch


async def test_terminate_unfinished_upload(client: httpx.AsyncClient, ctx: MediaContext, user: User,
                                           db: asyncpg.Pool) -> None:
    data = mp4_bytes(300_000)
    url = await create_upload(client, user, len(data))
    assert (await send_patch(client, user, url, 0, data[:200_000])).status_code == 204
    row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", url.rsplit("/", 1)[1])
    assert row["tail_key"] and await ctx.store.exists(row["tail_key"])
    response = await client.delete(url, headers=user.auth)
    assert response.status_code == 204
    assert not await ctx.store.exists(row["tail_key"])
    assert not (ctx.media.local_dir / ".multipart" / row["multipart_id"]).exists()
    assert (await db.fetchval("SELECT state FROM media_uploads WHERE id = $1", row["id"])) == "terminated"
    assert (await db.fetchval("SELECT state FROM posts WHERE id = $1", row["post_id"])) == "deleted"
    assert (await client.head(url, headers=user.auth)).status_code == 410
    assert (await send_patch(client, user, url, 200_000, data[200_000:])).status_code == 410
    assert (await client.delete(url, headers=user.auth)).status_code == 410


async def test_complete_upload_cannot_be_terminated(client: httpx.AsyncClient, user: User) -> None:
    data = mp4_bytes(1000)
    url = await create_upload(client, user, len(data))
    assert (await send_patch(client, user, url, 0, data)).status_code == 204
    assert (await client.delete(url, headers=user.auth)).status_code == 409


async def test_method_override_for_clients_without_delete(client: httpx.AsyncClient, user: User) -> None:
    url = await create_upload(client, user, 1000)
    response = await client.post(url, headers={**user.auth, "X-HTTP-Method-Override": "DELETE"})
    assert response.status_code == 204
