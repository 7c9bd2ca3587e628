"""Posts as content: text posts published at once, media posts composed on their upload's draft,
edits and deletion by the author, and how a post reads (the post map behind ``api.caches.posts``,
the answer a viewer gets).

The post map (the cached value, the same for every reader; ``None`` for an unknown id):

==================  =================================================================
field               meaning
==================  =================================================================
``id``              the post id
``author_id``       its author
``kind``            ``text`` | ``image`` | ``video`` (NARA-1r's word for media posts)
``state``           the lifecycle state (posts.py); a deleted post keeps only its facts
``visibility``      ``public`` | ``followers`` | ``private``
``body``            at most ``MAX_BODY`` code points
``media_id``        the upload whose media the post shows (``GET /api/v1/media/<id>``)
``feed_seq``        its place in timelines, once published
``comments_count``  exact: moved in the transaction that adds or deletes a comment
``created_at``      ISO 8601; ``published_at``, ``edited_at`` likewise, or None
==================  =================================================================

Who may see a post is ``feed.access``'s rule, asked through ``viewers.may_see`` with the cached
facts. Whoever changes a post's row invalidates its key; the hubs drop their copies when another
process (an upload, NARA-1r) moves a post's state (feed/announce.py).
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
import structlog

from amaro.infra.connect import Conn
from feed.posts import PostEvent, PostStates, insert_text
from feed.profiles import Profiles, small
from feed.viewers import Relations, Viewers, may_see
from feed.web import ApiError, not_found

if TYPE_CHECKING:
    from feed.app import FeedApi

log = structlog.get_logger(__name__)

MAX_BODY = 5000
#: How a post's lifecycle state reads to its author (others only ever see published posts).
#: How few may see a post of each visibility: a change to a higher number takes readers away.
NARROWNESS = {"public": 0, "followers": 1, "private": 2}
SHOWN_STATE = {"draft": "processing", "processing": "processing", "published": "published", "failed": "failed"}
_COLUMNS = """id::text AS id, author_id::text AS author_id, kind, state, visibility, body, media_id::text AS media_id,
              feed_seq, comments_count, created_at, published_at, edited_at,
              (SELECT private FROM users WHERE users.id = posts.author_id) AS author_private"""


class Announcing(Protocol):
    """The announcer (feed/announce.py): what follows a publication and a deletion."""

    async def announce_claimed(self, post_id: str) -> None: ...

    async def deleted(self, post: Mapping[str, Any], *, was_published: bool) -> None: ...


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def post_map(row: asyncpg.Record) -> dict[str, Any]:
    deleted = row["state"] == "deleted"
    return {
        "id": row["id"], "author_id": row["author_id"], "kind": row["kind"], "state": row["state"],
        "visibility": row["visibility"], "body": "" if deleted else row["body"], "media_id": row["media_id"],
        "feed_seq": row["feed_seq"], "comments_count": int(row["comments_count"]),
        "created_at": _iso(row["created_at"]), "published_at": _iso(row["published_at"]),
        "edited_at": _iso(row["edited_at"]), "author_private": bool(row["author_private"]),
    }


def body_problem(body: str) -> str | None:
    """Line breaks and tabs are text; other control characters are not."""
    if len(body) > MAX_BODY:
        return f"must be at most {MAX_BODY} characters"
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in body):
        return "must not contain control characters other than line breaks and tabs"
    return None


def _uuids(ids: Sequence[str]) -> list[uuid.UUID]:
    return [uuid.UUID(i) for i in ids]


class PostReader:
    """Post maps, their reaction totals and their authors, from the caches."""

    def __init__(self, api: FeedApi, viewers: Viewers, profiles: Profiles) -> None:
        self.api = api
        self.db = api.db
        self.viewers = viewers
        self.profiles = profiles

    async def _load_many(self, ids: list[str]) -> dict[str, Any]:
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM posts WHERE id = ANY($1::uuid[])",  # noqa: S608
                                   _uuids(ids))
        return {r["id"]: post_map(r) for r in rows}

    async def one(self, post_id: str) -> dict[str, Any] | None:
        """The post map of ``post_id`` (a canonical UUID); single flight on a cold key."""

        async def load() -> dict[str, Any] | None:
            row = await self.db.fetchrow(f"SELECT {_COLUMNS} FROM posts WHERE id = $1",  # noqa: S608
                                         uuid.UUID(post_id))
            return None if row is None else post_map(row)

        found: dict[str, Any] | None = await self.api.caches.posts.get(post_id, load)
        return found

    async def many(self, post_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The post maps of ``post_ids`` that exist."""
        found = await self.api.caches.posts.get_many(post_ids, self._load_many)
        return {k: v for k, v in found.items() if v is not None}

    async def reactions(self, post_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        async def load(ids: list[str]) -> dict[str, Any]:
            counts = await self.api.reactions.counts_of("post", ids)
            return {i: counts.get(i, {}) for i in ids}  # none yet is a value too: cached like the others

        found = await self.api.caches.reactions.get_many(post_ids, load)
        return {k: dict(v or {}) for k, v in found.items()}

    async def visible(self, viewer: str | None, post_id: str) -> tuple[dict[str, Any], Relations | None]:
        """The post map if the viewer (None: anonymous) may see it, else 404 like an unknown id."""
        post = await self.one(post_id)
        relations = None if viewer is None else await self.viewers.of(viewer)
        if post is None or not may_see(relations, post):
            raise not_found("no such post")
        return post, relations

    async def views(self, posts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The answers for ``posts`` (already checked for the viewer): with their author and reaction
        totals; posts whose author has no profile (a disabled account) are left out."""
        reactions = await self.reactions([p["id"] for p in posts])
        authors: dict[str, dict[str, Any] | None] = {}
        out = []
        for post in posts:
            author_id = post["author_id"]
            if author_id not in authors:
                authors[author_id] = await self.profiles.get(author_id)
            author = authors[author_id]
            if author is not None:
                out.append(view(post, small(author), reactions.get(post["id"], {})))
        return out


def view(post: Mapping[str, Any], author: Mapping[str, Any], reactions: Mapping[str, int]) -> dict[str, Any]:
    return {
        "id": post["id"], "author": dict(author), "kind": post["kind"],
        "state": SHOWN_STATE.get(post["state"], "failed"), "visibility": post["visibility"], "body": post["body"],
        "media_id": post["media_id"],
        "comments_count": post["comments_count"], "reactions": dict(reactions), "created_at": post["created_at"],
        "published_at": post["published_at"], "edited_at": post["edited_at"],
    }


class Posts:
    """Writes of posts by their authors. Every refusal raises ``ApiError`` before anything changed."""

    def __init__(self, api: FeedApi, reader: PostReader, announcer: Announcing) -> None:
        self.api = api
        self.db = api.db
        self.reader = reader
        self.announcer = announcer
        self.states = PostStates()

    async def create_text(self, author: str, body: str, visibility: str) -> dict[str, Any]:
        post_id = str(uuid.uuid4())
        async with self.db.acquire() as conn, conn.transaction():
            await insert_text(conn, post_id, author, body, visibility, lease_s=LEASE_S)
        try:
            await self.announcer.announce_claimed(post_id)
        except Exception as exc:  # published: the sweep announces it once the lease runs out
            log.warning("post_announce_failed", post_id=post_id, error=type(exc).__name__)
        return await self._fresh(post_id)

    async def compose(self, author: str, post_id: str, body: str | None, visibility: str | None,
                      kind: str | None) -> dict[str, Any]:
        """Body, visibility (and kind, until NARA-1r says) of a media post: its upload's draft, still
        processing or already published (then it reads as the author wrote it from now on). What is
        not given stays as it is."""
        row = await self.db.fetchrow(
            """UPDATE posts SET body = coalesce($3, body), visibility = coalesce($4, visibility), updated_at = now(),
                      kind = CASE WHEN state = 'published' OR $5::text IS NULL THEN kind ELSE $5 END
               WHERE id = $1 AND author_id = $2 AND kind <> 'text' AND state IN ('draft', 'processing', 'published')
               RETURNING state""",
            uuid.UUID(post_id), uuid.UUID(author), body, visibility, kind)
        if row is None:
            state = await self.db.fetchval(
                "SELECT state FROM posts WHERE id = $1 AND author_id = $2 AND kind <> 'text'",
                uuid.UUID(post_id), uuid.UUID(author))
            if state == "failed":
                raise ApiError("media_failed", "this post's media could not be processed; upload it again", 409)
            raise not_found("no such post")
        await self.api.caches.posts.invalidate(post_id)
        return await self._fresh(post_id)

    async def _own(self, author: str, post_id: str) -> dict[str, Any]:
        """The author's own post (not deleted); 404 if the viewer may not see it, 403 if they may
        but it is not theirs."""
        post, _ = await self.reader.visible(author, post_id)
        if post["author_id"] != author:
            raise ApiError("not_author", "only the author may change or delete this post", 403)
        return post

    async def edit(self, author: str, post_id: str, body: str | None, visibility: str | None) -> dict[str, Any]:
        post = await self._own(author, post_id)
        if body is not None and body == "" and post["kind"] == "text":
            raise ApiError("invalid_field", "'body' of a text post must not be empty", 422)
        changed = await self.db.fetchval(
            """UPDATE posts SET body = coalesce($3, body), visibility = coalesce($4, visibility), updated_at = now(),
                      edited_at = CASE WHEN $3::text IS NOT NULL AND $3 <> body THEN now() ELSE edited_at END
               WHERE id = $1 AND author_id = $2 AND state <> 'deleted' RETURNING 1""",
            uuid.UUID(post_id), uuid.UUID(author), body, visibility)
        if changed is None:
            raise not_found("no such post")
        await self.api.caches.posts.invalidate(post_id)
        fresh = await self._fresh(post_id)
        changes = [name for name, value in (("body", body), ("visibility", visibility))
                   if value is not None and value != post[name]]
        if changes:
            await self._tell(author, "post.updated", {"post": {"id": post_id}, "changes": changes})
        if visibility is not None and NARROWNESS[visibility] > NARROWNESS[post["visibility"]]:
            try:  # those who may no longer see it stop watching it live, on every node
                await self.api.events.recheck(f"post:{post_id}")
            except Exception as exc:  # committed: their next subscribe is refused anyway
                log.warning("post_recheck_failed", post_id=post_id, error=type(exc).__name__)
        return fresh

    async def delete(self, author: str, post_id: str) -> None:
        post = await self._own(author, post_id)
        async with self.db.acquire() as conn, conn.transaction():
            state = await conn.fetchval("SELECT state FROM posts WHERE id = $1 FOR UPDATE", uuid.UUID(post_id))
            if state is None or state == "deleted":
                raise not_found("no such post")
            await self.states.apply(conn, post_id, PostEvent.AUTHOR_DELETED, author_id=author)
            if post["kind"] == "text":
                await _released(conn, post_id)
        await self.api.caches.posts.invalidate(post_id)
        try:
            await self.announcer.deleted(post, was_published=state == "published")
        except Exception as exc:  # deleted: reads filter it out; the sweep releases its media
            log.warning("post_delete_followup_failed", post_id=post_id, error=type(exc).__name__)

    async def _fresh(self, post_id: str) -> dict[str, Any]:
        post = await self.reader.one(post_id)
        shown = await self.reader.views([post] if post is not None else [])
        if not shown:  # deleted meanwhile, or its author's account was disabled
            raise not_found("no such post")
        return shown[0]

    async def _tell(self, user: str, kind: str, data: dict[str, object]) -> None:
        try:
            await self.api.events.feed_update(user, kind, data)
        except Exception as exc:  # committed already: a lost live event is logged, never the request's failure
            log.warning("post_event_failed", kind=kind, error=type(exc).__name__)


#: How long a node that published a post has to announce it before the sweep takes over.
LEASE_S = 30.0


async def _released(conn: Conn | asyncpg.Pool, post_id: str) -> None:
    await conn.execute("UPDATE posts SET media_released_at = now() WHERE id = $1 AND media_released_at IS NULL",
                       uuid.UUID(post_id))


async def release_media(api: FeedApi, post_id: str) -> None:
    """A deleted post's media goes back to its owner's quota (media/), then is marked done."""
    await api.media.post_deleted(post_id)
    await _released(api.db, post_id)
