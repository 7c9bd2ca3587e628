"""Chat: messages stored in PostgreSQL before they are acknowledged, receipts, history pages.

A message's offset is the room's next ``last_seq``, taken in the transaction that inserts it, and it
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
from realtime.store import Executor, new_mid, now_ms


class NotMember(ProtocolError):
    code = ErrorCode.PERMISSION_DENIED


@dataclass(frozen=True, slots=True)
class Sent:
    message: ChatMessage
    frame: bytes  # the encoded chat.msg, stored and published as is
    created: bool  # False for a retry answered with the original


class _LostRace(Exception):
    pass


class ChatStore:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    async def send(self, room: str, sender: str, cmid: str, body: str, reply_to: str = "") -> Sent:
        """Store a message from ``sender`` (the authenticated user). Raises ``NotMember``."""
        try:
            return await self._send(room, sender, cmid, body, reply_to)
        except _LostRace:
            found = await self._find(room, sender, cmid)
            assert found is not None
            return found

    async def _send(self, room: str, sender: str, cmid: str, body: str, reply_to: str) -> Sent:
        rid, uid = uuid.UUID(room), uuid.UUID(sender)
        async with self.db.acquire() as conn, conn.transaction():
            # One statement checks membership and the retry, and takes the next offset; the row
            # lock it holds orders concurrent senders of this room across every node.
            row = await conn.fetchrow(
                """UPDATE rooms SET last_seq = last_seq + 1
                   WHERE id = $1
                     AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)
                     AND NOT EXISTS (SELECT 1 FROM messages WHERE room_id = $1 AND sender = $2 AND cmid = $3)
                   RETURNING epoch, last_seq""",
                rid, uid, cmid,
            )
            if row is None:  # a retry, or not a member
                found = await self._find(room, sender, cmid, conn)
                if found is not None:
                    return found
                raise NotMember(f"not a member of room {room}")
            msg = ChatMessage(
                ch=f"room:{room}", epoch=str(row["epoch"]), offset=int(row["last_seq"]), mid=new_mid(),
                room=room, sender=sender, cmid=cmid, body=body, reply_to=reply_to, ts=now_ms(),
            )
            data = codec.encode(msg)
            inserted = await conn.fetchval(
                """INSERT INTO messages (room_id, seq, mid, cmid, sender, body, reply_to, frame)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (room_id, sender, cmid) DO NOTHING RETURNING seq""",
                rid, msg.offset, msg.mid, cmid, uid, body, reply_to, data,
            )
            if inserted is None:
                raise _LostRace  # roll back the offset: a concurrent retry stored it
            return Sent(msg, data, True)

    async def _find(self, room: str, sender: str, cmid: str,
                    conn: Executor | None = None) -> Sent | None:
        frame = await (conn or self.db).fetchval(
            "SELECT frame FROM messages WHERE room_id = $1 AND sender = $2 AND cmid = $3",
            uuid.UUID(room), uuid.UUID(sender), cmid,
        )
        if frame is None:
            return None
        data = bytes(frame)
        msg = codec.decode_server(data, len(data))
        assert isinstance(msg, ChatMessage)
        return Sent(msg, data, False)

    async def history(self, room: str, before: int, limit: int) -> tuple[list[ChatMessage], bool]:
        """Messages strictly before offset ``before`` (-1: the newest), newest first, and whether
        older ones exist. The caller checks membership."""
        limit = max(1, min(limit, 200))
        bound = before if before > 0 else 2**62
        rows = await self.db.fetch(
            "SELECT frame FROM messages WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            uuid.UUID(room), bound, limit + 1,
        )
        out: list[ChatMessage] = []
        for r in rows[:limit]:
            data = bytes(r["frame"])
            msg = codec.decode_server(data, len(data))
            assert isinstance(msg, ChatMessage)
            out.append(msg)
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
