"""Delivery: signed prefix URLs, object responses (types, caching, ETag, Range, traversal) and the
playback API's visibility rules, against a real node with catalog rows written by PgCatalog."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from amaro.parts import url_signer
from feed.posts import PostStates
from feed.tokens import TokenSigner
from media.config import PlaybackSettings
from media.playback import IMMUTABLE, UrlSigner, _parse_range
from nara.catalog import PgCatalog
from nara.job import Job
from tests.conftest import TEST_TOKEN_SECRET, RunningNode

GROWING = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:EVENT\n" \
          "#EXTINF:2.0,\nseg_00000.ts\n"
ENDED = GROWING + "#EXT-X-ENDLIST\n"


def _urls(*token_secrets: str, playback: PlaybackSettings | None = None) -> UrlSigner:
    """A signer as the root builds it: playback settings plus the token secrets (current first)."""
    return UrlSigner.from_settings(playback or PlaybackSettings(), token_secrets or (TEST_TOKEN_SECRET,))


def test_signature_covers_expiry_and_prefix() -> None:
    urls = _urls()
    up, other = str(uuid.uuid4()), str(uuid.uuid4())
    exp = urls.expires(now=1_000_000)
    url = urls.url(up, f"media/{up}/p1/master.m3u8", exp)
    _, m, e, sig, uid, *rest = url.split("/")
    assert (m, e, uid, rest) == ("m", str(exp), up, ["p1", "master.m3u8"])
    assert urls.check(exp, sig, up, now=1_000_000) is None
    assert urls.check(exp + 1, sig, up, now=1_000_000) == "bad_signature"
    assert urls.check(exp, sig, other, now=1_000_000) == "bad_signature"
    assert urls.check(exp, sig[:-1] + ("A" if sig[-1] != "A" else "B"), up, now=1_000_000) == "bad_signature"
    assert urls.check(exp, sig, up, now=exp) == "url_expired"
    with pytest.raises(ValueError):
        urls.url(up, f"media/{other}/p1/master.m3u8", exp)
    with pytest.raises(ValueError):
        urls.url(up, f"originals/aa/{up}", exp)


def test_expiry_is_bucketed_so_viewers_share_urls() -> None:
    urls = _urls()
    assert urls.ttl_s == 6 * 3600 and urls.bucket_s == 3600
    a, b = urls.expires(now=7201.0), urls.expires(now=7200.0 + 3600)
    assert a == b and a % 3600 == 0 and a - 7200 - 3600 >= urls.ttl_s


def test_media_key_is_not_the_token_key_and_rotates() -> None:
    derived = _urls()
    own = _urls(playback=PlaybackSettings(url_secret="m" * 40, url_ttl_s=600))
    assert derived.keys[0] != TEST_TOKEN_SECRET.encode() and own.keys != derived.keys and own.ttl_s == 600
    up = str(uuid.uuid4())
    old = _urls("o" * 40)
    rotated = _urls(TEST_TOKEN_SECRET, "o" * 40)  # "o" * 40 is now a previous token secret
    exp = 10_000
    sig = old.url(up, f"media/{up}/a.jpg", exp).split("/")[3]
    assert rotated.check(exp, sig, up, now=0) is None


def test_range_parsing() -> None:
    assert _parse_range("", 100) is None
    assert _parse_range("bytes=0-9", 100) == (0, 10)
    assert _parse_range("bytes=90-", 100) == (90, 100)
    assert _parse_range("bytes=-10", 100) == (90, 100)
    assert _parse_range("bytes=50-500", 100) == (50, 100)
    assert _parse_range("bytes=100-", 100) == "unsatisfiable"
    assert _parse_range("bytes=0-1,5-6", 100) is None
    assert _parse_range("items=0-1", 100) is None


# --- against a node ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Item:
    owner: str
    token: str
    upload_id: str
    post_id: str


def _token(user_id: str) -> str:
    return TokenSigner(TEST_TOKEN_SECRET.encode()).issue(user_id, str(uuid.uuid4()))


async def _user(db: asyncpg.Pool) -> tuple[str, str]:
    user = str(uuid.uuid4())
    await db.execute("INSERT INTO users (id, username, password_hash) VALUES ($1, $2, 'x')",
                     uuid.UUID(user), f"pb{secrets.token_hex(6)}")
    return user, _token(user)


async def _item(db: asyncpg.Pool, root: Path, visibility: str, *, upgraded: bool = True) -> Item:
    owner, token = await _user(db)
    upload, post = str(uuid.uuid4()), str(uuid.uuid4())
    await db.execute("INSERT INTO posts (id, author_id, state, visibility) VALUES ($1, $2, 'processing', $3)",
                     uuid.UUID(post), uuid.UUID(owner), visibility)
    base = root / "media" / upload
    (base / "fast-1" / "fast").mkdir(parents=True)
    (base / "p1" / "240p").mkdir(parents=True)
    (base / "fast-1" / "fast" / "index.m3u8").write_text(GROWING)
    (base / "fast-1" / "fast" / "seg_00000.ts").write_bytes(b"\x47" * 188 * 10)
    (base / "fast-1" / "poster.jpg").write_bytes(b"\xff\xd8\xff" + b"j" * 500)
    (base / "p1" / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n240p/index.m3u8\n")
    (base / "p1" / "240p" / "index.m3u8").write_text(ENDED)
    (base / "p1" / "preview.mp4").write_bytes(bytes(range(256)) * 40)
    (base / "plan.json").write_text("{}")
    job = Job(upload, upload, owner, post, "k", "video/mp4", 1)
    catalog = PgCatalog(db, PostStates())
    await catalog.record(job, "good_enough", {
        "kind": "video", "playlist": f"media/{upload}/fast-1/fast/index.m3u8",
        "poster": f"media/{upload}/fast-1/poster.jpg", "placeholder": "data:image/jpeg;base64,xx"})
    if upgraded:
        await catalog.record(job, "upgraded", {
            "kind": "video", "plan_id": "p1", "master": f"media/{upload}/p1/master.m3u8",
            "renditions": [{"name": "240p", "width": 426, "height": 240,
                            "playlist": f"media/{upload}/p1/240p/index.m3u8"}],
            "preview": f"media/{upload}/p1/preview.mp4", "poster": f"media/{upload}/fast-1/poster.jpg"})
    return Item(owner, token, upload, post)


@pytest_asyncio.fixture(loop_scope="session")
async def http(running_node: RunningNode) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running_node.http_url, timeout=10) as client:
        yield client


@pytest.fixture
def store_root(running_node: RunningNode) -> Path:
    return running_node.settings.media.local_dir


def _signer(running_node: RunningNode) -> UrlSigner:
    return url_signer(running_node.settings)  # the node's own signer, as the root builds it


async def _get_media(http: httpx.AsyncClient, item: Item, token: str) -> httpx.Response:
    return await http.get(f"/api/v1/media/{item.upload_id}", headers={"Authorization": f"Bearer {token}"})


async def test_playback_api_and_objects(http: httpx.AsyncClient, db: asyncpg.Pool, store_root: Path) -> None:
    item = await _item(db, store_root, "public")
    r = await _get_media(http, item, item.token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"], body["kind"]) == ("upgraded", "video")
    assert r.headers["cache-control"] == "private, no-store"
    urls = body["urls"]
    assert urls["playlist"] == urls["master"] and urls["master"].endswith("/p1/master.m3u8")
    assert body["renditions"][0]["url"].endswith("/p1/240p/index.m3u8")
    assert await db.fetchval("SELECT state FROM posts WHERE id = $1", uuid.UUID(item.post_id)) == "published"

    master = await http.get(urls["master"])
    assert master.status_code == 200
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert master.headers["cache-control"] == IMMUTABLE
    # Relative URIs resolve under the same signed prefix.
    variant = await http.get(str(httpx.URL(urls["master"]).join("240p/index.m3u8")))
    assert variant.status_code == 200 and variant.headers["cache-control"] == IMMUTABLE

    fast = await http.get(urls["fast"])
    assert fast.status_code == 200 and fast.headers["cache-control"] == "no-cache"
    etag = fast.headers["etag"]
    assert (await http.get(urls["fast"], headers={"If-None-Match": etag})).status_code == 304
    seg = await http.get(str(httpx.URL(urls["fast"]).join("seg_00000.ts")))
    assert seg.status_code == 200 and seg.headers["content-type"] == "video/mp2t"
    assert seg.headers["cache-control"] == IMMUTABLE and seg.content == b"\x47" * 1880
    assert (await http.get(str(seg.url), headers={"If-None-Match": seg.headers["etag"]})).status_code == 304

    poster = await http.get(urls["poster"])
    assert poster.headers["content-type"] == "image/jpeg" and poster.headers["cache-control"] == IMMUTABLE

    full = bytes(range(256)) * 40
    part = await http.get(urls["preview"], headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == full[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(full)}"
    tail = await http.get(urls["preview"], headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == full[-10:]
    bad = await http.get(urls["preview"], headers={"Range": f"bytes={len(full)}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(full)}"
    whole = await http.get(urls["preview"])
    assert whole.status_code == 200 and whole.content == full and whole.headers["accept-ranges"] == "bytes"
    assert (await http.head(urls["preview"])).headers["content-length"] == str(len(full))


async def test_bad_urls(http: httpx.AsyncClient, db: asyncpg.Pool, store_root: Path,
                        running_node: RunningNode) -> None:
    item = await _item(db, store_root, "public")
    other = await _item(db, store_root, "public")
    signer = _signer(running_node)
    exp = signer.expires()
    prefix = signer.prefix(item.upload_id, exp)
    assert (await http.get(prefix + "p1/master.m3u8")).status_code == 200
    # Tampered signature, expiry or id.
    _, _m, e, sig, uid = prefix.rstrip("/").split("/")
    forged = sig[:-2] + ("AA" if not sig.endswith("AA") else "BB")
    for path in (f"/m/{e}/{forged}/{uid}/p1/master.m3u8", f"/m/{int(e) + 3600}/{sig}/{uid}/p1/master.m3u8",
                 f"/m/{e}/{sig}/{other.upload_id}/p1/master.m3u8", f"/m/{e}/{sig}/{uid.upper()}/p1/master.m3u8"):
        r = await http.get(path)
        assert r.status_code == 403 and r.json()["error"]["code"] == "bad_signature", path
    # Expired: a correct signature whose time has passed.
    past = 3600 * 10
    expired = signer.prefix(item.upload_id, past) + "p1/master.m3u8"
    r = await http.get(expired)
    assert r.status_code == 403 and r.json()["error"]["code"] == "url_expired"
    # Missing objects, objects that are not outputs, and attempts to climb out of the prefix.
    for rest in ("p1/nothing.ts", "plan.json", "p1", "%2e%2e/%2e%2e/originals/x", "..%2f..%2ffeed",
                 ".hidden.ts", "p1/240p/../../../x.ts", f"%2e%2e/{other.upload_id}/p1/master.m3u8"):
        r = await http.get(prefix + rest)  # (a client may normalise "..": then no route matches)
        assert r.status_code in (404, 403, 307), (rest, r.status_code)
        assert not r.content.startswith(b"#EXTM3U"), rest
    # A raw path the client does not normalise reaches the route with ".." in it.
    url = http.base_url.copy_with(raw_path=f"{prefix}../{other.upload_id}/p1/master.m3u8".encode())
    r = await http.send(http.build_request("GET", url))
    assert r.status_code in (403, 404) and "error" in r.json()


async def test_visibility(http: httpx.AsyncClient, db: asyncpg.Pool, store_root: Path) -> None:
    _, stranger_token = await _user(db)
    follower, follower_token = await _user(db)
    public = await _item(db, store_root, "public")
    followers = await _item(db, store_root, "followers")
    private = await _item(db, store_root, "private")
    await db.execute("INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2)",
                     uuid.UUID(follower), uuid.UUID(followers.owner))
    expected = {
        (public, stranger_token): 200, (public, follower_token): 200,
        (followers, stranger_token): 404, (followers, follower_token): 200, (followers, followers.token): 200,
        (private, stranger_token): 404, (private, private.token): 200,
    }
    for (item, token), status in expected.items():
        r = await _get_media(http, item, token)
        assert r.status_code == status, (item, r.text)
        if status == 404:
            assert r.json() == {"error": {"code": "not_found", "message": "no such media"}}
    # Unknown and malformed ids look the same as hidden ones.
    assert (await http.get(f"/api/v1/media/{uuid.uuid4()}",
                           headers={"Authorization": f"Bearer {stranger_token}"})).status_code == 404
    r = await http.get("/api/v1/media/nope", headers={"Authorization": f"Bearer {stranger_token}"})
    assert r.status_code == 404
    r = await http.get(f"/api/v1/media/{public.upload_id}")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = await _get_media(http, public, "at1.forged.token")
    assert r.status_code == 401
    # A post that is not published is its owner's alone.
    await db.execute("UPDATE posts SET state = 'deleted' WHERE id = $1", uuid.UUID(public.post_id))
    assert (await _get_media(http, public, stranger_token)).status_code == 404
    assert (await _get_media(http, public, public.token)).status_code == 200


async def test_good_enough_plays_the_fast_rendition(http: httpx.AsyncClient, db: asyncpg.Pool,
                                                    store_root: Path) -> None:
    item = await _item(db, store_root, "public", upgraded=False)
    body = (await _get_media(http, item, item.token)).json()
    assert body["state"] == "good_enough" and body["urls"]["master"] is None
    assert body["urls"]["playlist"] == body["urls"]["fast"]
    assert (await http.get(body["urls"]["playlist"])).headers["cache-control"] == "no-cache"
