"""The media catalog: what NARA-1r knows about each upload, in PostgreSQL (table ``media``).

The worker records every step *before* it emits the matching media event, so a client that hears
"good enough" and asks the playback API finds the row already there. Writes are upserts keyed by
the upload id: a reclaimed or retried job rewrites the same row. States only move forward, except
that the latest worker's word wins between ``good_enough`` and ``failed`` (a clip that becomes
playable and then turns out truncated ends ``failed``); ``upgraded`` is final.

Posts follow their media in the same transaction, through the feed's post lifecycle (``Posts``,
wired by the composition root): ``good_enough`` publishes the post (a video post appears as soon as
it can play; ``upgraded`` upgrades it in place), ``failed`` marks it failed. Whether a post may
still move is the feed's rule.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
import orjson
import structlog

from amaro.infra.connect import Conn
from nara.errors import NaraError
from nara.job import Job
from nara.lifecycle import PLAYABLE, MediaState, allowed_sql

if TYPE_CHECKING:
    from nara.planner import Plan
    from nara.probe import Probe

PROCESSING = MediaState.PROCESSING
log = structlog.get_logger("nara.catalog")


class CatalogFailed(NaraError):
    """The catalog could not be written (database down or slow): retried like a storage failure."""

    reason = "catalog_failed"
    retryable = True


class Catalog(Protocol):
    async def record(self, job: Job, phase: str, data: Mapping[str, object], *,
                     probe: Probe | None = None, plan: Plan | None = None) -> None:
        """Write what ``phase`` ("processing", "good_enough", "upgraded", "failed") means for
        ``job``'s media row and post. ``data`` is the event's data. Raises ``CatalogFailed``."""


class Posts(Protocol):
    """The post a media item belongs to, changed on the caller's connection (its transaction)."""

    async def media_ready(self, conn: Conn, post_id: str, media_id: str, author_id: str, kind: str = "video") -> None:
        """Good enough or upgraded: publish the post as an ``image`` or ``video`` post (the last
        statement before the commit: publishing orders the post in timelines under a lock held
        until then)."""

    async def media_failed(self, conn: Conn, post_id: str, author_id: str) -> None: ...


class NullCatalog:
    """No database (a worker run without a catalog, pipeline unit tests): events only."""

    async def record(self, job: Job, phase: str, data: Mapping[str, object], *,
                     probe: Probe | None = None, plan: Plan | None = None) -> None:
        return None


def probe_summary(p: Probe) -> dict[str, object]:
    return {
        "kind": p.kind, "container": p.container, "width": p.width, "height": p.height,
        "rotation": p.rotation, "fps": p.fps, "duration_s": p.duration_s, "frames": p.frames,
        "codec": p.codec, "profile": p.profile, "pix_fmt": p.pix_fmt, "bitrate": p.bitrate,
        "size_bytes": p.size_bytes, "has_audio": p.has_audio, "audio_codec": p.audio_codec,
        "audio_channels": p.audio_channels, "audio_sample_rate": p.audio_sample_rate,
    }


