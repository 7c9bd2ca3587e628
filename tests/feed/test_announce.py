"""Announcing a post published in another process's transaction (as NARA-1r publishes media
posts): exactly once across hubs, after the commit only, and taken over by the sweep when the
notification was missed or the node that claimed it died."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx

from amaro.services import Services
from amaro.settings import Settings
from amaro_client import Client
from feed.announce import ANNOUNCED
from feed.posts import PostStates
from tests.conftest import RunningNode, serve_node, with_node

from .postkit import User, follow, home_ids, next_feed, no_feed, users


@contextlib.asynccontextmanager
async def hubs(settings: Settings, services: Services, n: int) -> AsyncIterator[list[RunningNode]]:
    feed = dataclasses.replace(settings.feed, announce_sweep_s=0.3)
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(serve_node(
            dataclasses.replace(with_node(settings, node_id=f"announcing-{i}"), feed=feed), services, uploads=False))
            for i in range(n)]


async def _draft(db: asyncpg.Pool, author: User) -> str:
    post_id = str(uuid.uuid4())
    async with db.acquire() as conn:
        await PostStates().create_draft(conn, post_id, author.id)
        await conn.execute("UPDATE posts SET body = 'from a worker' WHERE id = $1", uuid.UUID(post_id))
    return post_id


def _announced() -> float:
    return sum(sample.value for metric in ANNOUNCED.collect() for sample in metric.samples
               if sample.name.endswith("_total"))


async def test_a_post_published_elsewhere_is_announced_once(settings: Settings, services: Services,
                                                            db: asyncpg.Pool) -> None:
    async with hubs(settings, services, 2) as nodes, httpx.AsyncClient(base_url=nodes[0].http_url) as http:
        author, follower = await users(nodes[0], 2)
        await follow(http, follower, author)
        post_id = await _draft(db, author)
        async with Client(nodes[1].ws_url, token=follower.token) as fc:
            await fc.subscribe(f"user:{follower.id}")
            before = _announced()
            conn = await asyncpg.connect(settings.services.database_url)  # "the worker's" own connection
            try:
                async with conn.transaction():
                    await PostStates().media_ready(conn, post_id, str(uuid.uuid4()), author.id, kind="image")
                    await asyncio.sleep(0.3)  # not committed: nobody may hear of it yet
                    await no_feed(fc, "post.created", 0.2)
            finally:
                await conn.close()
            frame = await next_feed(fc, "post.created", lambda f: f.data["post"]["id"] == post_id)
            assert frame.data["post"]["kind"] == "image"
            await no_feed(fc, "post.created", 0.5)
        assert _announced() - before == 1
        row = await db.fetchrow("SELECT announced_at, kind, feed_seq FROM posts WHERE id = $1", uuid.UUID(post_id))
        assert row["announced_at"] is not None and row["kind"] == "image" and row["feed_seq"] is not None
        assert await home_ids(http, follower) == [post_id]
        events = await db.fetchval(
            "SELECT count(*) FROM channel_events WHERE channel = $1 AND kind = 'feed' AND idem_key LIKE $2",
            f"user:{follower.id}", f"post.created:{post_id}:%")
        assert events == 1


async def test_the_sweep_takes_over_from_a_dead_node(settings: Settings, services: Services,
                                                     db: asyncpg.Pool) -> None:
    async with hubs(settings, services, 1) as (node,), httpx.AsyncClient(base_url=node.http_url) as http:
        author, follower = await users(node, 2)
        await follow(http, follower, author)
        claimed, unheard = await _draft(db, author), await _draft(db, author)
        async with Client(node.ws_url, token=follower.token) as fc:
            await fc.subscribe(f"user:{follower.id}")
            async with db.acquire() as conn, conn.transaction():
                # A node claimed this one, then died before announcing it: its lease runs out.
                await PostStates().media_ready(conn, claimed, str(uuid.uuid4()), author.id)
                await conn.execute("UPDATE posts SET announce_until = now() + interval '1 second' WHERE id = $1",
                                   uuid.UUID(claimed))
            async with db.acquire() as conn, conn.transaction():
                # Published with no hub listening: the notification is lost.
                await conn.execute("""UPDATE posts SET state = 'published', published_at = now(),
                                      feed_seq = nextval('post_feed_seq') WHERE id = $1""", uuid.UUID(unheard))
            got = set()
            for _ in range(2):
                got.add((await next_feed(fc, "post.created", timeout_s=10)).data["post"]["id"])
            assert got == {claimed, unheard}
        assert set(await home_ids(http, follower)) == {claimed, unheard}
