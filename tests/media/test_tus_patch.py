"""PATCH: streaming, resuming, validation, checksum, sniffing, limits and the hand-off to NARA."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import redis.asyncio as aioredis
from starlette.applications import Starlette

from amaro.services import Services
from media import keys
from media.app import close_store, upload_routes
from media.config import CHUNK_SIZE
from media.crypto import TAG
from media.runtime import MediaContext
from media.store import PartStager
from tests.media.conftest import (
    RecordingEvents,
    User,
    create_upload,
    jobs_for,
    local_settings,
    make_context,
    make_user,
    mp4_bytes,
    send_patch,
    stored_plaintext,
)


async def upload_row(db: asyncpg.Pool, url: str) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", url.rsplit("/", 1)[1])
    assert row is not None
    return row


async def test_upload_in_odd_pieces_completes_and_hands_off_once(
        client: httpx.AsyncClient, ctx: MediaContext, user: User, db: asyncpg.Pool, redis: aioredis.Redis) -> None:
    data = mp4_bytes(700_001, seed=1)
    url = await create_upload(client, user, len(data))
    cuts = [0, 10, 65_536, 200_000, 262_144, 500_123, len(data)]
    for start, end in itertools.pairwise(cuts):
        response = await send_patch(client, user, url, start, data[start:end])
        assert response.status_code == 204, response.text
        assert response.headers["Upload-Offset"] == str(end)
        head = await client.head(url, headers=user.auth)
        assert head.headers["Upload-Offset"] == str(end)
    row = await upload_row(db, url)
    assert row["state"] == "enqueued" and row["content_type"] == "video/mp4"
    assert await stored_plaintext(ctx, row["object_key"]) == data
    post = await db.fetchrow("SELECT state, media_id FROM posts WHERE id = $1", row["post_id"])
    assert post["state"] == "processing" and post["media_id"] == row["id"]
    # The final PATCH retried (its response was lost): same answer, still one job.
    again = await send_patch(client, user, url, len(data), b"")
    assert again.status_code == 204 and again.headers["Upload-Offset"] == str(len(data))
    jobs = await jobs_for(redis, str(row["id"]))
    assert len(jobs) == 1
    job = jobs[0]
    assert job["job_id"] == job["upload_id"] == str(row["id"])
    assert job["user_id"] == user.id and job["post_id"] == str(row["post_id"])
    assert job["object_key"] == row["object_key"] and job["content_type"] == "video/mp4"
    assert job["size"] == len(data) and isinstance(job["uplink_bps"], int) and job["uplink_bps"] > 0
    events = ctx.events
    assert isinstance(events, RecordingEvents)
    phases = events.phases(str(row["id"]))
    assert phases[0] == "received" and set(phases[1:]) == {"progress"}
    last = [e for e in events.events if e[1] == str(row["id"])][-1][4]
    assert last["uploaded"] is True and last["offset"] == len(data) and last["content_type"] == "video/mp4"
    # Nothing staged is left behind.
    assert [k async for k in ctx.store.list_keys("staging/")] == []  # type: ignore[attr-defined]


async def test_offset_mismatch_is_409(client: httpx.AsyncClient, user: User) -> None:
    data = mp4_bytes(1000)
    url = await create_upload(client, user, len(data))
    assert (await send_patch(client, user, url, 0, data[:100])).status_code == 204
    for wrong in (0, 50, 101, 999):
        response = await send_patch(client, user, url, wrong, data[wrong:wrong + 10])
        assert response.status_code == 409, wrong
    assert (await client.head(url, headers=user.auth)).headers["Upload-Offset"] == "100"


async def test_patch_past_the_end_stores_nothing(client: httpx.AsyncClient, user: User, db: asyncpg.Pool) -> None:
    data = mp4_bytes(1000)
    url = await create_upload(client, user, len(data))
    response = await send_patch(client, user, url, 0, data + b"extra")
    assert response.status_code == 413
    assert (await client.head(url, headers=user.auth)).headers["Upload-Offset"] == "0"

    async def chunked() -> object:  # no Content-Length: the overflow is found while streaming
        yield data[:600]
        yield data[600:] + b"more"
    response = await client.patch(url, content=chunked(), headers={  # type: ignore[arg-type]
        **user.auth, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    assert response.status_code == 413
    assert (await client.head(url, headers=user.auth)).headers["Upload-Offset"] == "0"
    assert (await upload_row(db, url))["state"] == "uploading"


async def test_lying_upload_length_never_completes(client: httpx.AsyncClient, user: User, db: asyncpg.Pool,
                                                   redis: aioredis.Redis, ctx: MediaContext) -> None:
    data = mp4_bytes(5000)
    url = await create_upload(client, user, 10_000)  # declares more than it will send
    assert (await send_patch(client, user, url, 0, data)).status_code == 204
    row = await upload_row(db, url)
    assert row["state"] == "uploading" and row["offset"] == 5000
    assert await jobs_for(redis, str(row["id"])) == []
    assert not await ctx.store.exists(row["object_key"])  # no partial object is ever published


async def test_headers_are_validated(client: httpx.AsyncClient, user: User) -> None:
    url = await create_upload(client, user, 100)
    wrong_type = await client.patch(url, content=b"x", headers={**user.auth, "Upload-Offset": "0",
                                                                "Content-Type": "application/octet-stream"})
    assert wrong_type.status_code == 415
    no_offset = await client.patch(url, content=b"x", headers={
        **user.auth, "Content-Type": "application/offset+octet-stream"})
    assert no_offset.status_code == 400
    bad_offset = await send_patch(client, user, url, 0, b"x", **{"Upload-Offset": "-3"})
    assert bad_offset.status_code == 400
    bad_algo = await send_patch(client, user, url, 0, b"x", **{"Upload-Checksum": "crc32 AAAA"})
    assert bad_algo.status_code == 400


async def test_checksum_mismatch_is_460_and_discarded(client: httpx.AsyncClient, user: User, db: asyncpg.Pool,
                                                       ctx: MediaContext) -> None:
    data = mp4_bytes(400_000, seed=7)
    url = await create_upload(client, user, len(data))
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    response = await send_patch(client, user, url, 0, data[:300_000], **{"Upload-Checksum": f"sha256 {wrong}"})
    assert response.status_code == 460
    assert (await client.head(url, headers=user.auth)).headers["Upload-Offset"] == "0"
    for algo in ("md5", "sha1", "sha256"):
        start = int((await client.head(url, headers=user.auth)).headers["Upload-Offset"])
        piece = data[start:start + 133_334]
        digest = base64.b64encode(hashlib.new(algo, piece).digest()).decode()
        ok = await send_patch(client, user, url, start, piece, **{"Upload-Checksum": f"{algo} {digest}"})
        assert ok.status_code == 204, ok.text
    row = await upload_row(db, url)
    assert row["state"] == "enqueued"
    assert await stored_plaintext(ctx, row["object_key"]) == data


async def test_disguised_executable_and_text_are_refused_and_deleted(
        client: httpx.AsyncClient, user: User, db: asyncpg.Pool, ctx: MediaContext) -> None:
    for payload in (b"MZ\x90\x00" + b"\x00" * 2000, b"just some text, honestly a video\n" * 100):
        url = await create_upload(client, user, len(payload), metadata="filename ZXZpbC5tcDQ=,filetype dmlkZW8vbXA0")
        response = await send_patch(client, user, url, 0, payload)
        assert response.status_code == 415
        assert response.headers["Amaro-Error"] == "unsupported_media_type"
        assert (await client.head(url, headers=user.auth)).status_code == 410
        row = await upload_row(db, url)
        assert row["state"] == "rejected"
        assert (await db.fetchval("SELECT state FROM posts WHERE id = $1", row["post_id"])) == "failed"
        assert not await ctx.store.exists(row["object_key"])
        events = ctx.events
        assert isinstance(events, RecordingEvents)
        assert events.events[-1][3:] == ("failed", {"reason": "rejected"})


async def test_sniffing_waits_for_enough_bytes(client: httpx.AsyncClient, user: User, db: asyncpg.Pool) -> None:
    data = mp4_bytes(100_000)
    url = await create_upload(client, user, len(data))
    for start, end in ((0, 3), (3, 11), (11, 600)):  # the first 3 bytes prove nothing yet
        assert (await send_patch(client, user, url, start, data[start:end])).status_code == 204
    assert (await upload_row(db, url))["content_type"] == "video/mp4"


async def test_unknown_forged_and_foreign_ids_are_404(client: httpx.AsyncClient, user: User,
                                                      db: asyncpg.Pool) -> None:
    other = await make_user(db)
    url = await create_upload(client, other, 1000)
    base = url.rsplit("/", 1)[0]
    for target in (url, f"{base}/00000000-0000-0000-0000-000000000000", f"{base}/not-a-uuid",
                   f"{base}/../../etc/passwd"):
        for method in ("HEAD", "PATCH", "DELETE"):
            headers = {**user.auth, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
            response = await client.request(method, target, headers=headers, content=b"" if method == "PATCH" else None)
            assert response.status_code == 404, (target, method, response.status_code)
    assert (await client.head(url, headers=other.auth)).status_code == 200


async def test_concurrent_patch_is_423(client: httpx.AsyncClient, user: User, redis: aioredis.Redis) -> None:
    url = await create_upload(client, user, 1000)
    upload_id = url.rsplit("/", 1)[1]
    await redis.set(keys.upload_lock(upload_id), b"another-node", px=5000)
    response = await send_patch(client, user, url, 0, mp4_bytes(1000))
    assert response.status_code == 423 and response.headers["Retry-After"]
    await redis.delete(keys.upload_lock(upload_id))
    assert (await send_patch(client, user, url, 0, mp4_bytes(1000))).status_code == 204


async def test_per_user_concurrency_limit_is_429(client: httpx.AsyncClient, ctx: MediaContext, db: asyncpg.Pool,
                                                 redis: aioredis.Redis) -> None:
    busy = await make_user(db)
    url = await create_upload(client, busy, 1000)
    far = 2**50
    await redis.zadd(keys.user_slots(busy.id), {f"other-{i}": far for i in range(ctx.media.user_concurrent_uploads)})
    response = await send_patch(client, busy, url, 0, mp4_bytes(1000))
    assert response.status_code == 429 and response.headers["Retry-After"]
    await redis.delete(keys.user_slots(busy.id))
    assert (await send_patch(client, busy, url, 0, mp4_bytes(1000))).status_code == 204


async def test_node_limit_refuses_then_recovers(client: httpx.AsyncClient, ctx: MediaContext, user: User) -> None:
    url = await create_upload(client, user, 1000)
    limits = ctx.node_limits
    saved = limits.max_requests
    limits.max_requests = 0
    try:
        response = await send_patch(client, user, url, 0, mp4_bytes(1000))
        assert response.status_code == 503 and response.headers["Retry-After"]
    finally:
        limits.max_requests = saved
    assert (await send_patch(client, user, url, 0, mp4_bytes(1000))).status_code == 204
    assert limits.active == 0 and limits.reserved == 0


async def test_parallel_uploads_of_one_user_do_not_mix(client: httpx.AsyncClient, ctx: MediaContext, user: User,
                                                       db: asyncpg.Pool) -> None:
    files = [mp4_bytes(300_000, seed=s) for s in range(3)]
    urls = [await create_upload(client, user, len(f)) for f in files]
    results = await asyncio.gather(*(send_patch(client, user, u, 0, f) for u, f in zip(urls, files, strict=True)))
    assert [r.status_code for r in results] == [204, 204, 204]
    for url, data in zip(urls, files, strict=True):
        assert await stored_plaintext(ctx, (await upload_row(db, url))["object_key"]) == data


async def test_slow_uplink_keeps_its_lock(ctx: MediaContext, services: Services, user: User,
                                          db: asyncpg.Pool) -> None:
    """A request slower than the lock TTL keeps the lock (renewed by time, not by progress)."""
    slow = await make_context(services, dataclasses.replace(ctx.media, lock_ttl_s=1.0), RecordingEvents())
    app = Starlette(routes=upload_routes(slow))
    data = mp4_bytes(3000)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s.test") as c:
            url = await create_upload(c, user, len(data))

            async def trickle() -> AsyncIterator[bytes]:
                for i in range(0, len(data), 1000):
                    yield data[i:i + 1000]
                    await asyncio.sleep(0.8)  # 2.4 s in all, past the 1 s TTL
            response = await c.patch(url, content=trickle(), headers={
                **user.auth, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
            assert response.status_code == 204, response.text
            assert response.headers["Upload-Offset"] == "3000"
    finally:
        await close_store(slow.store)


async def test_a_stalled_upload_does_not_block_others(client: httpx.AsyncClient, ctx: MediaContext, user: User,
                                                      db: asyncpg.Pool) -> None:
    staller, other = user, await make_user(db)
    stalled_url = await create_upload(client, staller, 100_000)
    release = asyncio.Event()

    async def stall() -> AsyncIterator[bytes]:
        yield mp4_bytes(1000)
        await release.wait()
        yield mp4_bytes(2000)[1000:]
    stalled = asyncio.create_task(client.patch(stalled_url, content=stall(), headers={
        **staller.auth, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}))
    await asyncio.sleep(0.2)
    data = mp4_bytes(300_000, seed=4)
    url = await create_upload(client, other, len(data))
    assert (await send_patch(client, other, url, 0, data)).status_code == 204
    assert await stored_plaintext(ctx, (await upload_row(db, url))["object_key"]) == data
    # Same user, different upload: also fine (the stalled one holds a single slot).
    own = await create_upload(client, staller, 1000)
    assert (await send_patch(client, staller, own, 0, mp4_bytes(1000))).status_code == 204
    release.set()
    response = await stalled
    assert response.status_code == 204 and response.headers["Upload-Offset"] == "2000"


async def test_draining_node_commits_and_sends_clients_elsewhere(client: httpx.AsyncClient, ctx: MediaContext,
                                                                 user: User, db: asyncpg.Pool) -> None:
    from media.app import drain_uploads
    data = mp4_bytes(500_000, seed=12)
    url = await create_upload(client, user, len(data))
    sent = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        yield data[:200_000]
        sent.set()
        await asyncio.sleep(30)  # the rest never comes before the drain
        yield data[200_000:]
    streaming = asyncio.create_task(client.patch(url, content=endless(), headers={
        **user.auth, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}))
    await sent.wait()
    await asyncio.sleep(0.1)
    try:
        assert await drain_uploads(ctx, timeout_s=5)
        response = await streaming
        assert response.status_code == 503 and response.headers["Amaro-Error"] == "draining"
        assert (await upload_row(db, url))["offset"] == 200_000
        refused = await send_patch(client, user, url, 200_000, data[200_000:])
        assert refused.status_code == 503
    finally:
        ctx.draining.clear()
    assert (await send_patch(client, user, url, 200_000, data[200_000:])).status_code == 204


async def test_a_part_in_pieces_is_staged_in_place_and_resumes_on_another_node(
        client: httpx.AsyncClient, ctx: MediaContext, services: Services, user: User, db: asyncpg.Pool) -> None:
    """With the local store a request that ends mid-part leaves its whole chunks where the part
    goes; the tail object holds the partial chunk alone, and another node resumes from both."""
    chunk, part = CHUNK_SIZE, ctx.media.part_size  # two chunks a part
    data = mp4_bytes(3 * part + 1000, seed=7)
    url = await create_upload(client, user, len(data))
    for start, end, partial in [(0, chunk + 5000, 5000), (chunk + 5000, chunk + 9000, 9000),
                                (chunk + 9000, part + chunk + 100, 100)]:
        response = await send_patch(client, user, url, start, data[start:end])
        assert response.status_code == 204, response.text
        row = await upload_row(db, url)
        assert keys.staged_token(row["tail_key"]) is not None, row["tail_key"]
        assert len(await ctx.store.get(row["tail_key"])) == 12 + partial + TAG  # nonce, partial chunk, tag
    other = await make_context(services, ctx.media, RecordingEvents())
    try:
        app = Starlette(routes=upload_routes(other))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n2.test") as c:
            response = await send_patch(c, user, url, part + chunk + 100, data[part + chunk + 100:])
            assert response.status_code == 204, response.text
    finally:
        await close_store(other.store)
    row = await upload_row(db, url)
    assert row["state"] == "enqueued" and row["tail_key"] is None
    assert await stored_plaintext(ctx, row["object_key"]) == data
    assert [k async for k in ctx.store.list_keys("staging/")] == []  # type: ignore[attr-defined]


async def test_a_staging_someone_else_went_on_from_is_read_back_not_overwritten(
        services: Services, user: User, db: asyncpg.Pool, tmp_path: Path) -> None:
    """A writer that staged and never committed (its node died, or it lost the lock) leaves a
    staging past the committed one. The next requests cannot build on it in place: they read the
    committed staging back and store the unfinished part whole, and the object is still exact."""
    chunk = CHUNK_SIZE
    part = 4 * chunk
    node = await make_context(services, local_settings(tmp_path, part_size=part), RecordingEvents())
    store = node.store
    assert isinstance(store, PartStager)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=Starlette(routes=upload_routes(node))),
                                     base_url="http://n1.test") as client:
            data = mp4_bytes(2 * part + 1000, seed=11)
            url = await create_upload(client, user, len(data))

            async def orphan_staging() -> None:
                row = await upload_row(db, url)
                token = keys.staged_token(row["tail_key"])
                assert token is not None
                number, held = row["offset"] // part + 1, row["offset"] % part // chunk * (chunk + TAG)
                assert await store.stage_part(row["object_key"], row["multipart_id"], number, b"junk" * 20,
                                              at=held, base=token) is not None

            cuts = [0, chunk + 100, 2 * chunk + 200, part + chunk + 300, len(data)]
            for start, end in itertools.pairwise(cuts):
                if start in (chunk + 100, part + chunk + 300):
                    await orphan_staging()
                response = await send_patch(client, user, url, start, data[start:end])
                assert response.status_code == 204, response.text
                if end == 2 * chunk + 200:  # staging refused: the tail object holds the part so far
                    row = await upload_row(db, url)
                    assert keys.staged_token(row["tail_key"]) is None
                    assert len(await store.get(row["tail_key"])) == 2 * (chunk + TAG) + 12 + 200 + TAG
        row = await upload_row(db, url)
        assert row["state"] == "enqueued"
        assert await stored_plaintext(node, row["object_key"]) == data
    finally:
        await close_store(store)


async def test_a_request_that_loses_its_lock_after_a_part_leaves_no_stale_tail(
        services: Services, user: User, db: asyncpg.Pool, redis: aioredis.Redis, tmp_path: Path) -> None:
    """A plain request commits after every part; when it fails later (here: another node took its
    lock), the tail it resumed from is no longer committed and is deleted, not left behind."""
    chunk = CHUNK_SIZE
    node = await make_context(services, local_settings(tmp_path, lock_ttl_s=0.3), RecordingEvents())
    part = node.media.part_size
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=Starlette(routes=upload_routes(node))),
                                     base_url="http://n1.test") as client:
            data = mp4_bytes(4 * part + 100, seed=12)
            url = await create_upload(client, user, len(data))
            first = part + chunk + 1000
            assert (await send_patch(client, user, url, 0, data[:first])).status_code == 204
            assert len([k async for k in node.store.list_keys("staging/")]) == 1  # type: ignore[attr-defined]
            lock = keys.upload_lock(url.rsplit("/", 1)[1])

            async def body() -> AsyncIterator[bytes]:
                yield data[first:2 * part + 10]  # completes part 2: committed with no tail
                await redis.set(lock, b"another-node", px=5000)
                await asyncio.sleep(0.4)  # the keep-alive finds the lock taken
                yield data[2 * part + 10:3 * part + 10]

            response = await client.patch(url, content=body(), headers={
                **user.auth, "Upload-Offset": str(first), "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(3 * part + 10 - first)})
            assert response.status_code == 423, response.text
            row = await upload_row(db, url)
            assert (row["offset"], row["tail_key"]) == (2 * part, None)
            assert [k async for k in node.store.list_keys("staging/")] == []  # type: ignore[attr-defined]
            await redis.delete(lock)
            response = await send_patch(client, user, url, 2 * part, data[2 * part:])
            assert response.status_code == 204, response.text
        row = await upload_row(db, url)
        assert row["state"] == "enqueued"
        assert await stored_plaintext(node, row["object_key"]) == data
    finally:
        await close_store(node.store)
