"""The upload records in PostgreSQL: the one source of truth every node resumes from.

Each state change is one statement (or one transaction) guarded by the state it expects, so a
retried or concurrent request can never apply it twice:

    uploading --publish--> complete --mark_enqueued--> enqueued
    uploading --end------> terminated | expired | rejected
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from media.crypto import Header
from media.errors import TusError, not_found, too_large

LIVE_STATES = ("uploading", "complete", "enqueued")
ENDED_POST_STATE = {"terminated": "deleted", "expired": "failed", "rejected": "failed"}


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    user_id: str
    post_id: str
    state: str
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
            id=str(row["id"]), user_id=str(row["user_id"]), post_id=str(row["post_id"]), state=row["state"],
            length=row["length"], offset=row["offset"], object_key=row["object_key"],
            multipart_id=row["multipart_id"], parts=tuple(row["parts"]), tail_key=row["tail_key"],
            header=Header.decode(bytes(row["header"])), content_type=row["content_type"],
            metadata=dict(row["metadata"]), active_ms=row["active_ms"], created_at=row["created_at"],
            expires_at=row["expires_at"],
        )

    def expired(self, now: dt.datetime | None = None) -> bool:
        return self.state == "uploading" and (now or dt.datetime.now(dt.UTC)) >= self.expires_at


def valid_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def create(db: asyncpg.Pool, *, upload_id: str, user_id: str, length: int, object_key: str,
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
        await conn.execute("INSERT INTO posts (id, author_id, state) VALUES ($1, $2, 'draft')", post_id, user_id)
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


async def publish(db: asyncpg.Pool, upload: Upload) -> Upload | None:
    """uploading -> complete: record the object and move the post to processing. None if already done."""
    async with db.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """UPDATE media_uploads SET state = 'complete', completed_at = now(), updated_at = now()
               WHERE id = $1 AND state = 'uploading' AND "offset" = length RETURNING *""", upload.id)
        if row is None:
            return None
        done = Upload.from_row(row)
        await conn.execute(
            """INSERT INTO media_objects (id, user_id, post_id, object_key, content_type, size, key_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING""",
            done.id, done.user_id, done.post_id, done.object_key, done.content_type or "application/octet-stream",
            done.length, done.header.key_id)
        await conn.execute(
            """UPDATE posts SET state = 'processing', media_id = $2, updated_at = now()
               WHERE id = $1 AND state = 'draft'""", done.post_id, done.id)
    return done


async def mark_enqueued(db: asyncpg.Pool, upload_id: str) -> None:
    await db.execute(
        "UPDATE media_uploads SET state = 'enqueued', updated_at = now() WHERE id = $1 AND state = 'complete'",
        upload_id)


async def end(db: asyncpg.Pool, upload: Upload, state: str) -> Upload | None:
    """uploading -> terminated | expired | rejected, and the draft post follows. None if not uploading."""
    post_state = ENDED_POST_STATE[state]
    async with db.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """UPDATE media_uploads SET state = $2, tail_key = NULL, updated_at = now()
               WHERE id = $1 AND state = 'uploading' RETURNING *""", upload.id, state)
        if row is None:
            return None
        await conn.execute("UPDATE posts SET state = $2, updated_at = now() WHERE id = $1 AND state = 'draft'",
                           upload.post_id, post_state)
    return Upload.from_row(row)


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
