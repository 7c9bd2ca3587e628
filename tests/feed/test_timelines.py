"""Home and profile timelines against real Redis and PostgreSQL: newest first, pages that never
skip or repeat a post while others publish, the access rule at read time (visibility, blocks,
deletion, unfollows), hybrid fan-out (a celebrity's posts reach followers by the read-time merge),
rebuilt after FLUSHDB, and pages below what Redis keeps read from PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest_asyncio
import redis.asyncio as aioredis

from amaro.services import Services
from amaro.settings import Settings
from feed.config import FeedSettings
from feed.timelines import BUILT, CELEBS, home_key, profile_key
from tests.conftest import RunningNode, serve_node, with_node

from .postkit import User, block, error_code, follow, home, home_ids, http, post, until, users

__all__ = ["http"]


async def test_home_holds_mine_and_my_followees_newest_first(running_node: RunningNode,
                                                             http: httpx.AsyncClient) -> None:
    me, a, b, stranger = await users(running_node, 4)
    await follow(http, me, a)
    await follow(http, me, b)
    made = [await post(http, u, f"post {n}") for n, u in enumerate([a, me, b, stranger, a])]
    hidden = await post(http, b, "b alone", "private")
    ids = await home_ids(http, me, limit=2)
    assert ids == [made[4]["id"], made[2]["id"], made[1]["id"], made[0]["id"]]
    assert hidden["id"] not in ids
    items, _ = await home(http, me)
    assert items[0]["author"]["username"] == a.username and items[0]["reactions"] == {}
    # Unfollowing takes their posts out; deleting takes a post out.
    r = await http.delete(f"/api/v1/users/{b.id}/follow", headers=me.auth)
    assert r.status_code == 200
    assert (await http.delete(f"/api/v1/posts/{made[0]['id']}", headers=a.auth)).status_code == 204
    assert await until(lambda: _ids_are(http, me, [made[4]["id"], made[1]["id"]]))
    r = await http.get("/api/v1/timelines/home", headers=stranger.auth)
    assert [p["id"] for p in r.json()["items"]] == [made[3]["id"]]
    assert r.headers["cache-control"] == "no-store"


async def _ids_are(http: httpx.AsyncClient, user: User, expected: list[str]) -> bool:
    return await home_ids(http, user) == expected


async def test_profile_timeline_shows_what_the_viewer_may_see(running_node: RunningNode,
                                                              http: httpx.AsyncClient) -> None:
    author, follower, stranger, blocked = await users(running_node, 4)
    await follow(http, follower, author)
    public = await post(http, author, "for all")
    followers = await post(http, author, "for followers", "followers")
    private = await post(http, author, "for me", "private")

    async def seen(user: User | None) -> list[str]:
        r = await http.get(f"/api/v1/users/{author.id}/posts", headers=user.auth if user else {})
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["items"]]

    assert await seen(author) == [private["id"], followers["id"], public["id"]]
    assert await seen(follower) == [followers["id"], public["id"]]
    assert await seen(stranger) == [public["id"]]
    assert await seen(None) == [public["id"]]
    await block(http, author, blocked)
    for who, other in ((blocked, author), (author, blocked)):
        r = await http.get(f"/api/v1/users/{other.id}/posts", headers=who.auth)
        assert (r.status_code, error_code(r)) == (404, "not_found")
    r = await http.get(f"/api/v1/users/{uuid.uuid4()}/posts", headers=stranger.auth)
    assert r.status_code == 404
    for cursor in ("x", "AAAA", "'; --"):
        r = await http.get(f"/api/v1/users/{author.id}/posts", params={"cursor": cursor}, headers=author.auth)
        assert (r.status_code, error_code(r)) == (400, "bad_cursor")
    # A cursor of another list (someone's home) is no cursor here.
    for _ in range(3):
        await post(http, follower, "filler")
    _, home_cursor = await home(http, follower, limit=1)
    assert home_cursor is not None
    r = await http.get(f"/api/v1/users/{author.id}/posts", params={"cursor": home_cursor}, headers=follower.auth)
    assert r.status_code == 400
    r = await http.get("/api/v1/timelines/home", params={"cursor": home_cursor}, headers=author.auth)
    assert r.status_code == 400  # another viewer's


async def test_blocks_take_posts_out_of_timelines(running_node: RunningNode, http: httpx.AsyncClient) -> None:
    author, reader = await users(running_node, 2)
    await follow(http, reader, author)
    item = await post(http, author, "see me")
    assert (await home(http, reader))[0][0]["id"] == item["id"]
    await block(http, author, reader)
    items, _ = await home(http, reader)
    assert item["id"] not in [p["id"] for p in items]


async def test_pages_never_skip_or_repeat_while_others_publish(running_node: RunningNode,
                                                               http: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    reader, *authors = await users(running_node, 5)
    for author in authors:
        await follow(http, reader, author)
    before = [await post(http, authors[n % 4], f"before {n}") for n in range(30)]
    stop = asyncio.Event()

    async def write(author: User) -> None:
        n = 0
        while not stop.is_set():
            await post(http, author, f"during {n}")
            n += 1

    writers = [asyncio.create_task(write(a)) for a in authors]
    await asyncio.sleep(0.2)
    seen: list[str] = []
    cursor = None
    while True:
        items, cursor = await home(http, reader, limit=4, cursor=cursor)
        seen += [p["id"] for p in items]
        await asyncio.sleep(0.01)
        if cursor is None:
            break
    stop.set()
    await asyncio.gather(*writers)
    assert len(seen) == len(set(seen)), "a post came twice"
    assert {p["id"] for p in before} <= set(seen), "a post was skipped"
    seqs = await db.fetch("SELECT id::text AS id, feed_seq FROM posts WHERE id = ANY($1::uuid[])",
                          [uuid.UUID(i) for i in seen])
    order = {r["id"]: r["feed_seq"] for r in seqs}
    assert [order[i] for i in seen] == sorted((order[i] for i in seen), reverse=True)


@pytest_asyncio.fixture(loop_scope="session")
async def small_node(settings: Settings, services: Services) -> AsyncIterator[RunningNode]:
    """A node whose celebrities have more than 2 followers and whose timelines keep 5 posts."""
    feed = FeedSettings(celebrity_followers=2, home_length=5, profile_length=5, announce_sweep_s=0.5)
    tuned = dataclasses.replace(with_node(settings, node_id="timelines-small"), feed=feed)
    async with serve_node(tuned, services) as node:
        yield node


async def test_a_celebritys_posts_reach_followers_when_read(small_node: RunningNode, redis: aioredis.Redis) -> None:
    async with httpx.AsyncClient(base_url=small_node.http_url, timeout=30) as http:
        celebrity, ordinary, *fans = await users(small_node, 5)
        for fan in fans:
            await follow(http, fan, celebrity)
        await follow(http, fans[0], ordinary)
        star = await post(http, celebrity, "to my many fans")
        plain = await post(http, ordinary, "to my one follower")
        assert await redis.sismember(CELEBS, celebrity.id)
        assert await redis.zscore(home_key(fans[0].id), star["id"]) is None  # not pushed
        assert await redis.zscore(home_key(fans[0].id), plain["id"]) is not None  # pushed
        assert await redis.zscore(profile_key(celebrity.id), star["id"]) is not None
        assert await home_ids(http, fans[0]) == [plain["id"], star["id"]]  # merged when read
        assert await home_ids(http, fans[1]) == [star["id"]]
        assert await home_ids(http, celebrity) == [star["id"]]
        # Down to an ordinary account again: posts are pushed, and what was merged stays in homes.
        r = await http.delete(f"/api/v1/users/{celebrity.id}/follow", headers=fans[2].auth)
        assert r.status_code == 200
        later = await post(http, celebrity, "fewer fans now")
        assert not await redis.sismember(CELEBS, celebrity.id)
        assert await home_ids(http, fans[1]) == [later["id"], star["id"]]
        assert await home_ids(http, fans[0]) == [later["id"], plain["id"], star["id"]]


async def test_pages_below_redis_come_from_postgresql(small_node: RunningNode, redis: aioredis.Redis) -> None:
    async with httpx.AsyncClient(base_url=small_node.http_url, timeout=30) as http:
        author, reader = await users(small_node, 2)
        await follow(http, reader, author)
        made = [await post(http, author, f"n{n}") for n in range(12)]
        assert await redis.zcard(home_key(reader.id)) == 6  # 5 posts and the built marker
        assert await home_ids(http, reader, limit=4) == [p["id"] for p in reversed(made)]
        r = await http.get(f"/api/v1/users/{author.id}/posts", params={"limit": 50}, headers=reader.auth)
        assert [p["id"] for p in r.json()["items"]] == [p["id"] for p in reversed(made)]


async def forget_everything_the_feed_keeps(redis: aioredis.Redis) -> None:
    """What a flush does to the feed (timelines and shared caches gone), without a FLUSHDB that
    would also take the hub's streams and sessions from tests running beside this one."""
    for pattern in ("tl:*", "cache:*"):
        keys = [k async for k in redis.scan_iter(match=pattern, count=1000)]
        if keys:
            await redis.delete(*keys)


