from __future__ import annotations

import asyncpg
import pytest

from feed.access import Access, PostFacts, can_see_online, can_see_post
from realtime.channels import ChannelError, Permissions, parse_channel
from tests.realtime.conftest import follow, make_post, make_user

ID = "6f1c1a52-5b8e-4c1e-9d0e-1c2b3a4d5e6f"


def test_parse_channel() -> None:
    assert parse_channel(f"room:{ID}") == ("room", ID)
    for bad in ("room", f"chan:{ID}", "room:not-a-uuid", f"user:{ID}:x", "", f"room:{ID.upper()}",
                f"room:{ID.replace('-', '')}"):
        with pytest.raises(ChannelError):
            parse_channel(bad)


@pytest.mark.parametrize(
    ("post", "follows", "user", "visible"),
    [
        (PostFacts("a", "public", "published"), False, "b", True),
        (PostFacts("a", "followers", "published"), False, "b", False),
        (PostFacts("a", "followers", "published"), True, "b", True),
        (PostFacts("a", "private", "published"), True, "b", False),
        (PostFacts("a", "private", "draft"), False, "a", True),  # the author sees their own drafts
        (PostFacts("a", "public", "draft"), True, "b", False),
        (PostFacts("a", "public", "deleted"), False, "a", False),
        (None, True, "b", False),
    ],
)
def test_post_visibility(post: PostFacts | None, follows: bool, user: str, visible: bool) -> None:
    assert can_see_post(user, post, follows) is visible


def test_online_state_is_for_friends() -> None:
    assert can_see_online("a", "a", False)
    assert can_see_online("a", "b", True)
    assert not can_see_online("a", "b", False)


async def test_permissions_read_the_database(db: asyncpg.Pool) -> None:
    from feed.rooms import create_room

    a, b, c = await make_user(db), await make_user(db), await make_user(db)
    perms = Permissions(Access(db))
    room = await create_room(db, a, [b])
    post = await make_post(db, a, visibility="followers")
    assert await perms.can_subscribe(b, f"room:{room}") and not await perms.can_subscribe(c, f"room:{room}")
    assert await perms.can_publish(a, f"room:{room}") and not await perms.can_publish(c, f"room:{room}")
    assert await perms.can_subscribe(c, f"user:{c}") and not await perms.can_subscribe(c, f"user:{a}")
    assert not await perms.can_publish(c, f"user:{c}")
    assert not await perms.can_subscribe(c, f"post:{post}")
    assert not await perms.can_subscribe(c, f"online:{a}")
    await follow(db, a, c)  # a follows c: c may see a's online state, not a's followers-only posts
    assert await perms.can_subscribe(c, f"online:{a}")
    assert not await perms.can_subscribe(c, f"post:{post}")
    await follow(db, c, a)
    assert await perms.can_subscribe(c, f"post:{post}")
    assert not await perms.can_publish(a, f"online:{a}")
