"""Comments: on a published post the commenter may see, one level of replies (a reply's parent is a
top-level comment of the same post), deleted by their author or the post's author.

Order. A comment takes the post's next ``comments_seq`` under the post's row lock, in the same
statement that counts it (``posts.comments_count``, exact), so comments are numbered in commit
order: a page after cursor N never misses a comment committed later. The same lock keeps a
comment off a post being deleted (the delete waits, or the comment finds the post gone: 404).

Live, after the commit: an ``event`` frame on ``post:<id>`` (``{"type": "comment.created",
"comment": {...}}``; ``comment.deleted`` likewise with ``comment_id``) for everyone watching the
post, and a ``comment.created`` feed frame to the post's watchers (its author and its commenters,
``post_watchers``) who may still see the post, except the commenter and anyone a block stands
between with them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog

from feed.access import can_see_post
from feed.content import PostReader, body_problem
from feed.profiles import Profiles, small
from feed.viewers import Viewers, facts
from feed.web import ApiError, invalid, not_found

if TYPE_CHECKING:
    from feed.app import FeedApi

log = structlog.get_logger(__name__)

MAX_COMMENT = 2000
MAX_WATCHERS_TOLD = 1000  # feed frames for one comment; the post channel carries it to everyone else


#: A post's watchers but the commenter, with the facts the access rule needs about each of them.
_WATCHERS = """
SELECT w.user_id::text AS u,
       EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = w.user_id AND f.followee_id = $2) AS follows,
       EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = w.user_id AND b.blocked_id = $2)
                                         OR (b.blocker_id = $2 AND b.blocked_id = w.user_id)) AS blocked
