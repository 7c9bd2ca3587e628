"""POST: creation and creation-with-upload."""

from __future__ import annotations

import base64
import email.utils
import hashlib

import asyncpg
import httpx

from media.runtime import MediaContext
from tests.media.conftest import RecordingEvents, User, make_user, mp4_bytes


async def test_create_acknowledges_with_location_and_draft_post(
        client: httpx.AsyncClient, ctx: MediaContext, user: User, db: asyncpg.Pool) -> None:
    metadata = "filename " + base64.b64encode("dança.mp4".encode()).decode() + ",filetype dmlkZW8vbXA0,flag"
    response = await client.post("/uploads/", headers={**user.auth, "Upload-Length": "1000",
                                                       "Upload-Metadata": metadata})
    assert response.status_code == 201, response.text
    assert response.headers["Tus-Resumable"] == "1.0.0"
    location = response.headers["Location"]
    assert location.startswith("http://media.test/uploads/")
    upload_id = location.rsplit("/", 1)[1]
    post_id = response.headers["Amaro-Post-Id"]
    assert email.utils.parsedate_to_datetime(response.headers["Upload-Expires"]) is not None
    post = await db.fetchrow("SELECT author_id, state FROM posts WHERE id = $1", post_id)
    assert str(post["author_id"]) == user.id and post["state"] == "draft"
    events = ctx.events
    assert isinstance(events, RecordingEvents)
    assert events.events[-1][:4] == (user.id, upload_id, post_id, "received")
    assert events.events[-1][4]["filename"] == "dança.mp4"
    head = await client.head(location, headers=user.auth)
    pairs = set(head.headers["Upload-Metadata"].split(","))
    assert pairs == {"filename ZGFuw6dhLm1wNA==", "filetype dmlkZW8vbXA0", "flag"}


async def test_version_and_auth_are_checked(client: httpx.AsyncClient, user: User) -> None:
    no_version = await client.post("/uploads/", headers={"Authorization": user.auth["Authorization"],
                                                         "Upload-Length": "10"})
    assert no_version.status_code == 412 and no_version.headers["Tus-Version"] == "1.0.0"
    wrong = await client.post("/uploads/", headers={**user.auth, "Tus-Resumable": "0.2.2", "Upload-Length": "10"})
    assert wrong.status_code == 412
    anonymous = await client.post("/uploads/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10"})
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    forged = await client.post("/uploads/", headers={**user.auth, "Authorization": "Bearer at1.AAAA.BBBB",
                                                     "Upload-Length": "10"})
    assert forged.status_code == 401


async def test_bad_lengths_and_metadata(client: httpx.AsyncClient, ctx: MediaContext, user: User) -> None:
    assert (await client.post("/uploads/", headers=user.auth)).status_code == 400
    for bad in ("-1", "abc", "0"):
        assert (await client.post("/uploads/", headers={**user.auth, "Upload-Length": bad})).status_code == 400
    too_big = str(ctx.media.max_file_size + 1)
    assert (await client.post("/uploads/", headers={**user.auth, "Upload-Length": too_big})).status_code == 413
    deferred = await client.post("/uploads/", headers={**user.auth, "Upload-Defer-Length": "1"})
    assert deferred.status_code == 400
    for metadata in ("filename not-base64!", "a YQ==,a YQ=="):
        response = await client.post("/uploads/", headers={**user.auth, "Upload-Length": "5",
                                                           "Upload-Metadata": metadata})
        assert response.status_code == 400


async def test_quota_per_user(client: httpx.AsyncClient, ctx: MediaContext, db: asyncpg.Pool) -> None:
    owner = await make_user(db)
    quota, biggest = ctx.media.user_quota, ctx.media.max_file_size
    first = await client.post("/uploads/", headers={**owner.auth, "Upload-Length": str(biggest)})
    assert first.status_code == 201
    second = await client.post("/uploads/", headers={**owner.auth, "Upload-Length": str(quota - biggest - 10)})
    assert second.status_code == 201
    over = await client.post("/uploads/", headers={**owner.auth, "Upload-Length": "11"})
    assert over.status_code == 413 and over.headers["Amaro-Error"] == "too_large"
    assert "quota" in over.text
    other = await make_user(db)
    assert (await client.post("/uploads/", headers={**other.auth, "Upload-Length": "11"})).status_code == 201


async def test_creation_with_upload(client: httpx.AsyncClient, ctx: MediaContext, user: User,
                                    redis: object) -> None:
    data = mp4_bytes(300_000, seed=3)
    response = await client.post("/uploads/", content=data[:200_000], headers={
        **user.auth, "Upload-Length": str(len(data)), "Content-Type": "application/offset+octet-stream"})
    assert response.status_code == 201, response.text
    assert response.headers["Upload-Offset"] == "200000"
    location = response.headers["Location"]
    digest = base64.b64encode(hashlib.sha256(data[200_000:]).digest()).decode()
    done = await client.patch(location, content=data[200_000:], headers={
        **user.auth, "Upload-Offset": "200000", "Content-Type": "application/offset+octet-stream",
        "Upload-Checksum": f"sha256 {digest}"})
    assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(data))
    assert "Upload-Expires" not in done.headers


async def test_open_uploads_per_user_are_capped(client: httpx.AsyncClient, ctx: MediaContext,
                                               db: asyncpg.Pool) -> None:
    hoarder = await make_user(db)
    for _ in range(ctx.media.user_open_uploads):
        assert (await client.post("/uploads/", headers={**hoarder.auth, "Upload-Length": "10"})).status_code == 201
    refused = await client.post("/uploads/", headers={**hoarder.auth, "Upload-Length": "10"})
    assert refused.status_code == 429 and refused.headers["Amaro-Error"] == "too_many_uploads"
