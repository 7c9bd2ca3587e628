"""Fixtures for the realtime hub: users, rooms and the hub's stores on the shared real services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
import pytest_asyncio

from amaro.services import Services
from feed.rooms import create_room
from protocol import frames as F
from realtime.chat import ChatStore, Outgoing, Sent
from tests.realtime.wsclient import Client


async def make_user(db: asyncpg.Pool, name: str = "") -> str:
    uid = uuid.uuid4()
    await db.execute(
        "INSERT INTO users (id, username, password_hash) VALUES ($1, $2, 'x')",
        uid, name or f"u{uid.hex[:12]}",
    )
    return str(uid)


async def follow(db: asyncpg.Pool, follower: str, followee: str) -> None:
    await db.execute(
        "INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        uuid.UUID(follower), uuid.UUID(followee),
    )


async def make_post(db: asyncpg.Pool, author: str, *, visibility: str = "public", state: str = "published") -> str:
    pid = uuid.uuid4()
    await db.execute(
        "INSERT INTO posts (id, author_id, state, visibility) VALUES ($1, $2, $3, $4)",
        pid, uuid.UUID(author), state, visibility,
    )
    return str(pid)


async def chat_send(chat: ChatStore, room: str, sender: str, cmid: str, body: str) -> Sent:
    """One chat send through the store (a batch of one). Raises what the store answers for it
    (``NotMember``)."""
    result = (await chat.send_batch([Outgoing(room, sender, cmid, body)]))[0]
    if isinstance(result, BaseException):
        raise result
    return result


@pytest_asyncio.fixture(loop_scope="session")
async def users(services: Services) -> list[str]:
    return [await make_user(services.db) for _ in range(4)]


@dataclass
class RoomPair:
    """Two users in a new room, each with a socket; the second subscribed to the room."""

    room: str
    ch: str
    first: Client
    second: Client
    sub: F.Subscribed


async def room_pair(db: asyncpg.Pool, ws_url: str) -> RoomPair:
    a, b = await make_user(db), await make_user(db)
    room = await create_room(db, a, [b])
    first, second = await Client.connect(ws_url, a), await Client.connect(ws_url, b)
    ch = f"room:{room}"
    return RoomPair(room, ch, first, second, await second.subscribe(ch))
