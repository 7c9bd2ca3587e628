"""Chat: messages stored in PostgreSQL before they are acknowledged, receipts, history pages.

A message's offset is the room's next ``last_seq``, taken in the statement that inserts it, and it
is the offset of the ``room:<id>`` channel in Redis too: clients see one offset space. ``cmid`` (the
client message id) is unique per (room, sender): a retried send returns the original message.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from protocol import codec
from protocol.errors import ErrorCode, ProtocolError
from protocol.frames import ChatMessage
from realtime.store import ITEM_ERRORS, MESSAGE_SELECT, message_from_row, new_mid, now_ms


class NotMember(ProtocolError):
    code = ErrorCode.PERMISSION_DENIED


@dataclass(frozen=True, slots=True)
class Sent:
    message: ChatMessage
    frame: bytes  # the encoded chat.msg, published as is (and rebuilt identically from its row)
    created: bool  # False for a retry answered with the original


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One chat send waiting in a batch (``ChatStore.send_batch``)."""

    room: str
    sender: str
    cmid: str
    body: str
    reply_to: str = ""


_SEND_BATCH = "SELECT out_ord, out_epoch, out_seq FROM chat_send_batch($1, $2, $3, $4, $5, $6, $7)"


class ChatStore:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    async def send_batch(self, items: Sequence[Outgoing], conn: asyncpg.Connection | None = None
                         ) -> list[Sent | BaseException]:
        """Store a batch of sends from any rooms in one transaction and one round trip (group
        commit, see sql/0003_chat_send_batch.sql). Per-room offsets follow the batch order. Returns
        one result per item, in order: the ``Sent``, or the exception for that item alone
        (``NotMember``); a retried cmid (stored earlier, or twice in this batch) returns the
        original with ``created=False``. Raises only when the database itself fails (nothing of
        the batch is then stored)."""
        results: list[Sent | BaseException | None] = [None] * len(items)
        first: dict[tuple[str, str, str], int] = {}
        fresh: list[int] = []  # indexes sent to the database (first occurrence of each cmid)
        for i, it in enumerate(items):
            key = (it.room, it.sender, it.cmid)
            if key not in first:
                first[key] = i
                fresh.append(i)
        mids = [new_mid() for _ in fresh]
        ts = now_ms()
        try:
            rows = await self._store([items[i] for i in fresh], mids, ts, conn)
        except ITEM_ERRORS:
            if len(fresh) == 1:
                raise
            rows = None
        if rows is None:  # one item's data broke the statement: store the others one by one
            stored_rows: dict[int, tuple[str, int]] = {}
            for n, i in enumerate(fresh):
                try:
                    one = await self._store([items[i]], [mids[n]], ts, conn)
                except ITEM_ERRORS as exc:
                    results[i] = exc
                    continue
                if one:
                    stored_rows[n] = one[0]
        else:
            stored_rows = rows
        for n, i in enumerate(fresh):
            if results[i] is not None:
                continue
            it = items[i]
            pos = stored_rows.get(n)
            if pos is None:  # a retry of a stored message, or not a member
                found = await self._find(it.room, it.sender, it.cmid)
                results[i] = found if found is not None else NotMember(f"not a member of room {it.room}")
                continue
            msg = ChatMessage(ch=f"room:{it.room}", epoch=pos[0], offset=pos[1], mid=mids[n], room=it.room,
                              sender=it.sender, cmid=it.cmid, body=it.body, reply_to=it.reply_to, ts=ts)
            results[i] = Sent(msg, codec.encode(msg), True)
        for i, it in enumerate(items):
            if results[i] is None:  # the same cmid again in this batch: answered like a retry
                original = results[first[(it.room, it.sender, it.cmid)]]
                results[i] = Sent(original.message, original.frame, False) if isinstance(original, Sent) else original
        return [r for r in results if r is not None]

    async def _store(self, items: Sequence[Outgoing], mids: Sequence[str], ts: int,
                     conn: asyncpg.Connection | None) -> dict[int, tuple[str, int]]:
        """Input index -> (epoch, offset) of each message stored."""
        args = (  # ids go as text: asyncpg parses them in C, no uuid.UUID built in the event loop
            [it.room for it in items], [it.sender for it in items],
            [it.cmid for it in items], list(mids), [it.body for it in items], [it.reply_to for it in items],
            [ts] * len(items),
        )
        executor = self.db if conn is None else conn
        rows = await executor.fetch(_SEND_BATCH, *args)
        return {int(r["out_ord"]) - 1: (str(r["out_epoch"]), int(r["out_seq"])) for r in rows}

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

    async def summaries(self, room_ids: Sequence[str], user: str) -> dict[str, dict[str, Any]]:
        """Per room: its last message (a ``chat.msg`` as a map, or None), its last offset, and how
        many messages came after ``user``'s read receipt. One query for every room."""
        rows = await self.db.fetch(
            f"""WITH wanted AS (
                   SELECT r.id, r.last_seq,
                          COALESCE((SELECT seq FROM receipts WHERE room_id = r.id AND user_id = $2 AND kind = 'read'),
                                   0) AS read_seq
                     FROM rooms r WHERE r.id = ANY($1::uuid[]))
               SELECT w.id AS room, w.last_seq,
                      (SELECT count(*) FROM messages u WHERE u.room_id = w.id AND u.seq > w.read_seq) AS unread,
                      last.*
               FROM wanted w LEFT JOIN LATERAL (
                   {MESSAGE_SELECT} WHERE m.room_id = w.id AND m.seq <= w.last_seq
                   ORDER BY m.seq DESC LIMIT 1) AS last ON true""",  # noqa: S608
            [uuid.UUID(r) for r in room_ids], uuid.UUID(user))
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            # The room's offsets count its published events too (``pub``): the last message and
            # the unread count are of messages.
            last = codec.as_map(message_from_row(row)) if row["mid"] is not None else None
            out[str(row["room"])] = {"last_message": last, "last_offset": int(row["last_seq"]),
                                     "unread": int(row["unread"])}
        return out

    async def receipt(self, room: str, user: str, kind: str, offset: int) -> int | None:
        """Move ``user``'s delivered/read position forward (never back, never past the room's last
        message). Returns the stored position when it moved, else None."""
        moved = await self.db.fetchval(
            """INSERT INTO receipts (room_id, user_id, kind, seq)
               SELECT $1, $2, $3, LEAST($4, r.last_seq) FROM rooms r WHERE r.id = $1
               ON CONFLICT (room_id, user_id, kind)
               DO UPDATE SET seq = EXCLUDED.seq, updated_at = now() WHERE receipts.seq < EXCLUDED.seq
               RETURNING seq""",
            uuid.UUID(room), uuid.UUID(user), kind, offset,
        )
        return None if moved is None else int(moved)

    async def room_of_message(self, mid: str) -> str | None:
        room = await self.db.fetchval("SELECT room_id FROM messages WHERE mid = $1", mid)
        return None if room is None else str(room)
