"""A video post the way a client makes one: the tus upload creates its draft, ``POST
/api/v1/posts`` composes it, a real NARA-1r worker process makes its media good enough, which
publishes it (its author saw it as processing; its audience now sees it, live and in timelines),
then upgrades it in place. Deleting it gives its bytes back to the owner's quota; playback URLs
follow the access rule, blocks included."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from amaro.services import Services
from amaro.settings import Settings
from amaro_client import Client
from nara.tools import locate
from tests.conftest import RunningNode, serve_node, with_node
from tests.nara.conftest import make_clip
from tests.nara.test_end_to_end import WorkerProcess, worker

from .postkit import User, block, error_code, follow, home_ids, next_feed, users

EVENT_TIMEOUT_S = 120.0
__all__ = ["worker"]  # a real worker process, as NARA-1r's own end-to-end test runs it (same services and store)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(locate(), tmp_path_factory.mktemp("clips") / "dance.mp4", seconds=4.0, size="320x240")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def media_node(settings: Settings, services: Services, clip: Path) -> AsyncIterator[RunningNode]:
    """A node whose users may store one clip and a half."""
    media = dataclasses.replace(settings.media, user_quota=clip.stat().st_size * 3 // 2)
    tuned = dataclasses.replace(with_node(settings, node_id="posts-media"), media=media)
    async with serve_node(tuned, services) as node:
        yield node


def _tus(user: User, **headers: str) -> dict[str, str]:
    return {**user.auth, "Tus-Resumable": "1.0.0", **headers}


async def _create_upload(http: httpx.AsyncClient, user: User, size: int) -> httpx.Response:
    return await http.post("/uploads/", headers=_tus(user, **{"Upload-Length": str(size)}))


async def test_a_video_post_from_upload_to_published_to_deleted(media_node: RunningNode, worker: WorkerProcess,
                                                                clip: Path, db: asyncpg.Pool) -> None:
    data = clip.read_bytes()
    async with httpx.AsyncClient(base_url=media_node.http_url, timeout=60) as http:
        author, follower, stranger, blocked = await users(media_node, 4)
        await follow(http, follower, author)
        async with Client(media_node.ws_url, token=follower.token) as fc, \
                Client(media_node.ws_url, token=author.token) as ac:
            await fc.subscribe(f"user:{follower.id}")
            await ac.subscribe(f"user:{author.id}")
            created = await _create_upload(http, author, len(data))
            assert created.status_code == 201, created.text
            post_id, location = created.headers["Amaro-Post-Id"], created.headers["Location"]
            upload_id = location.rstrip("/").rsplit("/", 1)[-1]
            # Composed right away (before the bytes), by its upload's id.
            r = await http.post("/api/v1/posts", json={"upload_id": upload_id, "body": "my dance",
                                                       "visibility": "followers", "kind": "video"},
                                headers=author.auth)
            assert r.status_code == 201, r.text
            composed = r.json()
            assert (composed["id"], composed["state"], composed["kind"], composed["body"]) == (
                post_id, "processing", "video", "my dance")
            r = await http.post("/api/v1/posts", json={"upload_id": upload_id}, headers=follower.auth)
            assert (r.status_code, error_code(r)) == (404, "not_found")  # not their upload
            r = await http.post("/api/v1/posts", json={"post_id": post_id, "body": "mine now"}, headers=follower.auth)
            assert r.status_code == 404
            for viewer, status in ((author, 200), (follower, 404), (stranger, 404)):
                assert (await http.get(f"/api/v1/posts/{post_id}", headers=viewer.auth)).status_code == status
            assert await home_ids(http, follower) == []

            patched = await http.patch(location, content=data, headers=_tus(author, **{
                "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}))
            assert patched.status_code == 204, patched.text
            frame = await next_feed(fc, "post.created", lambda f: f.data["post"]["id"] == post_id,
                                    timeout_s=EVENT_TIMEOUT_S)
            assert frame.data["post"]["kind"] == "video" and frame.data["post"]["author"]["id"] == author.id
            seen = (await http.get(f"/api/v1/posts/{post_id}", headers=follower.auth)).json()
            assert (seen["state"], seen["kind"], seen["media_id"], seen["body"], seen["visibility"]) == (
                "published", "video", upload_id, "my dance", "followers")
            assert (await http.get(f"/api/v1/posts/{post_id}", headers=stranger.auth)).status_code == 404
            assert await home_ids(http, follower) == [post_id]
            playback = await http.get(f"/api/v1/media/{upload_id}", headers=follower.auth)
            assert playback.status_code == 200 and playback.json()["post_id"] == post_id
            assert (await http.get(f"/api/v1/media/{upload_id}", headers=stranger.auth)).status_code == 404
            # Upgraded in place: its author hears of it; it is the same post.
            upgraded = await next_feed(ac, "post.updated", lambda f: f.data["post"]["id"] == post_id,
                                       timeout_s=EVENT_TIMEOUT_S)
            assert upgraded.data["changes"] == ["media"]
            profile = (await http.get(f"/api/v1/users/{author.id}", headers=author.auth)).json()
            assert profile["posts_count"] == 1

        # Public now: anyone may play it, except someone the author blocked.
        r = await http.patch(f"/api/v1/posts/{post_id}", json={"visibility": "public"}, headers=author.auth)
        assert r.status_code == 200
        assert (await http.get(f"/api/v1/media/{upload_id}", headers=blocked.auth)).status_code == 200
        await block(http, author, blocked)
        assert (await http.get(f"/api/v1/media/{upload_id}", headers=blocked.auth)).status_code == 404
        assert (await http.get(f"/api/v1/posts/{post_id}", headers=blocked.auth)).status_code == 404

        # The quota holds one clip: a second does not fit until the first post is deleted.
        over = await _create_upload(http, author, len(data))
        assert over.status_code == 413, over.text
        assert (await http.delete(f"/api/v1/posts/{post_id}", headers=author.auth)).status_code == 204
        state = await db.fetchval("SELECT state FROM media_uploads WHERE id = $1", uuid.UUID(upload_id))
        assert state == "deleted"
        objects = media_node.settings.media.local_dir / "media" / upload_id
        assert not objects.exists() or not any(p.is_file() for p in objects.rglob("*"))
        assert await db.fetchval("SELECT count(*) FROM media_objects WHERE id = $1", uuid.UUID(upload_id)) == 0
        again = await _create_upload(http, author, len(data))
        assert again.status_code == 201, again.text
        assert (await http.get(f"/api/v1/media/{upload_id}", headers=follower.auth)).status_code == 404
        assert (await http.get(f"/api/v1/posts/{post_id}", headers=author.auth)).status_code == 404
        profile = (await http.get(f"/api/v1/users/{author.id}", headers=author.auth)).json()
        assert profile["posts_count"] == 0


async def test_deleting_a_draft_ends_its_unfinished_upload(media_node: RunningNode, clip: Path,
                                                           db: asyncpg.Pool) -> None:
    size = clip.stat().st_size
    async with httpx.AsyncClient(base_url=media_node.http_url, timeout=60) as http:
        (author,) = await users(media_node, 1)
        created = await _create_upload(http, author, size)
        post_id = created.headers["Amaro-Post-Id"]
        upload_id = created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        assert (await _create_upload(http, author, size)).status_code == 413
        assert (await http.delete(f"/api/v1/posts/{post_id}", headers=author.auth)).status_code == 204
        assert await db.fetchval("SELECT state FROM media_uploads WHERE id = $1", uuid.UUID(upload_id)) == "terminated"
        assert (await _create_upload(http, author, size)).status_code == 201
        r = await http.post("/api/v1/posts", json={"post_id": post_id, "body": "back?"}, headers=author.auth)
        assert r.status_code == 404
