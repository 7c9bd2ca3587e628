"""Rooms and their members: direct rooms (one per pair of users) and group rooms.

A room is also a channel (``room:<id>``) whose chat the hub stores and fans out; the room row
carries that channel's epoch and last offset, which the hub advances. This module creates rooms
and changes who belongs to them; ``access.Access.is_member`` answers who does.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from typing import Protocol

import asyncpg


class Subscriptions(Protocol):
    """Live subscriptions on every node (the hub implements it)."""

    async def revoke(self, channel: str, user: str) -> None:
        """End ``user``'s subscriptions of ``channel`` on every node, now."""
        ...


def direct_key(a: str, b: str) -> str:
    x, y = sorted((str(uuid.UUID(a)), str(uuid.UUID(b))))
    return f"{x}:{y}"


async def create_room(db: asyncpg.Pool, creator: str, members: Iterable[str], *, title: str = "",
                      direct: bool = False) -> str:
    """Create a group room (or the direct room of two users, returned if it exists) with
    ``creator`` as owner and ``members``; returns the room id."""
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
            uuid.UUID(creator), secrets.token_hex(4),  # the room channel's first epoch
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


async def remove_member(db: asyncpg.Pool, room_id: str, user: str, live: Subscriptions | None = None) -> None:
    """Remove ``user`` from a room. With ``live``, their open subscriptions of ``room:<id>`` end at
    once on every node; without it they end at their next resubscribe, which is refused."""
    await db.execute(
        "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2", uuid.UUID(room_id), uuid.UUID(user)
    )
    if live is not None:
        await live.revoke(f"room:{room_id}", str(uuid.UUID(user)))
