"""The social rules of feed/access.py: the pure rules with blocks, then ``Access`` reading the facts
from PostgreSQL (blocks either way, friends and their order and cap)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from feed import access
from feed.access import Access, PostFacts, can_see_online, can_see_post
from tests.realtime.conftest import follow, make_post, make_user


@pytest.mark.parametrize(
    ("post", "follows", "blocked", "user", "visible"),
    [
        (PostFacts("a", "public", "published"), False, False, "b", True),
        (PostFacts("a", "public", "published"), False, True, "b", False),
        (PostFacts("a", "followers", "published"), True, True, "b", False),
        (PostFacts("a", "followers", "published"), True, False, "b", True),
        (PostFacts("a", "public", "published"), False, True, "a", True),  # the author, whatever they block
        (PostFacts("a", "public", "deleted"), False, False, "a", False),
        (None, False, False, "b", False),
    ],
)
def test_posts_across_a_block(post: PostFacts | None, follows: bool, blocked: bool, user: str,
                              visible: bool) -> None:
    assert can_see_post(user, post, follows, blocked) is visible


def test_online_state_across_a_block() -> None:
    assert can_see_online("a", "b", True)
    assert not can_see_online("a", "b", True, blocked=True)
    assert not can_see_online("a", "b", False, blocked=False)
    assert can_see_online("a", "a", False, blocked=True)


async def block(db: asyncpg.Pool, blocker: str, blocked: str) -> None:
    await db.execute("INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)",
                     uuid.UUID(blocker), uuid.UUID(blocked))


async def test_blocks_hide_posts_and_presence_both_ways(db: asyncpg.Pool) -> None:
    a, b, c = await make_user(db), await make_user(db), await make_user(db)
    rules = Access(db)
    post = await make_post(db, a)
    await follow(db, b, a)
    await follow(db, c, a)
    assert await rules.can_see_post(b, post) and await rules.can_see_online(b, a)
    await block(db, a, b)  # the author blocks a reader (the follow is left in place: the rule alone decides)
    assert not await rules.can_see_post(b, post)
    assert not await rules.can_see_online(b, a) and not await rules.can_see_online(a, b)
    assert await rules.can_see_post(a, post) and await rules.can_see_post(c, post)
    await block(db, c, a)  # a reader blocks the author: they see nothing of each other either
    assert not await rules.can_see_post(c, post)
    assert not await rules.can_see_online(c, a)
    assert await rules.blocked(a, b) and await rules.blocked(b, a) and await rules.blocked(a, c)
    assert not await rules.blocked(b, c) and not await rules.blocked(a, a)
    assert not await rules.blocked(a, "not-an-id")
    assert await rules.is_member(str(uuid.uuid4()), a) is False  # unchanged: no room, no member


async def test_friends_are_follows_either_way_newest_first_minus_blocks(db: asyncpg.Pool,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    me = await make_user(db)
    people = [await make_user(db) for _ in range(5)]
    followed, follower, mutual, blocked, stranger = people
    await follow(db, me, followed)
    await follow(db, follower, me)
    await follow(db, me, mutual)
    await follow(db, mutual, me)
    await follow(db, blocked, me)
    await block(db, me, blocked)
    rules = Access(db)
    assert await rules.friends(me) == [mutual, follower, followed]  # by the latest follow between us
    assert await rules.friends(stranger) == []
    assert await rules.friends("not-an-id") == []
    monkeypatch.setattr(access, "MAX_FRIENDS", 2)
    assert await rules.friends(me) == [mutual, follower]


@pytest.mark.parametrize(
    ("visibility", "follows", "user", "visible"),
    [
        ("public", False, "b", False),  # a private account's posts are for its followers
        ("public", True, "b", True),
        ("followers", True, "b", True),
        ("private", True, "b", False),
        ("public", False, "a", True),  # its author, always
    ],
)
def test_a_private_accounts_posts_are_for_its_followers(visibility: str, follows: bool, user: str,
                                                       visible: bool) -> None:
    post = PostFacts("a", visibility, "published", author_private=True)
    assert can_see_post(user, post, follows) is visible
