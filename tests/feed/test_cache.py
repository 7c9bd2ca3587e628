"""The caches in front of PostgreSQL, measured on real nodes: a warm timeline page and a warm post
cost no query (counted on the node's own pool, wrapped), a cold hot post costs one however many
read it at once (on one node and across two), an edit is seen on another node within a second,
and a load that raced an invalidation never stores what it read."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from amaro.services import Services
from amaro.settings import Settings
from feed.cache import Cache
from tests.conftest import RunningNode, serve_node, with_node

from .postkit import follow, home, post, users

QUERIES = frozenset({"fetch", "fetchrow", "fetchval", "execute", "executemany"})


class CountingPool:
    """The node's pool, counting the statements run while serving HTTP requests (uvicorn runs each
    request in a task of its own; the nodes' background tasks are not counted)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._pool, name)
        if name not in QUERIES:
            return found

        async def counted(sql: str, *args: Any, **kw: Any) -> Any:
            self._note(sql)
            return await found(sql, *args, **kw)

        return counted

    def _note(self, sql: str) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_coro().__qualname__.endswith("run_asgi"):  # type: ignore[union-attr]
            self.statements.append(" ".join(sql.split()))

    def acquire(self, *args: Any, **kw: Any) -> Any:
        self._note("acquire")
        return self._pool.acquire(*args, **kw)

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[str]]:
        self.statements.clear()
        yield self.statements


@contextlib.asynccontextmanager
async def counted_nodes(settings: Settings, services: Services, n: int) -> AsyncIterator[
        tuple[CountingPool, list[RunningNode]]]:
    """``n`` nodes sharing one counting pool (and Redis)."""
    pool = CountingPool(services.db)
    counted = Services(redis=services.redis, db=pool)  # type: ignore[arg-type]
    feed = dataclasses.replace(settings.feed, announce_sweep_s=3600.0)
    async with contextlib.AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(serve_node(
            dataclasses.replace(with_node(settings, node_id=f"counted-{i}"), feed=feed), counted, uploads=False))
            for i in range(n)]
        yield pool, nodes


async def test_a_warm_page_costs_no_query(settings: Settings, services: Services) -> None:
    async with counted_nodes(settings, services, 1) as (pool, (node,)), \
            httpx.AsyncClient(base_url=node.http_url, timeout=30) as http:
        reader, a, b, c = await users(node, 4)
        for author in (a, b, c):
            await follow(http, reader, author)
        made = [await post(http, u, f"post {n}", "followers" if n % 2 else "public") for n, u in
                enumerate([a, b, c, a, b, c, reader])]
        with pool.counting() as cold:
            first, _ = await home(http, reader, limit=10)  # cold: the caches fill
        assert cold, "the wrapper counts nothing: the test would prove nothing"
        with pool.counting() as statements:
            warm, _ = await home(http, reader, limit=10)
            r = await http.get(f"/api/v1/posts/{made[0]['id']}", headers=reader.auth)
            profile = await http.get(f"/api/v1/users/{a.id}/posts", headers=reader.auth)
        assert statements == [], statements
        assert warm == first and len(warm) == 7
        assert r.status_code == 200 and profile.status_code == 200
        # A reaction on a post drops its totals from the caches: the next page shows them.
        await services.db.execute(
            "INSERT INTO reaction_counts (target_kind, target_id, emoji, count) VALUES ('post', $1, '🔥', 2)",
            made[6]["id"])
        assert (await home(http, reader, limit=10))[0][0]["reactions"] == {}  # still cached
        await Cache(services.redis, "reactions").invalidate(made[6]["id"])
        assert (await home(http, reader, limit=10))[0][0]["reactions"] == {"🔥": 2}