FROM post_watchers w WHERE w.post_id = $1 AND w.user_id <> $3 ORDER BY w.created_at LIMIT $4"""


def comment_view(row: asyncpg.Record, author: Mapping[str, Any]) -> dict[str, Any]:
    parent = row["parent_id"]
    return {"id": str(row["id"]), "post_id": str(row["post_id"]), "parent_id": None if parent is None else str(parent),
            "author": dict(author), "body": row["body"], "created_at": row["created_at"].isoformat()}


def comment_problem(body: str) -> str | None:
    if len(body) > MAX_COMMENT:
        return f"must be at most {MAX_COMMENT} characters"
    return body_problem(body)


class Comments:
    def __init__(self, api: FeedApi, reader: PostReader, viewers: Viewers, profiles: Profiles) -> None:
        self.api = api
        self.db = api.db
        self.reader = reader
        self.viewers = viewers
        self.profiles = profiles

    async def create(self, user: str, post_id: str, body: str, parent_id: str | None) -> dict[str, Any]:
        post, _ = await self.reader.visible(user, post_id)
        if post["state"] != "published":
            raise ApiError("not_published", "comments open once the post is published", 409)
        me = await self.profiles.get(user)
        if me is None:
            raise not_found("no such user")
        pid, comment_id = uuid.UUID(post_id), uuid.uuid4()
        async with self.db.acquire() as conn, conn.transaction():
            seq = await conn.fetchval(
                """UPDATE posts SET comments_count = comments_count + 1, comments_seq = comments_seq + 1
                   WHERE id = $1 AND state = 'published' RETURNING comments_seq""", pid)
            if seq is None:
                raise not_found("no such post")
            if parent_id is not None:  # under the post's lock: a comment's deletion takes it too
                parent = await conn.fetchval(
                    """SELECT 1 FROM comments WHERE id = $1 AND post_id = $2 AND parent_id IS NULL
                       AND deleted_at IS NULL""", uuid.UUID(parent_id), pid)
                if parent is None:
                    raise invalid("parent_id", "must name a top-level comment of this post")
            row = await conn.fetchrow(
                """INSERT INTO comments (id, post_id, author_id, parent_id, body, seq) VALUES ($1, $2, $3, $4, $5, $6)
                   RETURNING id, post_id, parent_id, body, created_at""",
                comment_id, pid, uuid.UUID(user), None if parent_id is None else uuid.UUID(parent_id), body, seq)
            await conn.execute("INSERT INTO post_watchers (post_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                               pid, uuid.UUID(user))
        assert row is not None
        await self.api.caches.posts.invalidate(post_id)
        comment = comment_view(row, small(me))
        await self._announce(user, post, comment)
        return comment

    async def _announce(self, user: str, post: Mapping[str, Any], comment: dict[str, Any]) -> None:
        post_id = post["id"]
        try:
            await self.api.events.channel_event(f"post:{post_id}", user,
                                                {"type": "comment.created", "comment": comment},
                                                idem_key=f"comment:{comment['id']}")
            commenter = await self.viewers.of(user)
            told = [post["author_id"]] if post["author_id"] not in commenter.blocked | {user} else []
            for row in await self.db.fetch(_WATCHERS, uuid.UUID(post_id), uuid.UUID(post["author_id"]),
                                           uuid.UUID(user), MAX_WATCHERS_TOLD):
                watcher = row["u"]
                if watcher in told or watcher in commenter.blocked:
                    continue
                if can_see_post(watcher, facts(post), bool(row["follows"]), bool(row["blocked"])):
                    told.append(watcher)
            if told:
                await self.api.events.feed_updates(
                    told, "comment.created",
                    {"post": {"id": post_id}, "comment": {"id": comment["id"], "parent_id": comment["parent_id"],
                                                          "author": comment["author"]}},
                    idem_key=f"comment.created:{comment['id']}")
        except Exception as exc:  # committed already: a lost live event is logged, never the request's failure
            log.warning("comment_event_failed", error=type(exc).__name__)

    async def delete(self, user: str, comment_id: str) -> None:
        row = await self.db.fetchrow(
            """SELECT c.post_id::text AS post_id, c.author_id::text AS author_id FROM comments c
               WHERE c.id = $1 AND c.deleted_at IS NULL""", uuid.UUID(comment_id))
        if row is None:
            raise not_found("no such comment")
        post, _ = await self.reader.visible(user, row["post_id"])
        if user not in (row["author_id"], post["author_id"]):
            raise ApiError("not_author", "only the comment's author or the post's author may delete it", 403)
        async with self.db.acquire() as conn, conn.transaction():
            # The post's row first (the order every comment write takes), then the comment and its replies.
            await conn.execute("SELECT 1 FROM posts WHERE id = $1 FOR UPDATE", uuid.UUID(post["id"]))
            gone = await conn.fetch(
                """UPDATE comments SET deleted_at = now()
                   WHERE (id = $1 OR parent_id = $1) AND deleted_at IS NULL RETURNING id""", uuid.UUID(comment_id))
            if not gone:
                raise not_found("no such comment")
            await conn.execute("UPDATE posts SET comments_count = comments_count - $2 WHERE id = $1",
                               uuid.UUID(post["id"]), len(gone))
        await self.api.caches.posts.invalidate(post["id"])
        try:
            await self.api.events.channel_event(f"post:{post['id']}", user,
                                                {"type": "comment.deleted", "comment_id": comment_id},
                                                idem_key=f"comment.deleted:{comment_id}")
        except Exception as exc:
            log.warning("comment_event_failed", error=type(exc).__name__)

    async def page(self, viewer: str | None, post_id: str, after: int,
                   limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """Comments of a post the viewer may see, oldest first, after position ``after``; and the
        position after this page (None: nothing was left)."""
        await self.reader.visible(viewer, post_id)
        rows = await self.db.fetch(
            """SELECT id, post_id, parent_id, author_id::text AS author_id, body, created_at, seq FROM comments
               WHERE post_id = $1 AND seq > $2 AND deleted_at IS NULL ORDER BY seq LIMIT $3""",
            uuid.UUID(post_id), after, limit + 1)
        relations = None if viewer is None else await self.viewers.of(viewer)
        out = []
        for row in rows[:limit]:
            if relations is not None and row["author_id"] in relations.blocked:
                continue  # nothing of a user a block stands between with the viewer
            author = await self.profiles.get(row["author_id"])
            if author is not None:
                out.append(comment_view(row, small(author)))
        # A comment list grows at its end: the position after the last comment read, even at the
        # end (a client asks again from there later); None only for an empty page.
        return out, int(rows[:limit][-1]["seq"]) if rows else None
