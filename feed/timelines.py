"""Timelines: home (the posts of the people I follow, and mine) and profile (an author's posts),
newest first, paged by ``feed_seq``, which follows commit order (posts.py): a page after cursor N
holds posts below N only, so paging never repeats a post and never skips one, whatever is
published meanwhile (new posts sort above the first page: they are the next refresh's).

Redis holds the recent part of every timeline as a ZSET of post ids scored by ``feed_seq``:

* ``tl:home:{<user>}``: pushed on publish (fan-out on write) for authors with at most
  ``celebrity_followers`` followers, trimmed to ``home_length``;
* ``tl:user:{<author>}``: every published post of the author, trimmed to ``profile_length``;
* ``tl:celebs``: the authors above the threshold. Their posts are not pushed: a home page merges
  the profile timelines of the celebrities the viewer follows at read time.

A timeline ZSET holds a marker member scored +inf once it was built from PostgreSQL, so a missing
or flushed timeline (no marker) differs from an empty one: it is rebuilt on read (merged into what
pushes put there meanwhile, never replacing it, so a post pushed during a rebuild stays). Below the
oldest entry of a full ZSET, pages come from PostgreSQL. Everything is filtered at read time by the
access rule (visibility, blocks, deleted posts), with facts from the caches: a warm page reads
Redis and the node's memory only.
"""

from __future__ import annotations

import asyncio
import heapq
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter, Histogram

from feed.config import FeedSettings
from feed.content import PostReader
from feed.viewers import Relations, Viewers, may_see

log = structlog.get_logger(__name__)

BUILT = b"~built"  # the marker member of a timeline built from PostgreSQL (score +inf)
CELEBS = "tl:celebs"
TTL_S = 7 * 24 * 3600  # a timeline nobody pushes to or reads for this long is rebuilt when read again
CELEBS_LOCAL_S = 1.0  # a new celebrity's posts are merged on every node within this
_ROUNDS = 6  # reads of a page before it answers with fewer items (a page full of hidden posts)

PAGES = Counter("amaro_feed_timeline_pages_total", "Timeline pages served", ["timeline"])
REBUILDS = Counter("amaro_feed_timeline_rebuilds_total", "Timelines rebuilt from PostgreSQL", ["timeline"])
DEEP = Counter("amaro_feed_timeline_deep_reads_total", "Timeline reads below Redis, from PostgreSQL", ["timeline"])
PUSHED = Counter("amaro_feed_timeline_pushed_total", "Home timelines a post was pushed into")
FANOUT = Histogram("amaro_feed_fanout_seconds", "Time to push a post into its followers' home timelines",
                   buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))


def home_key(user: str) -> str:
    return f"tl:home:{{{user}}}"


def profile_key(author: str) -> str:
    return f"tl:user:{{{author}}}"


@dataclass
class Source:
    """One ZSET a page reads (or PostgreSQL below it)."""

    key: str
    length: int
    deep: Callable[[int, int], Awaitable[list[tuple[str, int]]]]  # (below, limit) -> (id, seq) newest first
    exhausted: bool = False


_HOME_SQL = """
SELECT p.id::text AS id, p.feed_seq FROM unnest($1::uuid[]) AS a(author)
CROSS JOIN LATERAL (SELECT id, feed_seq FROM posts
                    WHERE author_id = a.author AND feed_seq IS NOT NULL AND feed_seq < $2 AND state = 'published'
                    ORDER BY feed_seq DESC LIMIT $3) p
ORDER BY p.feed_seq DESC LIMIT $3"""
_PROFILE_SQL = """
SELECT id::text AS id, feed_seq FROM posts
WHERE author_id = $1 AND feed_seq IS NOT NULL AND feed_seq < $2 AND state = 'published'
ORDER BY feed_seq DESC LIMIT $3"""
_TOP = 2**62
#: Push one post into one timeline: KEYS[1] the ZSET; ARGV post id, seq, length kept, TTL. The
#: marker (score +inf) is the highest member, so trimming by rank from the bottom never drops it.
_PUSH_LUA = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 2))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


