"""Posts' lifecycle: the one place that says how a post's state may change.

A media post starts as a draft when its upload starts (media/), moves on as the upload completes
or ends, and is published when NARA-1r says its media is good enough (nara/). Those parts never
write the ``posts`` table: they call ``PostStates`` (through protocols of their own) inside their
own transactions, so a post changes in the same commit as the upload or media row that moved it.
A text post is published as it is created (``insert_text``); its author deletes any post.

Every change is an event applied to the table below (h11's ``_state.py`` idea): the statement is
guarded by the states the event may leave, so a retried or late event changes nothing, and an
event no state accepts is a programming error, not a silent no-op.

================  =======================================  ==========
event             from                                     to
================  =======================================  ==========
media_received    draft                                    processing
upload_deleted    draft                                    deleted
upload_failed     draft                                    failed
media_ready       draft, processing, failed                published
media_failed      draft, processing, published             failed
author_deleted    draft, processing, published, failed     deleted
================  =======================================  ==========

Timeline order. ``posts.feed_seq`` is taken when a post is published (``_take_feed_seq``), from
the ``post_feed_seq`` sequence under a transaction-scoped advisory lock that is held until the
commit: publications therefore commit one after the other in ``feed_seq`` order, and a reader that
paged below N never misses a post committed later below N. The lock is taken by the last
statement before the commit, so it is held for one statement and the commit.

Announcing. Publishing in another process's transaction (NARA-1r's) cannot announce the post
itself: it sends ``NOTIFY amaro_feed_posts, 'published:<id>:<author>'``, delivered to the hubs only
if it commits, and a hub claims the announcement (feed/announce.py). Every other change of a post's
state notifies ``changed:<id>:<author>`` (hubs drop cached copies); a media upgrade of a published
post ``upgraded:<id>:<author>``. ``users.posts_count`` follows the state in the database (a trigger).
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from amaro.infra.connect import Conn
from amaro.infra.states import moves

#: The channel of post notifications, and the key of the lock ``feed_seq`` is taken under.
NOTIFY_CHANNEL = "amaro_feed_posts"
FEED_SEQ_LOCK = 0x616D61726F0F  # "amaro" + 0x0f: a key no other lock of the schema uses
KINDS = ("text", "image", "video")
VISIBILITIES = ("public", "followers", "private")


class PostState(StrEnum):
    DRAFT = "draft"
    PROCESSING = "processing"
    PUBLISHED = "published"
    FAILED = "failed"
    DELETED = "deleted"


class PostEvent(StrEnum):
    MEDIA_RECEIVED = "media_received"  # the upload's last byte landed and was verified
    UPLOAD_DELETED = "upload_deleted"  # the uploader deleted the unfinished upload
    UPLOAD_FAILED = "upload_failed"  # the upload expired unfinished or its content was refused
    MEDIA_READY = "media_ready"  # NARA-1r: good enough (or upgraded) to play
    MEDIA_FAILED = "media_failed"  # NARA-1r: the media cannot be played
    AUTHOR_DELETED = "author_deleted"  # the author deleted the post


S, E = PostState, PostEvent
TRANSITIONS: dict[PostState, dict[PostEvent, PostState]] = {
    S.DRAFT: {E.MEDIA_RECEIVED: S.PROCESSING, E.UPLOAD_DELETED: S.DELETED, E.UPLOAD_FAILED: S.FAILED,
              E.MEDIA_READY: S.PUBLISHED, E.MEDIA_FAILED: S.FAILED, E.AUTHOR_DELETED: S.DELETED},
    S.PROCESSING: {E.MEDIA_READY: S.PUBLISHED, E.MEDIA_FAILED: S.FAILED, E.AUTHOR_DELETED: S.DELETED},
    S.FAILED: {E.MEDIA_READY: S.PUBLISHED, E.AUTHOR_DELETED: S.DELETED},
    S.PUBLISHED: {E.MEDIA_FAILED: S.FAILED, E.AUTHOR_DELETED: S.DELETED},
    S.DELETED: {},
}


def transition(event: PostEvent) -> tuple[list[str], PostState]:
    """The states ``event`` may leave and the one it leads to."""
    return moves(TRANSITIONS, event)


async def _take_feed_seq(conn: Conn, post: uuid.UUID) -> int:
    """The post's place in timelines, in commit order: the lock is the transaction's until it ends,
    so the caller must commit right after this (one statement: lock, then the sequence)."""
    seq = await conn.fetchval(
        """WITH locked AS (SELECT pg_advisory_xact_lock($2::bigint))
           UPDATE posts SET feed_seq = nextval('post_feed_seq') FROM locked WHERE id = $1 RETURNING feed_seq""",
        post, FEED_SEQ_LOCK)
    assert seq is not None
    return int(seq)


async def insert_text(conn: Conn, post_id: str, author_id: str, body: str, visibility: str, *,
                      lease_s: float) -> int:
    """Insert a published text post (claimed for announcing by the caller for ``lease_s``, see
    feed/announce.py) and take its ``feed_seq``; commit right after."""
    post = uuid.UUID(post_id)
    await conn.execute(
        """INSERT INTO posts (id, author_id, kind, state, visibility, body, published_at, announce_until)
           VALUES ($1, $2, 'text', 'published', $3, $4, now(), now() + make_interval(secs => $5))""",
        post, uuid.UUID(author_id), visibility, body, lease_s)
    return await _take_feed_seq(conn, post)


class PostStates:
    """Post changes driven by uploads, media and authors, on the caller's connection (its transaction)."""

    async def create_draft(self, conn: Conn, post_id: str, author_id: str) -> None:
        await conn.execute("INSERT INTO posts (id, author_id, state) VALUES ($1, $2, $3)",
                           uuid.UUID(post_id), uuid.UUID(author_id), PostState.DRAFT.value)

    async def apply(self, conn: Conn, post_id: str, event: PostEvent, *, media_id: str | None = None,
                    author_id: str | None = None) -> bool:
        """Apply ``event`` to the post if its state allows; True when it changed. ``media_id``
        links the post to its media; ``author_id`` makes the change conditional on the author.
        Publishing goes through ``publish`` (it takes the post's place in timelines)."""
        if event is PostEvent.MEDIA_READY:
            return await self.publish(conn, post_id, media_id=media_id, author_id=author_id) is not None
        sources, target = transition(event)
        moved = await conn.fetchval(
            """UPDATE posts SET state = $2, media_id = coalesce($3, media_id), updated_at = now(),
                      deleted_at = CASE WHEN $2 = 'deleted' THEN now() ELSE deleted_at END
               WHERE id = $1 AND state = ANY($4::text[]) AND ($5::uuid IS NULL OR author_id = $5)
               RETURNING pg_notify($6, 'changed:' || id::text || ':' || author_id::text) IS NULL""",
            uuid.UUID(post_id), target.value, None if media_id is None else uuid.UUID(media_id), sources,
            None if author_id is None else uuid.UUID(author_id), NOTIFY_CHANNEL)
        return moved is not None

    async def publish(self, conn: Conn, post_id: str, *, media_id: str | None = None, author_id: str | None = None,
                      kind: str | None = None) -> int | None:
        """media_ready: publish the post if its state allows, with its place in timelines (its
        ``feed_seq``), to be announced once committed; None if it did not move. The caller commits
        right after (the feed order's lock is held until then)."""
        sources, target = transition(PostEvent.MEDIA_READY)
        post = uuid.UUID(post_id)
        moved = await conn.fetchval(
            """UPDATE posts SET state = $2, media_id = coalesce($3, media_id), kind = coalesce($6, kind),
                      published_at = now(), announced_at = NULL, announce_until = NULL, updated_at = now()
               WHERE id = $1 AND state = ANY($4::text[]) AND ($5::uuid IS NULL OR author_id = $5)
               RETURNING pg_notify($7, 'published:' || id::text || ':' || author_id::text) IS NULL""",
            post, target.value, None if media_id is None else uuid.UUID(media_id), sources,
            None if author_id is None else uuid.UUID(author_id), kind, NOTIFY_CHANNEL)
        if moved is None:
            return None
        return await _take_feed_seq(conn, post)

    # The protocols media/ and nara/ declare, in their words.

    async def media_received(self, conn: Conn, post_id: str, media_id: str) -> None:
        await self.apply(conn, post_id, PostEvent.MEDIA_RECEIVED, media_id=media_id)

    async def upload_ended(self, conn: Conn, post_id: str, *, deleted: bool) -> None:
        await self.apply(conn, post_id, PostEvent.UPLOAD_DELETED if deleted else PostEvent.UPLOAD_FAILED)

    async def media_ready(self, conn: Conn, post_id: str, media_id: str, author_id: str, kind: str = "video") -> None:
        """Good enough (or upgraded): the post is published, as an image or video post; a post
        published already upgrades in place (the hubs hear of it)."""
        media_kind = kind if kind in ("image", "video") else "video"
        if await self.publish(conn, post_id, media_id=media_id, author_id=author_id, kind=media_kind) is None:
            await conn.execute(
                """UPDATE posts SET kind = $3, updated_at = now()
                   WHERE id = $1 AND author_id = $2 AND state = 'published' AND kind <> 'text'
                   RETURNING pg_notify($4, 'upgraded:' || id::text || ':' || author_id::text) IS NULL""",
                uuid.UUID(post_id), uuid.UUID(author_id), media_kind, NOTIFY_CHANNEL)

    async def media_failed(self, conn: Conn, post_id: str, author_id: str) -> None:
        await self.apply(conn, post_id, PostEvent.MEDIA_FAILED, author_id=author_id)