async def test_a_cold_hot_post_is_loaded_once(settings: Settings, services: Services, db: asyncpg.Pool) -> None:
    async with counted_nodes(settings, services, 2) as (pool, nodes):
        (author,) = await users(nodes[0], 1)
        post_id = uuid.uuid4()  # published by another process: in no cache yet
        await db.execute("""INSERT INTO posts (id, author_id, kind, state, visibility, body, feed_seq, published_at)
                            VALUES ($1, $2, 'text', 'published', 'public', 'hot', nextval('post_feed_seq'), now())""",
                         post_id, uuid.UUID(author.id))
        clients = [httpx.AsyncClient(base_url=n.http_url, timeout=30) for n in nodes]
        try:
            with pool.counting() as statements:
                answers = await asyncio.gather(*(clients[i % 2].get(f"/api/v1/posts/{post_id}") for i in range(200)))
            assert {a.status_code for a in answers} == {200}
            loads = [s for s in statements if "FROM posts WHERE id = $1" in s]
            assert len(loads) == 1, statements
        finally:
            for client in clients:
                await client.aclose()


async def test_an_edit_is_seen_on_another_node_within_a_second(settings: Settings, services: Services) -> None:
    async with counted_nodes(settings, services, 2) as (_, (one, two)), \
            httpx.AsyncClient(base_url=one.http_url, timeout=30) as writer, \
            httpx.AsyncClient(base_url=two.http_url, timeout=30) as reader:
        author, follower = await users(one, 2)
        await follow(writer, follower, author)
        item = await post(writer, author, "version 1")
        for _ in range(3):  # cached on the second node (its own tier and Redis)
            got = await reader.get(f"/api/v1/posts/{item['id']}", headers=follower.auth)
            assert got.json()["body"] == "version 1"
            assert (await home(reader, follower))[0][0]["body"] == "version 1"
        r = await writer.patch(f"/api/v1/posts/{item['id']}", json={"body": "version 2", "visibility": "private"},
                               headers=author.auth)
        assert r.status_code == 200
        edited = time.monotonic()
        while True:
            got = await reader.get(f"/api/v1/posts/{item['id']}", headers=follower.auth)
            page, _ = await home(reader, follower)
            if got.status_code == 404 and page == []:
                break
            assert time.monotonic() - edited < 1.0, "the edit did not reach the other node within a second"
            await asyncio.sleep(0.02)
        r = await writer.patch(f"/api/v1/posts/{item['id']}", json={"visibility": "public"}, headers=author.auth)
        assert r.status_code == 200
        while (await reader.get(f"/api/v1/posts/{item['id']}", headers=follower.auth)).status_code != 200:
            assert time.monotonic() - edited < 2.0
            await asyncio.sleep(0.02)
        assert (await reader.get(f"/api/v1/posts/{item['id']}")).json()["body"] == "version 2"


async def test_a_load_that_raced_an_invalidation_stores_nothing(redis: aioredis.Redis) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    here, there = Cache(redis, name), Cache(redis, name)  # two nodes
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_old() -> str:
        started.set()
        await release.wait()
        return "old"

    async def new() -> str:
        return "new"

    reading = asyncio.create_task(here.get("k", slow_old))
    await started.wait()
    await there.invalidate("k")  # the row changed while the read was under way
    here.drop_local("k")  # what the invalidation channel does on every node
    release.set()
    assert await reading == "old"  # that reader read before the change: it gets what it read
    assert await here.get("k", new) == "new"  # but nobody else does
    assert await there.get("k", new) == "new"
    # Batch reads likewise, and they fill both tiers.
    many = await there.get_many(["k", "a", "b"], _loader({"a": 1}))
    assert many == {"k": "new", "a": 1, "b": None}
    assert await Cache(redis, name).get_many(["a", "b"], _loader({})) == {"a": 1, "b": None}


def _loader(values: dict[str, Any]) -> Any:
    async def load(keys: list[str]) -> dict[str, Any]:
        return {k: values[k] for k in keys if k in values}

    return load


async def test_single_flight_on_one_node(redis: aioredis.Redis) -> None:
    cache = Cache(redis, f"flight-{uuid.uuid4().hex[:8]}")
    loads = 0

    async def load() -> dict[str, int]:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return {"n": 1}

    results = await asyncio.gather(*(cache.get("hot", load) for _ in range(1000)))
    assert loads == 1 and all(r == {"n": 1} for r in results)

