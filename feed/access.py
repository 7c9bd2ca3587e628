"""Who may see what: the one home of the social rules every other part asks about.

The hub asks before a socket subscribes to a room, a post or someone's online state; the playback
API asks before it signs a media URL. Each rule is a plain function of facts (``PostFacts``, a
follow), tested without a database; ``Access`` reads the facts from PostgreSQL.

* A post: always its author; anyone else only once it is published, then everyone (public) or the
  author's followers (followers); a private post only its author; a deleted post nobody. A private
  account's posts are for its followers whatever their visibility says, and a block hides each
  side's posts from the other.
* Someone's online state: that user, and users related by a follow in either direction, unless a
  block stands between them (either way).
* A room: its members.
* A user's friends (``online:friends``): the users related to them by a follow in either
  direction, minus blocks, the most recent ``MAX_FRIENDS``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class PostFacts:
    author: str
    visibility: str  # public | followers | private
    state: str  # draft | processing | published | failed | deleted
    author_private: bool = False  # the author's account is private


#: The friends ``Access.friends`` answers at most (the most recent follows first).
MAX_FRIENDS = 1000


def can_see_post(user: str, post: PostFacts | None, follows_author: bool, blocked: bool = False) -> bool:
    """``blocked``: a block stands between ``user`` and the author, either way."""
    if post is None or post.state == "deleted":
        return False
    if post.author == user:
        return True
    if blocked or post.state != "published":
        return False
    if post.visibility == "public":
        return follows_author or not post.author_private
    return post.visibility == "followers" and follows_author


def can_see_online(user: str, other: str, related: bool, blocked: bool = False) -> bool:
    """Online state is for friends: self, or a follow in either direction with no block between."""
    return user == other or (related and not blocked)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return None


class Access:
    """Reads the facts the rules need. Every method answers for the authenticated ``user``; an id
    that is not a UUID names nothing, so the answer is no."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    async def is_member(self, room_id: str, user: str) -> bool:
        room, uid = _uuid(room_id), _uuid(user)
        if room is None or uid is None:
            return False
        found = await self.db.fetchval("SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2", room, uid)
        return found is not None

    async def can_see_post(self, user: str, post_id: str) -> bool:
        post, uid = _uuid(post_id), _uuid(user)
        if post is None or uid is None:
            return False
        row = await self.db.fetchrow(
            """SELECT p.author_id, p.visibility, p.state,
                      (SELECT u.private FROM users u WHERE u.id = p.author_id) AS author_private,
                      EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $2 AND f.followee_id = p.author_id)
                          AS follows,
                      EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = p.author_id AND b.blocked_id = $2)
                                                        OR (b.blocker_id = $2 AND b.blocked_id = p.author_id))
                          AS blocked
               FROM posts p WHERE p.id = $1""",
            post, uid,
        )
        if row is None:
            return False
        facts = PostFacts(str(row["author_id"]), str(row["visibility"]), str(row["state"]),
                          bool(row["author_private"]))
        return can_see_post(user, facts, bool(row["follows"]), bool(row["blocked"]))

    async def can_see_online(self, user: str, other: str) -> bool:
        if user == other:
            return True
        a, b = _uuid(user), _uuid(other)
        if a is None or b is None:
            return False
        row = await self.db.fetchrow(
            """SELECT EXISTS (SELECT 1 FROM follows WHERE (follower_id = $1 AND followee_id = $2)
                                                     OR (follower_id = $2 AND followee_id = $1)) AS related,
                      EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2)
                                                    OR (blocker_id = $2 AND blocked_id = $1)) AS blocked""",
            a, b,
        )
        assert row is not None
        return can_see_online(user, other, bool(row["related"]), bool(row["blocked"]))

    async def blocked(self, user: str, other: str) -> bool:
        """Whether a block stands between ``user`` and ``other`` (either of them blocked the other).
        For the other rules of the domain: no direct message, no follow, no mention across it."""
        a, b = _uuid(user), _uuid(other)
        if a is None or b is None or a == b:
            return False
        return bool(await self.db.fetchval(
            """SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2)
                                                    OR (blocker_id = $2 AND blocked_id = $1))""", a, b))

    async def friends(self, user: str) -> list[str]:
        """The users related to ``user`` by a follow in either direction, minus blocks, the most
        recent follow first, at most ``MAX_FRIENDS``. Reads at most ``MAX_FRIENDS`` follows on
        each side (both through their ``(user, created_at DESC)`` index): the newest ``MAX_FRIENDS``
        friends are among them, however many followers an account has."""
        uid = _uuid(user)
        if uid is None:
            return []
        unblocked = """NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = $1 AND b.blocked_id = {0})
                                                          OR (b.blocker_id = {0} AND b.blocked_id = $1))"""
        rows = await self.db.fetch(
            f"""WITH mine AS (SELECT followee_id AS other, created_at FROM follows
                              WHERE follower_id = $1 AND {unblocked.format("followee_id")}
                              ORDER BY created_at DESC LIMIT $2),
                     theirs AS (SELECT follower_id AS other, created_at FROM follows
                                WHERE followee_id = $1 AND {unblocked.format("follower_id")}
                                ORDER BY created_at DESC LIMIT $2)
                SELECT other FROM (SELECT * FROM mine UNION ALL SELECT * FROM theirs) r
                GROUP BY other ORDER BY max(created_at) DESC, other LIMIT $2""",  # noqa: S608 - constants only
            uid, MAX_FRIENDS,
        )
        return [str(r["other"]) for r in rows]