async def test_timelines_are_rebuilt_after_redis_is_flushed(running_node: RunningNode, http: httpx.AsyncClient,
                                                            redis: aioredis.Redis) -> None:
    reader, a, b = await users(running_node, 3)
    empty = await home_ids(http, reader)
    assert empty == [] and await redis.zscore(home_key(reader.id), BUILT) is not None  # built, and empty
    await follow(http, reader, a)
    await follow(http, reader, b)
    made = [await post(http, u, f"p{n}") for n, u in enumerate([a, b, a, reader])]
    expected = [p["id"] for p in reversed(made)]
    assert await home_ids(http, reader) == expected
    await forget_everything_the_feed_keeps(redis)
    assert await redis.exists(home_key(reader.id)) == 0
    assert await home_ids(http, reader) == expected
    assert await redis.zscore(home_key(reader.id), BUILT) is not None
    r = await http.get(f"/api/v1/users/{a.id}/posts", headers=reader.auth)
    assert [p["id"] for p in r.json()["items"]] == [made[2]["id"], made[0]["id"]]
    # A post pushed into a timeline nobody rebuilt yet is kept when it is rebuilt.
    await forget_everything_the_feed_keeps(redis)
    newer = await post(http, a, "after the flush")
    assert await home_ids(http, reader) == [newer["id"], *expected]
