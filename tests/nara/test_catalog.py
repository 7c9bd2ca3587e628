"""The media catalog on real PostgreSQL: rows written before each event, idempotent upserts,
posts published on good enough and failed on failure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from feed.posts import PostStates
from nara.catalog import PROCESSING, PgCatalog
from nara.job import Job
from nara.pipeline import Context, run_job
from nara.settings import NaraSettings
from nara.storage import LocalStore
from nara.tools import Tools

from .conftest import make_clip


async def _user_and_post(db: asyncpg.Pool, visibility: str = "public") -> tuple[str, str]:
    user, post = uuid.uuid4(), uuid.uuid4()
    await db.execute("INSERT INTO users (id, username, password_hash) VALUES ($1, $2, 'x')",
                     user, f"cat_{user.hex[:12]}")
    await db.execute("INSERT INTO posts (id, author_id, state, visibility) VALUES ($1, $2, 'processing', $3)",
                     post, user, visibility)
    return str(user), str(post)


def _job(user: str, post: str, content_type: str = "video/mp4") -> Job:
    upload = str(uuid.uuid4())
    return Job(upload, upload, user, post, f"uploads/{upload}", content_type, 1)


async def _row(db: asyncpg.Pool, upload_id: str) -> dict[str, Any]:
    row = await db.fetchrow(
        """SELECT m.state, m.kind, m.failure_reason, m.fast_playlist, m.master_playlist, m.poster,
                  m.plan::text AS plan, m.probe::text AS probe, m.renditions::text AS renditions,
                  m.good_enough_at, m.upgraded_at, p.state AS post_state, p.media_id
           FROM media m LEFT JOIN posts p ON p.id = m.post_id WHERE m.id = $1""", uuid.UUID(upload_id))
    return dict(row) if row is not None else {}


async def test_states_move_forward_and_posts_follow(db: asyncpg.Pool) -> None:
    user, post = await _user_and_post(db)
    job = _job(user, post)
    catalog = PgCatalog(db, PostStates())
    await catalog.record(job, PROCESSING, {"kind": "video"})
    row = await _row(db, job.upload_id)
    assert (row["state"], row["post_state"]) == ("processing", "processing")

    good = {"kind": "video", "playlist": "media/x/fast/index.m3u8", "poster": "media/x/poster.jpg",
            "placeholder": "data:", "complete": False}
    await catalog.record(job, "good_enough", good)
    await catalog.record(job, "good_enough", good)  # at-least-once: the same phase again
    row = await _row(db, job.upload_id)
    assert (row["state"], row["post_state"], str(row["media_id"])) == ("good_enough", "published", job.upload_id)
    first_good = row["good_enough_at"]

    await catalog.record(job, "upgraded", {"kind": "video", "master": "media/x/p/master.m3u8",
                                           "renditions": [{"name": "240p", "playlist": "k"}]})
    await catalog.record(job, PROCESSING, {"kind": "video"})  # a re-run never moves back
    await catalog.record(job, "failed", {"reason": "internal", "detail": "late"})  # upgraded is final
    row = await _row(db, job.upload_id)
    assert row["state"] == "upgraded" and row["failure_reason"] is None
    assert row["fast_playlist"] == "media/x/fast/index.m3u8" and row["master_playlist"] == "media/x/p/master.m3u8"
    assert orjson.loads(row["renditions"]) == [{"name": "240p", "playlist": "k"}]
    assert row["good_enough_at"] == first_good and row["upgraded_at"] is not None
    assert await db.fetchval("SELECT count(*) FROM media WHERE id = $1", uuid.UUID(job.upload_id)) == 1


async def test_failure_after_good_enough_fails_the_post(db: asyncpg.Pool) -> None:
    user, post = await _user_and_post(db)
    job = _job(user, post)
    catalog = PgCatalog(db, PostStates())
    await catalog.record(job, "good_enough", {"kind": "video", "playlist": "k"})
    await catalog.record(job, "failed", {"reason": "truncated", "detail": "decoded 1s of 6s"})
    row = await _row(db, job.upload_id)
    assert (row["state"], row["failure_reason"], row["post_state"]) == ("failed", "truncated", "failed")


async def test_failure_before_probe_creates_the_row(db: asyncpg.Pool) -> None:
    user, post = await _user_and_post(db)
    job = _job(user, post, "image/png")
    await PgCatalog(db, PostStates()).record(job, "failed", {"reason": "not_media", "detail": "x"})
    row = await _row(db, job.upload_id)
    assert (row["state"], row["kind"], row["post_state"]) == ("failed", "image", "failed")


async def test_deleted_post_stays_deleted(db: asyncpg.Pool) -> None:
    user, post = await _user_and_post(db)
    await db.execute("UPDATE posts SET state = 'deleted' WHERE id = $1", uuid.UUID(post))
    job = _job(user, post)
    await PgCatalog(db, PostStates()).record(job, "good_enough", {"kind": "video", "playlist": "k"})
    assert (await _row(db, job.upload_id))["post_state"] == "deleted"


async def test_synthetic_job_is_not_catalogued(db: asyncpg.Pool) -> None:
    await PgCatalog(db, PostStates()).record(Job("j1", "j1", "u1", "p1", "k"), "good_enough", {"kind": "video"})


@dataclass
class RowCheckingSink:
    """Reads the catalog row at the moment each event is emitted."""

    db: asyncpg.Pool
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    async def media_event(self, user_id: str, upload_id: str, post_id: str, phase: str,
                          data: dict[str, object]) -> None:
        row = await _row(self.db, upload_id)
        self.seen.append((phase, row.get("state", "missing"), row.get("post_state", "missing")))


async def test_pipeline_writes_the_row_before_each_event(db: asyncpg.Pool, tools: Tools, tmp_path: Path) -> None:
    user, post = await _user_and_post(db, "followers")
    job = _job(user, post)
    store = LocalStore(tmp_path / "store")
    dest = store.path_of(job.object_key)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(make_clip(tools, tmp_path / "clip.mp4", seconds=3.0).read_bytes())
    job = Job(job.job_id, job.upload_id, user, post, job.object_key, "video/mp4", dest.stat().st_size)
    sink = RowCheckingSink(db)
    ctx = Context(NaraSettings(workdir=tmp_path / "work"), tools, store, sink, catalog=PgCatalog(db, PostStates()))
    data = await run_job(job, ctx)
    assert sink.seen == [("good_enough", "good_enough", "published"), ("upgraded", "upgraded", "published")]
    row = await _row(db, job.upload_id)
    plan = orjson.loads(row["plan"])
    assert plan["reasons"] and row["master_playlist"] == data["master"]
    assert orjson.loads(row["probe"])["duration_s"] > 2.5
    assert row["poster"] and row["fast_playlist"].startswith(f"media/{job.upload_id}/fast-")
