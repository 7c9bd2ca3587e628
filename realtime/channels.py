"""Channels and who may use them. Checked on the server on every subscribe and publish.

=================  ===========================================  ==================================
channel            subscribe                                    publish (``pub``)
=================  ===========================================  ==================================
``room:<id>``      members of the room                          members of the room
``user:<id>``      that user only                               nobody (server events only)
``post:<id>``      who can see the post: public and published,  same as subscribe
                   followers-only to followers, always the
                   author
``online:<id>``    that user, users they follow or who follow   nobody (presence only)
                   them
=================  ===========================================  ==================================

The rules are plain functions of facts read from PostgreSQL (``Access``), so they are tested
without a database; ``Permissions`` reads the facts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from protocol.errors import ErrorCode, ProtocolError

KINDS = ("room", "user", "post", "online")


class ChannelError(ProtocolError):
    code = ErrorCode.CHANNEL_NOT_FOUND


def parse_channel(channel: str) -> tuple[str, str]:
    """``"room:<id>"`` -> ``("room", "<id>")``. Raises ``ChannelError`` for an unknown kind or an id
    that is not a UUID in its canonical spelling (every id in the system is one)."""
    kind, sep, ident = channel.partition(":")
    if not sep or kind not in KINDS:
        raise ChannelError(f"unknown channel {channel[:80]!r}")
    try:
        canonical = str(uuid.UUID(ident))
    except ValueError:
        raise ChannelError(f"unknown channel {channel[:80]!r}") from None
    if canonical != ident:
        # One spelling per channel: "room:ABC..." and "room:abc..." must not be two Redis channels.
        raise ChannelError(f"channel ids are lowercase UUIDs with hyphens: {channel[:80]!r}")
    return kind, ident


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


class Permissions:
    """Reads the facts the rules need. Every method answers for the authenticated ``user``."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    async def can_subscribe(self, user: str, channel: str) -> bool:
        kind, ident = parse_channel(channel)
        if kind == "room":
            return await self.is_member(ident, user)
        if kind == "user":
            return ident == user
        if kind == "post":
            return await self.can_see_post(user, ident)
        return await self.can_see_online(user, ident)

    async def can_publish(self, user: str, channel: str) -> bool:
        kind, ident = parse_channel(channel)
        if kind == "room":
            return await self.is_member(ident, user)
        if kind == "post":
            return await self.can_see_post(user, ident)
        return False

    async def is_member(self, room_id: str, user: str) -> bool:
        found = await self.db.fetchval(
            "SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2", uuid.UUID(room_id), uuid.UUID(user)
        )
        return found is not None

    async def can_see_post(self, user: str, post_id: str) -> bool:
        row = await self.db.fetchrow(
            """SELECT p.author_id, p.visibility, p.state,
                      EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $2 AND f.followee_id = p.author_id)
                          AS follows
               FROM posts p WHERE p.id = $1""",
            uuid.UUID(post_id), uuid.UUID(user),
        )
        if row is None:
            return False
        facts = PostFacts(str(row["author_id"]), str(row["visibility"]), str(row["state"]))
        return can_see_post(user, facts, bool(row["follows"]))

    async def can_see_online(self, user: str, other: str) -> bool:
        if user == other:
            return True
        related = await self.db.fetchval(
            """SELECT EXISTS (SELECT 1 FROM follows WHERE (follower_id = $1 AND followee_id = $2)
                                                     OR (follower_id = $2 AND followee_id = $1))""",
            uuid.UUID(user), uuid.UUID(other),
        )
        return can_see_online(user, other, bool(related))


# -- rooms ------------------------------------------------------------------------------------------


def direct_key(a: str, b: str) -> str:
    x, y = sorted((str(uuid.UUID(a)), str(uuid.UUID(b))))
    return f"{x}:{y}"


async def create_room(db: asyncpg.Pool, creator: str, members: Iterable[str], *, title: str = "",
                      direct: bool = False) -> str:
    """Create a group room (or the direct room of two users, returned if it exists) with
    ``creator`` as owner and ``members``; returns the room id. The feed's HTTP endpoints call this."""
    from realtime.store import new_epoch

    others = [str(uuid.UUID(m)) for m in members if str(uuid.UUID(m)) != str(uuid.UUID(creator))]
    if direct:
        if len(others) != 1:
            raise ValueError("a direct room has exactly two members")
        key = direct_key(creator, others[0])
        existing = await db.fetchval("SELECT id FROM rooms WHERE direct_key = $1", key)
        if existing is not None:
            return str(existing)
    room_id = uuid.uuid4()
    async with db.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            """INSERT INTO rooms (id, kind, title, direct_key, created_by, epoch)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (direct_key) DO NOTHING RETURNING id""",
            room_id, "direct" if direct else "group", title, direct_key(creator, others[0]) if direct else None,
            uuid.UUID(creator), new_epoch(),
        )
        if inserted is None:  # a concurrent creation of the same direct room won
            found = await conn.fetchval(
                "SELECT id FROM rooms WHERE direct_key = $1", direct_key(creator, others[0])
            )
            return str(found)
        await conn.executemany(
            "INSERT INTO room_members (room_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [(room_id, uuid.UUID(creator), "owner"), *((room_id, uuid.UUID(m), "member") for m in others)],
        )
    return str(room_id)


async def add_members(db: asyncpg.Pool, room_id: str, members: Iterable[str]) -> None:
    """Add members to a group room (idempotent)."""
    rid = uuid.UUID(room_id)
    await db.executemany(
        "INSERT INTO room_members (room_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        [(rid, uuid.UUID(m)) for m in members],
    )


#: Kind of the internal routed event that ends a user's subscriptions of a channel on every node.
REVOKE_KIND = "hub.revoke"


class Revoker(Protocol):
    async def broadcast(self, channel: str, payload: bytes, kind: str) -> None: ...


async def remove_member(db: asyncpg.Pool, room_id: str, user: str, broker: Revoker | None = None) -> None:
    """Remove ``user`` from a room. With a ``broker`` (``HubNode.broker`` or ``EventSink.broker``),
    their open subscriptions of ``room:<id>`` end at once on every node (``unsub.ok`` with id 0);
    without one they end at their next resubscribe, which is refused."""
    await db.execute(
        "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2", uuid.UUID(room_id), uuid.UUID(user)
    )
    if broker is not None:
        await broker.broadcast(f"room:{room_id}", str(uuid.UUID(user)).encode(), REVOKE_KIND)
