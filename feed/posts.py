"""Posts' lifecycle: the one place that says how a post's state may change.

A media post starts as a draft when its upload starts (media/), moves on as the upload completes
or ends, and is published when NARA-1r says its media is good enough (nara/). Those parts never
write the ``posts`` table: they call ``PostStates`` (through protocols of their own) inside their
own transactions, so a post changes in the same commit as the upload or media row that moved it.

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
================  =======================================  ==========
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from amaro.infra.connect import Conn
from amaro.infra.states import moves


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


S, E = PostState, PostEvent
TRANSITIONS: dict[PostState, dict[PostEvent, PostState]] = {
    S.DRAFT: {E.MEDIA_RECEIVED: S.PROCESSING, E.UPLOAD_DELETED: S.DELETED, E.UPLOAD_FAILED: S.FAILED,
              E.MEDIA_READY: S.PUBLISHED, E.MEDIA_FAILED: S.FAILED},
    S.PROCESSING: {E.MEDIA_READY: S.PUBLISHED, E.MEDIA_FAILED: S.FAILED},
    S.FAILED: {E.MEDIA_READY: S.PUBLISHED},
    S.PUBLISHED: {E.MEDIA_FAILED: S.FAILED},
    S.DELETED: {},
}


def transition(event: PostEvent) -> tuple[list[str], PostState]:
    """The states ``event`` may leave and the one it leads to."""
    return moves(TRANSITIONS, event)


class PostStates:
    """Post changes driven by uploads and media, on the caller's connection (its transaction)."""

    async def create_draft(self, conn: Conn, post_id: str, author_id: str) -> None:
        await conn.execute("INSERT INTO posts (id, author_id, state) VALUES ($1, $2, $3)",
                           uuid.UUID(post_id), uuid.UUID(author_id), PostState.DRAFT.value)

    async def apply(self, conn: Conn, post_id: str, event: PostEvent, *, media_id: str | None = None,
                    author_id: str | None = None) -> bool:
        """Apply ``event`` to the post if its state allows; True when it changed. ``media_id``
        links the post to its media; ``author_id`` makes the change conditional on the author."""
        sources, target = transition(event)
        moved = await conn.fetchval(
            """UPDATE posts SET state = $2, media_id = coalesce($3, media_id), updated_at = now()
               WHERE id = $1 AND state = ANY($4::text[]) AND ($5::uuid IS NULL OR author_id = $5)
               RETURNING 1""",
            uuid.UUID(post_id), target.value, None if media_id is None else uuid.UUID(media_id), sources,
            None if author_id is None else uuid.UUID(author_id))
        return moved is not None

    # The protocols media/ and nara/ declare, in their words.

    async def media_received(self, conn: Conn, post_id: str, media_id: str) -> None:
        await self.apply(conn, post_id, PostEvent.MEDIA_RECEIVED, media_id=media_id)

    async def upload_ended(self, conn: Conn, post_id: str, *, deleted: bool) -> None:
        await self.apply(conn, post_id, PostEvent.UPLOAD_DELETED if deleted else PostEvent.UPLOAD_FAILED)

    async def media_ready(self, conn: Conn, post_id: str, media_id: str, author_id: str) -> None:
        await self.apply(conn, post_id, PostEvent.MEDIA_READY, media_id=media_id, author_id=author_id)

    async def media_failed(self, conn: Conn, post_id: str, author_id: str) -> None:
        await self.apply(conn, post_id, PostEvent.MEDIA_FAILED, author_id=author_id)
