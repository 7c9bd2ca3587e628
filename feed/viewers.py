"""What reading posts needs to know of a viewer: whom they follow, and who stands behind a block
with them (either way). One cached entry per viewer (``api.caches.relations``), so deciding what a
timeline page may show costs no query once warm.

The rule itself is ``feed.access.can_see_post``; ``may_see`` only hands it the facts. The entry of
a user is dropped whenever a follow or block of theirs changes: the database announces every such
change (``NOTIFY amaro_feed_graph``, a trigger on ``follows`` and ``blocks``; feed/announce.py
listens on every hub), and ``Viewers.changed`` lets the code that made the change drop it at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from feed.access import PostFacts, can_see_post
from feed.cache import Cache


@dataclass(frozen=True, slots=True)
class Relations:
    user: str
    following: frozenset[str]
    blocked: frozenset[str]  # users a block stands between with ``user``, either way

    @classmethod
    def of(cls, user: str, value: Mapping[str, Any]) -> Relations:
        return cls(user, frozenset(value["following"]), frozenset(value["blocked"]))


def facts(post: Mapping[str, Any]) -> PostFacts:
    return PostFacts(str(post["author_id"]), str(post["visibility"]), str(post["state"]),
                     bool(post.get("author_private", False)))


def may_see(viewer: Relations | None, post: Mapping[str, Any] | None) -> bool:
    """Whether the viewer (None: anonymous) may see the post map (``content.post_map``)."""
    if post is None:
        return False
    if viewer is None:
        return can_see_post("", facts(post), False)
    author = str(post["author_id"])
    return can_see_post(viewer.user, facts(post), author in viewer.following, author in viewer.blocked)


class Viewers:
    def __init__(self, db: asyncpg.Pool, cache: Cache) -> None:
        self.db = db
        self.cache = cache
        self._memo: dict[str, tuple[Any, Relations]] = {}  # a cached entry and its frozen sets, by user

    async def of(self, user: str) -> Relations:
        async def load() -> dict[str, Any]:
            row = await self.db.fetchrow(
                """SELECT ARRAY(SELECT followee_id::text FROM follows WHERE follower_id = $1) AS following,
                          ARRAY(SELECT blocked_id::text FROM blocks WHERE blocker_id = $1
                                UNION SELECT blocker_id::text FROM blocks WHERE blocked_id = $1) AS blocked""",
                uuid.UUID(user))
            assert row is not None
            return {"following": list(row["following"]), "blocked": list(row["blocked"])}

        value = await self.cache.get(user, load)
        memo = self._memo.get(user)
        if memo is not None and memo[0] is value:
            return memo[1]
        relations = Relations.of(user, value)
        if len(self._memo) > 4096:
            self._memo.clear()
        self._memo[user] = (value, relations)
        return relations

    async def changed(self, *users: str) -> None:
        """Follows or blocks of ``users`` changed: every node forgets what it knew of them."""
        for user in users:
            self._memo.pop(user, None)
        await self.cache.invalidate(*users)
