"""PostgreSQL, the source of truth of durable channel events.

Offsets are assigned here, in the transaction that stores the event: ``rooms.last_seq`` for
``room:<id>`` (chat, see chat.py) and ``channels.last_seq`` for every other channel (the
``channel_events`` log below). The row lock taken by ``UPDATE ... SET last_seq = last_seq + 1``
orders concurrent writers of one channel, across nodes: offset N+1 is only handed out after N is
committed. A ``channel_events`` row keeps its encoded frame; a chat message is rebuilt from its
columns (``message_from_row``), byte for byte what was published, so Redis can always be refilled.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from protocol import codec
from protocol.frames import ChatMessage, Frame
from realtime.channels import parse_channel


def new_epoch() -> str:
    return secrets.token_hex(4)


def new_mid() -> str:
    return uuid.uuid4().hex


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Stored:
    """A durable event as stored: its channel position, id and encoded frame."""

    channel: str
    epoch: str
    offset: int
    mid: str
    frame: bytes
    created: bool  # False when an idempotent retry found the original


#: What a ``chat.msg`` frame is rebuilt from. ``ts`` is stored as ``created_at`` (to the
#: millisecond it was published with).
MESSAGE_SELECT = """SELECT m.room_id, m.seq, m.mid, m.cmid, m.sender, m.body, m.reply_to, r.epoch,
       (extract(epoch FROM m.created_at) * 1000)::bigint AS ts
  FROM messages m JOIN rooms r ON r.id = m.room_id"""


def message_from_row(row: Any) -> ChatMessage:
    room = str(row["room_id"])
    return ChatMessage(
        ch=f"room:{room}", epoch=str(row["epoch"]), offset=int(row["seq"]), mid=str(row["mid"]), room=room,
        sender=str(row["sender"]), cmid=str(row["cmid"]), body=str(row["body"]), reply_to=str(row["reply_to"]),
        ts=int(row["ts"]),
    )


#: A connection, a pooled connection or the pool: anything with ``fetchrow``/``fetchval``.
Executor = Any

#: Builds the frame of a new event from its position: (epoch, offset, mid, ts) -> frame.
FrameBuilder = Callable[[str, int, str, int], Frame]


class ChannelStore:
    """Positions and ranges of every durable channel; the event log of non-room channels."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    async def position(self, channel: str) -> tuple[str, int]:
        """``(epoch, last offset)`` of ``channel`` in PostgreSQL, creating the channel row if needed."""
        kind, ident = parse_channel(channel)
        if kind == "room":
            row = await self.db.fetchrow("SELECT epoch, last_seq FROM rooms WHERE id = $1", _uuid(ident))
            if row is None:
                return "", 0
            return str(row["epoch"]), int(row["last_seq"])
        row = await self.db.fetchrow(
            """INSERT INTO channels (name, epoch) VALUES ($1, $2)
               ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
               RETURNING epoch, last_seq""",
            channel, new_epoch(),
        )
        assert row is not None
        return str(row["epoch"]), int(row["last_seq"])

    async def range(self, channel: str, after: int, upto: int) -> list[tuple[int, bytes]]:
        """Stored events with ``after < offset <= upto``, in order, as ``(offset, frame)``."""
        if upto <= after:
            return []
        kind, ident = parse_channel(channel)
        if kind == "room":
            rows = await self.db.fetch(
                f"{MESSAGE_SELECT} WHERE m.room_id = $1 AND m.seq > $2 AND m.seq <= $3 ORDER BY m.seq",
                _uuid(ident), after, upto,
            )
            return [(int(r["seq"]), codec.encode(message_from_row(r))) for r in rows]
        rows = await self.db.fetch(
            """SELECT seq, frame FROM channel_events
               WHERE channel = $1 AND seq > $2 AND seq <= $3 ORDER BY seq""",
            channel, after, upto,
        )
        return [(int(r["seq"]), bytes(r["frame"])) for r in rows]

    async def append(self, channel: str, kind: str, sender: str, idem_key: str | None,
                     build: FrameBuilder) -> Stored:
        """Store a new event of a non-room channel (feed, media, published events). With an
        ``idem_key``, a retry by the same sender returns the original event (``created=False``)."""
        try:
            return await self._append(channel, kind, sender, idem_key, build)
        except _LostRace:
            pass
        # A concurrent retry won the race; our transaction was rolled back (no hole in the offsets).
        assert idem_key is not None
        async with self.db.acquire() as conn:
            found = await _find_idem(conn, channel, sender, idem_key)
        assert found is not None
        return found

    async def _append(self, channel: str, kind: str, sender: str, idem_key: str | None,
                      build: FrameBuilder) -> Stored:
        async with self.db.acquire() as conn, conn.transaction():
            if idem_key is not None:
                found = await _find_idem(conn, channel, sender, idem_key)
                if found is not None:
                    return found
            await conn.execute(
                "INSERT INTO channels (name, epoch) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                channel, new_epoch(),
            )
            row = await conn.fetchrow(
                "UPDATE channels SET last_seq = last_seq + 1 WHERE name = $1 RETURNING epoch, last_seq",
                channel,
            )
            assert row is not None
            epoch, offset, mid = str(row["epoch"]), int(row["last_seq"]), new_mid()
            data = codec.encode(build(epoch, offset, mid, now_ms()))
            inserted = await conn.fetchval(
                """INSERT INTO channel_events (channel, seq, mid, kind, sender, idem_key, frame)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (channel, sender, idem_key) DO NOTHING RETURNING seq""",
                channel, offset, mid, kind, sender, idem_key, data,
            )
            if inserted is None:
                raise _LostRace  # rolls the offset back
            return Stored(channel, epoch, offset, mid, data, True)


class _LostRace(Exception):
    pass


async def _find_idem(conn: Executor, channel: str, sender: str, key: str) -> Stored | None:
    row = await conn.fetchrow(
        """SELECT e.seq, e.mid, e.frame, c.epoch FROM channel_events e JOIN channels c ON c.name = e.channel
           WHERE e.channel = $1 AND e.sender = $2 AND e.idem_key = $3""",
        channel, sender, key,
    )
    if row is None:
        return None
    return Stored(channel, str(row["epoch"]), int(row["seq"]), str(row["mid"]), bytes(row["frame"]), False)


def _uuid(text: str) -> uuid.UUID:
    return uuid.UUID(text)