class Timelines:
    def __init__(self, redis: aioredis.Redis, db: asyncpg.Pool, settings: FeedSettings, reader: PostReader,
                 viewers: Viewers) -> None:
        self.redis = redis
        self.db = db
        self.settings = settings
        self.reader = reader
        self.viewers = viewers
        self._rebuilds: dict[str, asyncio.Future[None]] = {}
        self._celebs: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._push_script = redis.register_script(_PUSH_LUA)

    # -- PostgreSQL -------------------------------------------------------------------------------------

    async def _home_rows(self, authors: Sequence[str], below: int, limit: int) -> list[tuple[str, int]]:
        rows = await self.db.fetch(_HOME_SQL, [uuid.UUID(a) for a in authors], below, limit)
        return [(r["id"], int(r["feed_seq"])) for r in rows]

    async def _profile_rows(self, author: str, below: int, limit: int) -> list[tuple[str, int]]:
        rows = await self.db.fetch(_PROFILE_SQL, uuid.UUID(author), below, limit)
        return [(r["id"], int(r["feed_seq"])) for r in rows]

    def _home_source(self, relations: Relations) -> Source:
        authors = sorted(relations.following | {relations.user})

        async def deep(below: int, limit: int) -> list[tuple[str, int]]:
            return await self._home_rows(authors, below, limit)

        return Source(home_key(relations.user), self.settings.home_length, deep)

    def _profile_source(self, author: str) -> Source:
        async def deep(below: int, limit: int) -> list[tuple[str, int]]:
            return await self._profile_rows(author, below, limit)

        return Source(profile_key(author), self.settings.profile_length, deep)

    # -- building ---------------------------------------------------------------------------------------

    async def _rebuild(self, source: Source, kind: str) -> None:
        """Fill ``source``'s ZSET from PostgreSQL and mark it built (one rebuild per key per node)."""
        running = self._rebuilds.get(source.key)
        if running is not None:
            await asyncio.shield(running)
            return
        flight: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rebuilds[source.key] = flight
        try:
            rows = await source.deep(_TOP, source.length)
            async with self.redis.pipeline(transaction=True) as pipe:
                if rows:
                    pipe.zadd(source.key, {post_id: seq for post_id, seq in rows})
                pipe.zadd(source.key, {BUILT: float("inf")})
                pipe.zremrangebyrank(source.key, 0, -(source.length + 2))
                pipe.expire(source.key, TTL_S)
                await pipe.execute()
            REBUILDS.labels(kind).inc()
            flight.set_result(None)
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()
            raise
        finally:
            self._rebuilds.pop(source.key, None)

    async def _celebrities(self) -> frozenset[str]:
        """The authors above the threshold (this node keeps the set for ``CELEBS_LOCAL_S``)."""
        now = time.monotonic()
        if self._celebs[0] > now:
            return self._celebs[1]
        members = await self.redis.smembers(CELEBS)
        if BUILT not in members:
            rows = await self.db.fetch("SELECT id::text AS id FROM users WHERE followers_count > $1",
                                       self.settings.celebrity_followers)
            members = {r["id"].encode() for r in rows} | {BUILT}
            await self.redis.sadd(CELEBS, *members)
        found = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members if m != BUILT)
        self._celebs = (now + CELEBS_LOCAL_S, found)
        return found

    # -- reading ----------------------------------------------------------------------------------------

    async def _windows(self, sources: Sequence[Source], below: int, limit: int,
                       kind: str) -> list[list[tuple[str, int]]]:
        """Up to ``limit`` entries of each source below ``below``, newest first, read in one Redis
        round trip for all of them (a home page merges the reader's home and the celebrities they
        follow); marks a source exhausted when nothing is left below its entries."""
        replies = await self._read_sets(sources, below, limit)
        missing = [i for i, reply in enumerate(replies) if reply[0] is None]
        if missing:  # lost or never built: rebuild from PostgreSQL, then read those again
            await asyncio.gather(*(self._rebuild(sources[i], kind) for i in missing))
            again = await self._read_sets([sources[i] for i in missing], below, limit)
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return list(await asyncio.gather(*(self._below_redis(source, reply, below, limit, kind)
                                           for source, reply in zip(sources, replies, strict=True))))

    async def _read_sets(self, sources: Sequence[Source], below: int, limit: int) -> list[list[Any]]:
        """Per source: its built marker's score, its size, its lowest entry, the page's entries."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for source in sources:
                pipe.zscore(source.key, BUILT)
                pipe.zcard(source.key)
                pipe.zrange(source.key, 0, 0, withscores=True)
                pipe.zrevrangebyscore(source.key, f"({below}", "-inf", start=0, num=limit, withscores=True)
            flat = await pipe.execute()
        return [flat[i:i + 4] for i in range(0, len(flat), 4)]

    async def _below_redis(self, source: Source, reply: list[Any], below: int, limit: int,
                           kind: str) -> list[tuple[str, int]]:
        _, size, lowest, entries = reply
        found = [(m.decode(), int(s)) for m, s in entries if m != BUILT]
        full = size - 1 >= source.length
        if len(found) >= limit:
            return found
        if not full:
            source.exhausted = True
            return found
        # The ZSET ends above what this page needs: the rest comes from PostgreSQL.
        floor = int(lowest[0][1]) if lowest and lowest[0][0] != BUILT else below
        DEEP.labels(kind).inc()
        rest = await source.deep(min(below, floor), limit - len(found))
        if len(rest) < limit - len(found):
            source.exhausted = True
        return found + rest

    async def _page(self, sources: list[Source], below: int, limit: int, kind: str,
                    keep: Callable[[dict[str, Any]], bool]) -> tuple[list[dict[str, Any]], int | None]:
        """Merge ``sources`` newest first, keep the visible posts: (posts, next ``below`` or None)."""
        PAGES.labels(kind).inc()
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(_ROUNDS):
            fetch = limit - len(out) + 4
            live = [s for s in sources if not s.exhausted]
            windows = await self._windows(live, below, fetch, kind)
            merged: list[tuple[str, int]] = []
            for entry in heapq.merge(*windows, key=lambda e: -e[1]):
                if entry[0] not in seen:
                    seen.add(entry[0])
                    merged.append(entry)
            # A source that answered ``fetch`` entries may hold more below its last one, between
            # other sources' entries: only what every such source answered for is final.
            bound = max((w[-1][1] for s, w in zip(live, windows, strict=True) if not s.exhausted and w), default=None)
            final = [e for e in merged[:fetch] if bound is None or e[1] >= bound]
            if not final:
                return out, None
            posts = await self.reader.many([post_id for post_id, _ in final])
            for i, (post_id, seq) in enumerate(final):
                below = seq
                post = posts.get(post_id)
                if post is not None and post["feed_seq"] == seq and keep(post):
                    out.append(post)
                    if len(out) == limit:
                        more = i + 1 < len(merged) or any(not s.exhausted for s in sources)
                        return out, seq if more else None
            for entry in merged[len(final):]:
                seen.discard(entry[0])  # not looked at yet: the next round reads it again
        return out, below

    async def home(self, viewer: str, before: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """A page of ``viewer``'s home timeline below ``before`` (None: the top)."""
        relations = await self.viewers.of(viewer)
        celebs = (await self._celebrities()) & relations.following
        sources = [self._home_source(relations), *(self._profile_source(c) for c in sorted(celebs))]
        authors = relations.following | {viewer}

        def keep(post: dict[str, Any]) -> bool:
            return post["author_id"] in authors and may_see(relations, post)

        return await self._page(sources, _TOP if before is None else before, limit, "home", keep)

    async def profile(self, viewer: str | None, author: str, before: int | None,
                      limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """A page of ``author``'s posts that ``viewer`` may see."""
        relations = None if viewer is None else await self.viewers.of(viewer)

        def keep(post: dict[str, Any]) -> bool:
            return post["author_id"] == author and may_see(relations, post)

        return await self._page([self._profile_source(author)], _TOP if before is None else before, limit,
                                "profile", keep)

    # -- writing ----------------------------------------------------------------------------------------

    async def fanout(self, author: str, post_id: str, seq: int, followers: Sequence[str]) -> int:
        """A post was published: into its author's profile timeline and home, and (an ordinary
        author) into each follower's home. Returns how many homes it was pushed into."""
        started = asyncio.get_running_loop().time()
        celebrity = len(followers) > self.settings.celebrity_followers
        homes = [author] if celebrity else [author, *followers]
        async with self.redis.pipeline(transaction=False) as pipe:
            await self._push(pipe, profile_key(author), post_id, seq, self.settings.profile_length)
            if celebrity:
                pipe.sadd(CELEBS, author)
            else:
                pipe.srem(CELEBS, author)
            dropped = (await pipe.execute())[1] == 1 and not celebrity
            if celebrity != (author in self._celebs[1]):
                self._celebs = (0.0, self._celebs[1])  # this node reads the set again
            for i in range(0, len(homes), 1000):  # a huge fan-out goes out in slices, not one reply buffer
                for user in homes[i:i + 1000]:
                    await self._push(pipe, home_key(user), post_id, seq, self.settings.home_length)
                await pipe.execute()
        if dropped:
            # No longer a celebrity: their posts were merged at read time, not pushed; the homes of
            # their followers are rebuilt with them.
            await self.forget_homes(followers)
        PUSHED.inc(len(homes))
        FANOUT.observe(asyncio.get_running_loop().time() - started)
        return len(homes)

    async def _push(self, pipe: Any, key: str, post_id: str, seq: int, length: int) -> None:
        """Queue on ``pipe``: add, trim and refresh one timeline, one command (a fan-out sends
        thousands). Awaiting only queues it (and has the pipeline load the script if needed)."""
        await self._push_script(keys=[key], args=[post_id, seq, length, TTL_S], client=pipe)

    async def remove(self, author: str, post_id: str, followers: Sequence[str]) -> None:
        """A post was deleted: out of its author's timelines and its followers' homes."""
        keys = [profile_key(author), home_key(author), *(home_key(f) for f in followers)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in range(0, len(keys), 1000):
                for key in keys[i:i + 1000]:
                    pipe.zrem(key, post_id)
                await pipe.execute()

    async def forget_homes(self, users: Sequence[str]) -> None:
        """Drop these users' home timelines: their next read rebuilds them (a follow changed)."""
        for i in range(0, len(users), 1000):
            await self.redis.delete(*(home_key(u) for u in users[i:i + 1000]))

    async def warm(self, user: str) -> int:
        """Prepare ``user``'s first home page: the timeline built, its posts in the caches."""
        posts, _ = await self.home(user, None, 20)
        await self.reader.views(posts)
        return len(posts) + 1
