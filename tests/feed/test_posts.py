"""The post lifecycle: the table, and changes applied on a real database inside a transaction."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from feed.posts import TRANSITIONS, PostEvent, PostState, PostStates, transition


def test_every_event_leads_to_one_state() -> None:
    for event in PostEvent:
        sources, target = transition(event)
        assert sources and all(TRANSITIONS[PostState(s)][event] is target for s in sources)
    assert TRANSITIONS[PostState.DELETED] == {}


async def _user(db: asyncpg.Pool) -> str:
    user = uuid.uuid4()
    await db.execute("INSERT INTO users (id, username, password_hash) VALUES ($1, $2, 'x')",
                     user, f"u{user.hex[:12]}")
    return str(user)


async def _state(db: asyncpg.Pool, post: str) -> str:
    return str(await db.fetchval("SELECT state FROM posts WHERE id = $1", uuid.UUID(post)))


async def test_a_media_post_moves_only_along_the_table(db: asyncpg.Pool) -> None:
    posts, author, other = PostStates(), await _user(db), await _user(db)
    post, media = str(uuid.uuid4()), str(uuid.uuid4())
    async with db.acquire() as conn, conn.transaction():
        await posts.create_draft(conn, post, author)
    async with db.acquire() as conn:
        await posts.media_received(conn, post, media)
        assert await _state(db, post) == "processing"
        assert not await posts.apply(conn, post, PostEvent.UPLOAD_DELETED)  # not a draft any more
        await posts.media_ready(conn, post, media, other)  # not the author: nothing moves
        assert await _state(db, post) == "processing"
        await posts.media_ready(conn, post, media, author)
        assert await _state(db, post) == "published"
        await posts.media_failed(conn, post, author)
        assert await _state(db, post) == "failed"


@pytest.mark.parametrize(("deleted", "state"), [(True, "deleted"), (False, "failed")])
async def test_an_unfinished_upload_ends_its_draft(db: asyncpg.Pool, deleted: bool, state: str) -> None:
    posts, author, post = PostStates(), await _user(db), str(uuid.uuid4())
    async with db.acquire() as conn:
        await posts.create_draft(conn, post, author)
        await posts.upload_ended(conn, post, deleted=deleted)
    assert await _state(db, post) == state
