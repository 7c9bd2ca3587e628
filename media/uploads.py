"""The upload records in PostgreSQL: the one source of truth every node resumes from.

An upload's lifecycle is the table ``TRANSITIONS`` below, and every state change goes through it:
each is one statement (or one transaction) guarded by the states the event may leave, so a retried
or concurrent request can never apply it twice, and an event no state accepts is refused.

==========  ==================  ==========  =================================
event       from                to          the upload's post (feed/)
==========  ==================  ==========  =================================
publish     uploading           complete    media received: processing
enqueue     complete            enqueued
terminate   uploading           terminated  deleted
expire      uploading           expired     failed
reject      uploading           rejected    failed
delete      complete, enqueued  deleted     (the post was deleted first)
==========  ==================  ==========  =================================

An upload holds its bytes against the user's quota until it ends: terminated, expired, rejected,
or deleted with its post.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from amaro.infra import states
from media.crypto import Header
from media.errors import TusError, not_found, too_large
from media.runtime import DraftPosts


class UploadState(StrEnum):
    UPLOADING = "uploading"
    COMPLETE = "complete"  # every byte stored and verified, the object published
    ENQUEUED = "enqueued"  # its job is on the workers' stream
    TERMINATED = "terminated"  # deleted by the uploader
    EXPIRED = "expired"  # unfinished past its expiry
    REJECTED = "rejected"  # its content was refused
    DELETED = "deleted"  # its post was deleted: quota returned, objects removed


class UploadEvent(StrEnum):
    PUBLISH = "publish"
    ENQUEUE = "enqueue"
    TERMINATE = "terminate"
    EXPIRE = "expire"
    REJECT = "reject"
    DELETE = "delete"


S, E = UploadState, UploadEvent
TRANSITIONS: dict[UploadState, dict[UploadEvent, UploadState]] = {
    S.UPLOADING: {E.PUBLISH: S.COMPLETE, E.TERMINATE: S.TERMINATED, E.EXPIRE: S.EXPIRED, E.REJECT: S.REJECTED},
    S.COMPLETE: {E.ENQUEUE: S.ENQUEUED, E.DELETE: S.DELETED},
    S.ENQUEUED: {E.DELETE: S.DELETED},
    S.TERMINATED: {},
    S.EXPIRED: {},
    S.REJECTED: {},
    S.DELETED: {},
}
#: Uploads that hold their bytes against the user's quota (and, unfinished, an open-upload slot).
LIVE_STATES = (S.UPLOADING.value, S.COMPLETE.value, S.ENQUEUED.value)
#: Endings before the last byte, by the event that ends them.
ENDINGS = {S.TERMINATED: E.TERMINATE, S.EXPIRED: E.EXPIRE, S.REJECTED: E.REJECT}


def moves(event: UploadEvent) -> tuple[list[str], UploadState]:
    """The states ``event`` may leave and the one it leads to."""
    return states.moves(TRANSITIONS, event)


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    user_id: str
    post_id: str
    state: UploadState
    length: int
    offset: int
    object_key: str
    multipart_id: str
    parts: tuple[str, ...]
    tail_key: str | None
    header: Header
    content_type: str | None
    metadata: dict[str, str]
    active_ms: int
    created_at: dt.datetime
    expires_at: dt.datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Upload:
        return cls(
            id=str(row["id"]), user_id=str(row["user_id"]), post_id=str(row["post_id"]),
            state=UploadState(row["state"]), length=row["length"], offset=row["offset"], object_key=row["object_key"],
            multipart_id=row["multipart_id"], parts=tuple(row["parts"]), tail_key=row["tail_key"],
            header=Header.decode(bytes(row["header"])), content_type=row["content_type"],
            metadata=dict(row["metadata"]), active_ms=row["active_ms"], created_at=row["created_at"],
            expires_at=row["expires_at"],
        )

    def expired(self, now: dt.datetime | None = None) -> bool:
        return self.state == UploadState.UPLOADING and (now or dt.datetime.now(dt.UTC)) >= self.expires_at


def valid_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def create(db: asyncpg.Pool, posts: DraftPosts, *, upload_id: str, user_id: str, length: int, object_key: str,
                 multipart_id: str, header: Header, metadata: dict[str, str], expires_at: dt.datetime,
                 quota: int, max_open: int) -> Upload:
    """Insert the draft post and the upload in one transaction, inside the user's quota and
    open-upload limit (each open upload holds a multipart object and a draft post)."""
    post_id = str(uuid.uuid4())
    async with db.acquire() as conn, conn.transaction():
        # Serialise creations per user so two concurrent ones cannot both fit the last free bytes.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('media-quota:' || $1::text))", user_id)
        usage = await conn.fetchrow(
            """SELECT coalesce(sum(length), 0), count(*) FILTER (WHERE state = 'uploading')
               FROM media_uploads WHERE user_id = $1 AND state = ANY($2::text[])""",
            user_id, list(LIVE_STATES))
        assert usage is not None
        used, open_count = usage[0], usage[1]
        if open_count >= max_open:
            raise TusError(f"at most {max_open} unfinished uploads per user; finish or delete one first",
                           status=429, code="too_many_uploads")
        if used + length > quota:
            raise too_large(f"storage quota exceeded: {used} of {quota} bytes used, {length} more requested")
        await posts.create_draft(conn, post_id, user_id)
        row = await conn.fetchrow(
            """INSERT INTO media_uploads (id, user_id, post_id, length, object_key, multipart_id, header,
                                          metadata, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *""",
            upload_id, user_id, post_id, length, object_key, multipart_id, header.encode(), metadata, expires_at)
    assert row is not None
    return Upload.from_row(row)


async def load(db: asyncpg.Pool, upload_id: str, user_id: str) -> Upload:
    """The user's upload; an unknown, malformed or other user's id is the same 404."""
    if not valid_uuid(upload_id):
        raise not_found()
    row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", upload_id)
    if row is None or str(row["user_id"]) != user_id:
        raise not_found()
    return Upload.from_row(row)


async def load_any(db: asyncpg.Pool, upload_id: str) -> Upload | None:
    row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", upload_id)
    return None if row is None else Upload.from_row(row)


async def commit(db: asyncpg.Pool, upload: Upload, *, offset: int, parts: list[str], tail_key: str | None,
                 content_type: str | None, active_ms: int) -> Upload:
    """Record progress made from ``upload.offset``; 409 if someone else moved the upload meanwhile."""
    row = await db.fetchrow(
        """UPDATE media_uploads SET "offset" = $3, parts = $4, tail_key = $5,
                  content_type = coalesce(content_type, $6), active_ms = active_ms + $7, updated_at = now()
           WHERE id = $1 AND state = 'uploading' AND "offset" = $2 RETURNING *""",
        upload.id, upload.offset, offset, parts, tail_key, content_type, active_ms)
    if row is None:
        raise TusError("the upload moved while this request was writing it", status=409, code="offset_mismatch")
    return Upload.from_row(row)


async def publish(db: asyncpg.Pool, posts: DraftPosts, upload: Upload) -> Upload | None:
    """uploading -> complete: record the object, and its post moves to processing. None if done already."""
    sources, target = moves(UploadEvent.PUBLISH)
    async with db.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """UPDATE media_uploads SET state = $2, completed_at = now(), updated_at = now()
               WHERE id = $1 AND state = ANY($3::text[]) AND "offset" = length RETURNING *""",
            upload.id, target.value, sources)
        if row is None:
            return None
        done = Upload.from_row(row)
        await conn.execute(
            """INSERT INTO media_objects (id, user_id, post_id, object_key, content_type, size, key_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING""",
            done.id, done.user_id, done.post_id, done.object_key, done.content_type or "application/octet-stream",
            done.length, done.header.key_id)
        await posts.media_received(conn, done.post_id, done.id)
    return done


async def mark_enqueued(db: asyncpg.Pool, upload_id: str) -> None:
    """complete -> enqueued (nothing if it is not complete)."""
    sources, target = moves(UploadEvent.ENQUEUE)
    await db.execute(
        "UPDATE media_uploads SET state = $2, updated_at = now() WHERE id = $1 AND state = ANY($3::text[])",
        upload_id, target.value, sources)


async def end(db: asyncpg.Pool, posts: DraftPosts, upload: Upload, ending: UploadState) -> Upload | None:
    """uploading -> terminated | expired | rejected, and the draft post follows. None if not uploading."""
    sources, target = moves(ENDINGS[ending])
    async with db.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """UPDATE media_uploads SET state = $2, tail_key = NULL, updated_at = now()
               WHERE id = $1 AND state = ANY($3::text[]) RETURNING *""", upload.id, target.value, sources)
        if row is None:
            return None
        await posts.upload_ended(conn, upload.post_id, deleted=ending is UploadState.TERMINATED)
    return Upload.from_row(row)


async def delete(db: asyncpg.Pool, upload_id: str) -> Upload | None:
    """complete | enqueued -> deleted (its post is gone). None if it was in neither state."""
    sources, target = moves(UploadEvent.DELETE)
    row = await db.fetchrow(
        """UPDATE media_uploads SET state = $2, tail_key = NULL, updated_at = now()
           WHERE id = $1 AND state = ANY($3::text[]) RETURNING *""", upload_id, target.value, sources)
    return None if row is None else Upload.from_row(row)


async def of_post(db: asyncpg.Pool, post_id: str) -> list[Upload]:
    rows = await db.fetch("SELECT * FROM media_uploads WHERE post_id = $1", post_id)
    return [Upload.from_row(r) for r in rows]


async def due_for_expiry(db: asyncpg.Pool, limit: int = 100) -> list[Upload]:
    rows = await db.fetch(
        """SELECT * FROM media_uploads WHERE state = 'uploading' AND expires_at <= now() AND "offset" < length
           ORDER BY expires_at LIMIT $1""", limit)
    return [Upload.from_row(r) for r in rows]


async def stuck_handoffs(db: asyncpg.Pool, older_than_s: float, limit: int = 100) -> list[Upload]:
    """Fully received uploads a crashed node left before publishing or before enqueueing."""
    rows = await db.fetch(
        """SELECT * FROM media_uploads
           WHERE (state = 'complete' AND completed_at < now() - make_interval(secs => $1))
              OR (state = 'uploading' AND "offset" = length AND updated_at < now() - make_interval(secs => $1))
           ORDER BY updated_at LIMIT $2""",
        older_than_s, limit)
    return [Upload.from_row(r) for r in rows]