def _json(value: object) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _str(data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except (ValueError, TypeError):
        return None


# JSON goes in as text and is cast in SQL, so the statements work on pools with or without a
# jsonb codec installed (the node's pool decodes jsonb with orjson; the worker's own has none).
# States move as nara/lifecycle.py says; failure fields follow a move to failed.
_MOVES = allowed_sql("m.state", "EXCLUDED.state")
_PLAYABLE = ", ".join(f"'{s.value}'" for s in sorted(PLAYABLE))
_UPSERT = f"""
INSERT INTO media AS m (id, owner_id, post_id, kind, state, probe, plan_id, plan, fast_playlist,
                        fast_complete, poster, placeholder, master_playlist, renditions, variants,
                        preview, storyboard_sprite, storyboard_vtt, failure_reason, failure_detail,
                        good_enough_at, upgraded_at, failed_at)
VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8::text::jsonb, $9, $10, $11, $12, $13,
        COALESCE($14::text::jsonb, '[]'), COALESCE($15::text::jsonb, '[]'), $16, $17, $18, $19, $20,
        CASE WHEN $5 IN ({_PLAYABLE}) THEN now() END,
        CASE WHEN $5 = 'upgraded' THEN now() END,
        CASE WHEN $5 = 'failed' THEN now() END)
ON CONFLICT (id) DO UPDATE SET
    kind = CASE WHEN EXCLUDED.state = 'failed' THEN m.kind ELSE EXCLUDED.kind END,
    state = CASE WHEN {_MOVES} THEN EXCLUDED.state ELSE m.state END,
    probe = COALESCE(EXCLUDED.probe, m.probe),
    plan_id = COALESCE(EXCLUDED.plan_id, m.plan_id),
    plan = COALESCE(EXCLUDED.plan, m.plan),
    fast_playlist = COALESCE(EXCLUDED.fast_playlist, m.fast_playlist),
    fast_complete = m.fast_complete OR EXCLUDED.fast_complete,
    poster = COALESCE(EXCLUDED.poster, m.poster),
    placeholder = COALESCE(EXCLUDED.placeholder, m.placeholder),
    master_playlist = COALESCE(EXCLUDED.master_playlist, m.master_playlist),
    renditions = CASE WHEN $14 IS NULL THEN m.renditions ELSE EXCLUDED.renditions END,
    variants = CASE WHEN $15 IS NULL THEN m.variants ELSE EXCLUDED.variants END,
    preview = COALESCE(EXCLUDED.preview, m.preview),
    storyboard_sprite = COALESCE(EXCLUDED.storyboard_sprite, m.storyboard_sprite),
    storyboard_vtt = COALESCE(EXCLUDED.storyboard_vtt, m.storyboard_vtt),
    failure_reason = CASE
        WHEN EXCLUDED.state = 'failed' AND {_MOVES} THEN EXCLUDED.failure_reason
        WHEN EXCLUDED.state IN ({_PLAYABLE}) THEN NULL
        ELSE m.failure_reason END,
    failure_detail = CASE
        WHEN EXCLUDED.state = 'failed' AND {_MOVES} THEN EXCLUDED.failure_detail
        WHEN EXCLUDED.state IN ({_PLAYABLE}) THEN NULL
        ELSE m.failure_detail END,
    good_enough_at = COALESCE(m.good_enough_at, EXCLUDED.good_enough_at),
    upgraded_at = COALESCE(m.upgraded_at, EXCLUDED.upgraded_at),
    failed_at = CASE WHEN EXCLUDED.state = 'failed' AND {_MOVES} THEN now() ELSE m.failed_at END,
    updated_at = now()
RETURNING state
"""  # noqa: S608 - built from the constant table in lifecycle.py, no input

class PgCatalog:
    """The catalog in PostgreSQL. Every write is one short transaction under a time limit."""

    def __init__(self, db: asyncpg.Pool, posts: Posts, timeout_s: float = 10.0) -> None:
        self.db = db
        self.posts = posts
        self.timeout_s = timeout_s

    async def record(self, job: Job, phase: str, data: Mapping[str, object], *,
                     probe: Probe | None = None, plan: Plan | None = None) -> None:
        media_id, owner = _uuid(job.upload_id), _uuid(job.user_id)
        if media_id is None or owner is None:
            # Not an upload of the media path (standalone runs, synthetic jobs): nothing to catalog.
            log.warning("catalog_skipped", upload_id=job.upload_id, phase=phase)
            return
        post = _uuid(job.post_id)
        args = self._row(job, phase, data, probe, plan)
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.db.acquire() as conn, conn.transaction():
                    state = await conn.fetchval(_UPSERT, media_id, owner, post, *args)
                    if post is None:
                        return
                    if state in PLAYABLE:
                        await self.posts.media_ready(conn, str(post), str(media_id), str(owner), kind=args[0])
                    elif state == MediaState.FAILED:
                        await self.posts.media_failed(conn, str(post), str(owner))
        except TimeoutError:
            raise CatalogFailed(f"{phase}: catalog write took longer than {self.timeout_s:g}s") from None
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            raise CatalogFailed(f"{phase}: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _row(job: Job, phase: str, data: Mapping[str, object], probe: Probe | None,
             plan: Plan | None) -> tuple[Any, ...]:
        kind = _str(data, "kind") or (probe.kind if probe is not None else None) or (
            "image" if job.content_type.startswith("image/") else "video")
        storyboard = data.get("storyboard")
        sb: Mapping[str, object] = storyboard if isinstance(storyboard, Mapping) else {}
        renditions = data.get("renditions")
        variants = data.get("variants")
        failed = phase == MediaState.FAILED
        return (
            kind if kind in ("video", "image") else "video",
            phase,
            _json(probe_summary(probe)) if probe is not None else None,
            plan.plan_id if plan is not None else _str(data, "plan_id"),
            _json(plan.to_dict()) if plan is not None else None,
            _str(data, "playlist"),
            bool(data.get("complete")) or phase == MediaState.UPGRADED,
            _str(data, "poster"),
            _str(data, "placeholder"),
            _str(data, "master"),
            _json(renditions) if isinstance(renditions, list) else None,
            _json(variants) if isinstance(variants, list) else None,
            _str(data, "preview"),
            _str(sb, "sprite"),
            _str(sb, "vtt"),
            _str(data, "reason") if failed else None,
            (_str(data, "detail") or "")[:500] if failed else None,
        )
