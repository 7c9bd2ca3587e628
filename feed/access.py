"""Who may see what: the one home of the social rules every other part asks about.

The hub asks before a socket subscribes to a room, a post or someone's online state; the playback
API asks before it signs a media URL. Each rule is a plain function of facts (``PostFacts``, a
follow), tested without a database; ``Access`` reads the facts from PostgreSQL.

* A post: always its author; anyone else only once it is published, then everyone (public) or the
  author's followers (followers); a private post only its author; a deleted post nobody.
* Someone's online state: that user, and users related by a follow in either direction.
* A room: its members.
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


def can_see_post(user: str, post: PostFacts | None, follows_author: bool) -> bool:
    if post is None or post.state == "deleted":
        return False
    if post.author == user:
        return True
    if post.state != "published":
        return False
    if post.visibility == "public":
        return True
    return post.visibility == "followers" and follows_author


def can_see_online(user: str, other: str, related: bool) -> bool:
    """Online state is for friends: self, or a follow in either direction."""
    return user == other or related


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
                      EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $2 AND f.followee_id = p.author_id)
                          AS follows
               FROM posts p WHERE p.id = $1""",
            post, uid,
        )
        if row is None:
            return False
        facts = PostFacts(str(row["author_id"]), str(row["visibility"]), str(row["state"]))
        return can_see_post(user, facts, bool(row["follows"]))

    async def can_see_online(self, user: str, other: str) -> bool:
        if user == other:
            return True
        a, b = _uuid(user), _uuid(other)
        if a is None or b is None:
            return False
        related = await self.db.fetchval(
            """SELECT EXISTS (SELECT 1 FROM follows WHERE (follower_id = $1 AND followee_id = $2)
                                                     OR (follower_id = $2 AND followee_id = $1))""",
            a, b,
        )
        return can_see_online(user, other, bool(related))
