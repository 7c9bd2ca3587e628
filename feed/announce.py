"""Announcing: what follows a post's publication, once its transaction committed, exactly once
whichever process published it, even when a node dies halfway.

* A text post is published by a hub's request, which claims its announcement in the publishing
  transaction (a lease, ``posts.announce_until``) and announces it right after the commit.
* A media post is published inside NARA-1r's transaction, in a worker: that transaction sends
  ``NOTIFY amaro_feed_posts, 'published:<id>:<author>'`` (posts.py), which PostgreSQL delivers
  to every hub listening (``LISTEN``, a connection of its own) only once it commits. Each hub tries
  to claim the post (``UPDATE ... SET announce_until = now() + lease WHERE announced_at IS NULL AND
  (no lease or an expired one) RETURNING``): one wins.
* Announcing is: the post into timelines (timelines.py, awaited), then ``post.created`` feed frames
  to the author's followers (unless the post is private) and the author, then ``announced_at``.
  Every step is idempotent (timeline entries are set members, feed frames carry an idempotency
  key), so a claim whose node died is simply taken over: a periodic sweep claims published posts
  that are not announced and whose lease is absent or ran out (a notification nobody heard, a node
  that died) and announces them again.

The same listener hears ``changed:`` and ``upgraded:`` notifications (a post's state moved in an
upload's or NARA-1r's transaction: cached copies are dropped; an upgrade is ``post.updated`` to the
author) and graph changes (``amaro_feed_graph``: a follow or block: the two users' relations and the
follower's home timeline are dropped, whoever changed the rows). The sweep also finishes deleted
posts whose media was not released yet (a node died between the deletion and the release).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from prometheus_client import Counter

from feed.content import LEASE_S, PostReader, release_media
from feed.graph import GRAPH_CHANNEL
from feed.posts import NOTIFY_CHANNEL
from feed.profiles import Profiles, small
from feed.timelines import Timelines
from feed.viewers import Viewers

if TYPE_CHECKING:
    from feed.app import FeedApi

log = structlog.get_logger(__name__)

EVENT_BATCH = 2048  # recipients per feed_updates call: two fan-out transactions
SWEEP_GRACE_S = 2.0  # a fresh publication is the listeners' first
KEEPALIVE_S = 5.0

ANNOUNCED = Counter("amaro_feed_posts_announced_total", "Published posts announced, by how they were claimed", ["how"])

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class Announcer:
    def __init__(self, api: FeedApi, reader: PostReader, timelines: Timelines, viewers: Viewers,
                 profiles: Profiles) -> None:
        self.api = api
        self.db = api.db
        self.reader = reader
        self.timelines = timelines
        self.viewers = viewers
        self.profiles = profiles
        self.listening = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []

    # -- announcing -------------------------------------------------------------------------------------

    async def announce_claimed(self, post_id: str) -> None:
        """Announce a post this node claimed when it published it (a text post)."""
        row = await self.db.fetchrow(
            """SELECT id::text AS id, author_id::text AS author_id, feed_seq, visibility, kind FROM posts
               WHERE id = $1 AND state = 'published' AND announced_at IS NULL""", uuid.UUID(post_id))
        if row is not None:
            await self._announce(row, "request")

    async def claim(self, post_id: str, how: str) -> bool:
        """Claim the announcement of a published post and make it; False if it is someone else's
        (or done)."""
        row = await self.db.fetchrow(
            """UPDATE posts SET announce_until = now() + make_interval(secs => $2)
               WHERE id = $1 AND state = 'published' AND announced_at IS NULL
                 AND (announce_until IS NULL OR announce_until < now())
               RETURNING id::text AS id, author_id::text AS author_id, feed_seq, visibility, kind""",
            uuid.UUID(post_id), LEASE_S)
        if row is None:
            return False
        await self._announce(row, how)
        return True

    async def _followers(self, author: str) -> list[str]:
        rows = await self.db.fetch("SELECT follower_id::text AS f FROM follows WHERE followee_id = $1",
                                   uuid.UUID(author))
        return [r["f"] for r in rows]

    async def _announce(self, row: asyncpg.Record, how: str) -> None:
        post_id, author, seq = row["id"], row["author_id"], int(row["feed_seq"])
        followers = await self._followers(author)
        await self.timelines.fanout(author, post_id, seq, followers)
        await self.api.caches.posts.invalidate(post_id)
        await self.profiles.invalidate(author)  # posts_count moved
        recipients = [author] if row["visibility"] == "private" else [author, *followers]
        self.spawn(self._tell(post_id, author, seq, str(row["kind"]), str(row["visibility"]), recipients, how))

    async def _tell(self, post_id: str, author: str, seq: int, kind: str, visibility: str, recipients: list[str],
                    how: str) -> None:
        profile = await self.profiles.get(author)
        data: dict[str, object] = {"post": {"id": post_id, "kind": kind, "visibility": visibility,
                                            "author": small(profile) if profile is not None else {"id": author}}}
        key = f"post.created:{post_id}:{seq}"
        for i in range(0, len(recipients), EVENT_BATCH):
            await self.api.events.feed_updates(recipients[i:i + EVENT_BATCH], "post.created", data, idem_key=key)
        await self.db.execute(
            "UPDATE posts SET announced_at = now(), announce_until = NULL WHERE id = $1 AND feed_seq = $2",
            uuid.UUID(post_id), seq)
        ANNOUNCED.labels(how).inc()

    async def deleted(self, post: Mapping[str, Any], *, was_published: bool) -> None:
        """The author deleted ``post`` (committed): out of timelines, its media back to the quota,
        its followers told."""
        post_id, author = post["id"], post["author_id"]
        followers = await self._followers(author)
        pushed = followers if len(followers) <= self.api.settings.celebrity_followers else []
        await self.timelines.remove(author, post_id, pushed)
        if was_published:
            await self.profiles.invalidate(author)
        if post["kind"] != "text":
            try:
                await release_media(self.api, post_id)
            except Exception as exc:  # the sweep finishes it
                log.warning("post_media_release_failed", post_id=post_id, error=type(exc).__name__)
        if was_published:
            recipients = [author] if post["visibility"] == "private" else [author, *followers]
            self.spawn(self._tell_deleted(post_id, author, recipients))

    async def _tell_deleted(self, post_id: str, author: str, recipients: list[str]) -> None:
        await self.api.events.channel_event(f"post:{post_id}", author, {"type": "post.deleted", "post_id": post_id},
                                            idem_key=f"post.deleted:{post_id}")
        for i in range(0, len(recipients), EVENT_BATCH):
            await self.api.events.feed_updates(recipients[i:i + EVENT_BATCH], "post.deleted", {"post": {"id": post_id}},
                                               idem_key=f"post.deleted:{post_id}")

    # -- notifications ----------------------------------------------------------------------------------

    def _on_post(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        what, _, rest = str(payload).partition(":")
        post_id, _, author = rest.partition(":")
        if what == "published":
            self.spawn(self.claim(post_id, "notify"))
        elif what in ("changed", "upgraded"):
            self.spawn(self._changed(post_id, author, upgraded=what == "upgraded"))

    async def _changed(self, post_id: str, author: str, *, upgraded: bool) -> None:
        await self.api.caches.posts.invalidate(post_id)
        await self.profiles.invalidate(author)
        if upgraded:
            await self.api.events.feed_update(author, "post.updated", {"post": {"id": post_id}, "changes": ["media"]},
                                              idem_key=f"post.upgraded:{post_id}")

    def _on_graph(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        what, _, rest = str(payload).partition(":")
        a, _, b = rest.partition(":")
        if what == "private":
            self.spawn(self.went_private(a))
        else:
            self.spawn(self.graph_changed(a, b, follow=what == "follow"))

    async def graph_changed(self, a: str, b: str, *, follow: bool) -> None:
        """A follow (``a`` follows ``b``) or a block between ``a`` and ``b`` began or ended: cached
        relations go, and the two users' live post subscriptions on this node are asked again
        (an unfollow ends a followers-only post's, a block every post's of the other)."""
        await self.viewers.changed(a, b)
        if follow:
            await self.timelines.forget_homes([a])
        await self.api.watchers.recheck_user(a, "post")
        if not follow:
            await self.api.watchers.recheck_user(b, "post")

    async def went_private(self, author: str) -> None:
        """``author`` made their account private: the subscribers of their posts on this node who
        do not follow them stop watching."""
        watched = self.api.watchers.watched("post")
        if not watched:
            return
        rows = await self.db.fetch("SELECT id::text AS id FROM posts WHERE author_id = $1 AND id = ANY($2::uuid[])",
                                   uuid.UUID(author), [uuid.UUID(p) for p in watched])
        for row in rows:
            await self.api.watchers.recheck(f"post:{row['id']}")

    # -- tasks ------------------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("feed_announce_failed", error=repr(task.exception()))

    async def idle(self) -> None:
        """Wait for the work under way (tests, draining)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def start(self, connect: Connect, sweep_s: float) -> None:
        if not self._loops:
            self._loops = [asyncio.create_task(self._listen(connect), name="feed-announce-listen"),
                           asyncio.create_task(self._sweeping(sweep_s), name="feed-announce-sweep")]

    async def stop(self) -> None:
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)
        self._loops = []
        self.listening.clear()

    async def _listen(self, connect: Connect) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect()
                await conn.add_listener(NOTIFY_CHANNEL, self._on_post)
                await conn.add_listener(GRAPH_CHANNEL, self._on_graph)
                self.listening.set()
                await self.sweep(grace_s=0.0)  # whatever was published while nobody here listened
                while True:
                    await asyncio.sleep(KEEPALIVE_S)
                    await conn.execute("SELECT 1")  # notices a connection that died quietly
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed_listen_lost", error=type(exc).__name__)
                self.listening.clear()
                await asyncio.sleep(1.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 5)

    async def _sweeping(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed_sweep_failed", error=type(exc).__name__)

    async def sweep(self, *, grace_s: float = SWEEP_GRACE_S, limit: int = 100) -> int:
        """Announce published posts nobody announced (their lease absent or run out) and release the
        media of deleted posts still holding it. Returns how many posts it took care of."""
        rows = await self.db.fetch(
            """SELECT id::text AS id FROM posts
               WHERE state = 'published' AND announced_at IS NULL
                 AND (announce_until IS NULL OR announce_until < now())
                 AND published_at < now() - make_interval(secs => $1)
               ORDER BY published_at LIMIT $2""", grace_s, limit)
        done = 0
        for row in rows:
            done += await self.claim(row["id"], "sweep")
        deleted = await self.db.fetch(
            """SELECT id::text AS id FROM posts WHERE deleted_at IS NOT NULL AND media_released_at IS NULL
                 AND deleted_at < now() - make_interval(secs => $1) ORDER BY deleted_at LIMIT $2""",
            max(grace_s, LEASE_S), limit)
        for row in deleted:
            await release_media(self.api, row["id"])
            done += 1
        return done
