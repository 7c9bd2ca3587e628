"""The post lifecycle: the table, and changes applied on a real database inside a transaction."""

from __future__ import annotations

import asyncio
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


async def test_feed_order_is_commit_order(db: asyncpg.Pool) -> None:
    """A publication waits for the one before it to commit: feed_seq follows commit order, so a
    reader who paged below N never misses a post committed later below N."""
    posts, author = PostStates(), await _user(db)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    async with db.acquire() as conn:
        for post in (first, second):
            await posts.create_draft(conn, post, author)
    async with db.acquire() as one, db.acquire() as two:
        tx = one.transaction()
        await tx.start()
        seq1 = await posts.publish(one, first, media_id=str(uuid.uuid4()), author_id=author, kind="image")

        async def publish_second() -> int | None:
            async with two.transaction():
                return await posts.publish(two, second, author_id=author)

        waiting = asyncio.create_task(publish_second())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # held until the first commits
        await tx.commit()
        seq2 = await waiting
    assert seq1 is not None and seq2 is not None and seq2 > seq1
    row = await db.fetchrow("SELECT kind, state, published_at FROM posts WHERE id = $1", uuid.UUID(first))
    assert row is not None and (row["kind"], row["state"]) == ("image", "published") and row["published_at"]
    assert await db.fetchval("SELECT posts_count FROM users WHERE id = $1", uuid.UUID(author)) == 2
    async with db.acquire() as conn:
        assert await posts.publish(conn, first) is None  # published already: nothing moves
        assert await posts.apply(conn, first, PostEvent.AUTHOR_DELETED, author_id=author)
    assert await db.fetchval("SELECT posts_count FROM users WHERE id = $1", uuid.UUID(author)) == 1
    assert await _state(db, first) == "deleted"
