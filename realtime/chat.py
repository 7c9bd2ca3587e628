"""Chat: messages stored in PostgreSQL before they are acknowledged, receipts, history pages.

A message's offset is the room's next ``last_seq``, taken in the statement that inserts it, and it
is the offset of the ``room:<id>`` channel in Redis too: clients see one offset space. ``cmid`` (the
client message id) is unique per (room, sender): a retried send returns the original message.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from protocol import codec
from protocol.errors import ErrorCode, ProtocolError
from protocol.frames import ChatMessage
from realtime.store import MESSAGE_SELECT, message_from_row, new_mid, now_ms


class NotMember(ProtocolError):
    code = ErrorCode.PERMISSION_DENIED


@dataclass(frozen=True, slots=True)
class Sent:
    message: ChatMessage
    frame: bytes  # the encoded chat.msg, published as is (and rebuilt identically from its row)
    created: bool  # False for a retry answered with the original


#: One round trip, no explicit transaction: the UPDATE checks membership and the retry and takes
#: the next offset (its row lock orders concurrent senders of the room across every node), the
#: INSERT stores the message, atomically. A concurrent retry of the same cmid makes the INSERT
#: fail on the unique key, which undoes the whole statement: offsets never get a hole.
_SEND = """
WITH r AS (
    UPDATE rooms SET last_seq = last_seq + 1
    WHERE id = $1
      AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)
      AND NOT EXISTS (SELECT 1 FROM messages WHERE room_id = $1 AND sender = $2 AND cmid = $3)
    RETURNING epoch, last_seq
), m AS (
    INSERT INTO messages (room_id, seq, mid, cmid, sender, body, reply_to, created_at)
    SELECT $1, r.last_seq, $4, $3, $2, $5, $6, to_timestamp($7::float8 / 1000) FROM r
    RETURNING seq
)
SELECT r.epoch, r.last_seq FROM r JOIN m ON m.seq = r.last_seq
"""


class ChatStore:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    async def send(self, room: str, sender: str, cmid: str, body: str, reply_to: str = "") -> Sent:
        """Store a message from ``sender`` (the authenticated user). Raises ``NotMember``."""
        mid, ts = new_mid(), now_ms()
        try:
            row = await self.db.fetchrow(_SEND, uuid.UUID(room), uuid.UUID(sender), cmid, mid, body, reply_to, ts)
        except asyncpg.UniqueViolationError:
            row = None  # a concurrent retry stored it first
        if row is None:  # a retry, or not a member
            found = await self._find(room, sender, cmid)
            if found is not None:
                return found
            raise NotMember(f"not a member of room {room}")
        msg = ChatMessage(ch=f"room:{room}", epoch=str(row["epoch"]), offset=int(row["last_seq"]), mid=mid,
                          room=room, sender=sender, cmid=cmid, body=body, reply_to=reply_to, ts=ts)
        return Sent(msg, codec.encode(msg), True)

    async def _find(self, room: str, sender: str, cmid: str) -> Sent | None:
        row = await self.db.fetchrow(
            f"{MESSAGE_SELECT} WHERE m.room_id = $1 AND m.sender = $2 AND m.cmid = $3",
            uuid.UUID(room), uuid.UUID(sender), cmid,
        )
        if row is None:
            return None
        msg = message_from_row(row)
        return Sent(msg, codec.encode(msg), False)

    async def history(self, room: str, before: int, limit: int) -> tuple[list[ChatMessage], bool]:
        """Messages strictly before offset ``before`` (-1: the newest), newest first, and whether
        older ones exist. The caller checks membership."""
        limit = max(1, min(limit, 200))
        bound = before if before > 0 else 2**62
        rows = await self.db.fetch(
            f"{MESSAGE_SELECT} WHERE m.room_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3",
            uuid.UUID(room), bound, limit + 1,
        )
        out = [message_from_row(r) for r in rows[:limit]]
        return out, len(rows) > limit

    async def receipt(self, room: str, user: str, kind: str, offset: int) -> bool:
        """Move ``user``'s delivered/read position forward (never back, never past the room's last
        message). Returns True when it moved."""
        moved = await self.db.fetchval(
            """INSERT INTO receipts (room_id, user_id, kind, seq)
               SELECT $1, $2, $3, LEAST($4, r.last_seq) FROM rooms r WHERE r.id = $1
               ON CONFLICT (room_id, user_id, kind)
               DO UPDATE SET seq = EXCLUDED.seq, updated_at = now() WHERE receipts.seq < EXCLUDED.seq
               RETURNING seq""",
            uuid.UUID(room), uuid.UUID(user), kind, offset,
        )
        return moved is not None

    async def room_of_message(self, mid: str) -> str | None:
        room = await self.db.fetchval("SELECT room_id FROM messages WHERE mid = $1", mid)
        return None if room is None else str(room)
