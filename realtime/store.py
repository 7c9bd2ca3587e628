"""PostgreSQL, the source of truth of durable channel events.

Offsets are assigned here, in the transaction that stores the event: ``rooms.last_seq`` for
``room:<id>`` (its chat messages, see chat.py, and the events published on it, kept in
``channel_events``: one counter and one epoch per room) and ``channels.last_seq`` for every other
channel (the ``channel_events`` log below). The row lock taken by ``UPDATE ... SET last_seq = last_seq + 1``
orders concurrent writers of one channel, across nodes: offset N+1 is only handed out after N is
committed. A ``channel_events`` row keeps its encoded frame; a chat message is rebuilt from its
columns (``message_from_row``), byte for byte what was published, so Redis can always be refilled.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from protocol import codec
from protocol.frames import ChatMessage, Frame
from realtime.channels import parse_channel

#: Errors of one statement that another statement on the same connection would not repeat (bad
#: data in one item): a group-commit batch is then retried item by item so only the bad item fails.
ITEM_ERRORS: tuple[type[BaseException], ...] = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


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
        if kind == "room":  # its chat messages and its published events share one counter
            rows = await self.db.fetch(
                f"{MESSAGE_SELECT} WHERE m.room_id = $1 AND m.seq > $2 AND m.seq <= $3 ORDER BY m.seq",
                _uuid(ident), after, upto,
            )
            events = await self.db.fetch(
                """SELECT seq, frame FROM channel_events
                   WHERE channel = $1 AND seq > $2 AND seq <= $3 ORDER BY seq""",
                channel, after, upto,
            )
            merged = [(int(r["seq"]), codec.encode(message_from_row(r))) for r in rows]
            merged += [(int(r["seq"]), bytes(r["frame"])) for r in events]
            return sorted(merged, key=lambda item: item[0])
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
        if channel.startswith("room:"):  # the room's own counter (append_batch)
            async with self.db.acquire() as conn:
                result = (await append_batch(conn, [Appending(channel, kind, sender, idem_key, build)]))[0]
            if isinstance(result, BaseException):
                raise result
            return result
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


@dataclass(frozen=True, slots=True)
class Appending:
    """One event of a non-room channel waiting in a batch (``ChannelStore.append_batch``)."""

    channel: str
    kind: str
    sender: str
    idem_key: str | None
    build: FrameBuilder
    frame_type: str = "event"  # the built frame's type (the receiving nodes count frames by it)


async def append_batch(conn: Executor, items: Sequence[Appending]) -> list[Stored | BaseException]:
    """Store a batch of events of any non-room channels in one transaction (group commit).

    The channels are created if needed and locked in name order (two batches never deadlock);
    statements after the lock see every earlier commit, so idempotency keys are checked exactly
    and the insert never loses a race. Offsets per channel follow the batch order. One result per
    item: the ``Stored`` (``created=False`` for a retried key, also within the batch) or that
    item's exception (its frame could not be built). Raises when the database fails (nothing of
    the batch is stored)."""
    results: list[Stored | BaseException | None] = [None] * len(items)
    # A room's events (``pub`` on ``room:<id>``) share the room's counter and epoch with its chat
    # messages (``rooms.last_seq``, locked by id like chat_send_batch does): one stream, one order.
    rooms = sorted({it.channel for it in items if it.channel.startswith("room:")})
    names = sorted({it.channel for it in items} - set(rooms))
    async with conn.transaction():
        position: dict[str, tuple[str, int]] = {}
        if names:
            await conn.execute(
                """INSERT INTO channels (name, epoch)
                   SELECT n, e FROM unnest($1::text[], $2::text[]) AS t (n, e) ORDER BY n
                   ON CONFLICT (name) DO NOTHING""",
                names, [new_epoch() for _ in names],
            )
            rows = await conn.fetch(
                "SELECT name, epoch, last_seq FROM channels WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE",
                names,
            )
            position.update((str(r["name"]), (str(r["epoch"]), int(r["last_seq"]))) for r in rows)
        if rooms:
            rows = await conn.fetch(
                "SELECT id, epoch, last_seq FROM rooms WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
                [_uuid(ch.removeprefix("room:")) for ch in rooms],
            )
            position.update((f"room:{r['id']}", (str(r["epoch"]), int(r["last_seq"]))) for r in rows)
        keyed = [(it.channel, it.sender, it.idem_key) for it in items if it.idem_key is not None]
        found: dict[tuple[str, str, str], Stored] = {}
        if keyed:
            for r in await conn.fetch(
                """SELECT e.channel, e.sender, e.idem_key, e.seq, e.mid, e.frame
                     FROM channel_events e
                    WHERE (e.channel, e.sender, e.idem_key) IN
                          (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))""",
                [k[0] for k in keyed], [k[1] for k in keyed], [k[2] for k in keyed],
            ):
                channel = str(r["channel"])
                found[(channel, str(r["sender"]), str(r["idem_key"]))] = Stored(
                    channel, position[channel][0], int(r["seq"]), str(r["mid"]), bytes(r["frame"]), False)
        ts = now_ms()
        new: list[tuple[int, Stored, Appending]] = []
        for i, it in enumerate(items):
            key = None if it.idem_key is None else (it.channel, it.sender, it.idem_key)
            if key is not None and key in found:
                original = found[key]
                results[i] = original if not original.created else Stored(
                    original.channel, original.epoch, original.offset, original.mid, original.frame, False)
                continue
            if it.channel not in position:  # a room that does not exist (any more)
                results[i] = LookupError(f"no such channel {it.channel}")
                continue
            epoch, last = position[it.channel]
            mid = new_mid()
            try:
                data = codec.encode(it.build(epoch, last + 1, mid, ts))
            except Exception as exc:  # this item only: its offset is not taken
                results[i] = exc
                continue
            position[it.channel] = (epoch, last + 1)
            stored = Stored(it.channel, epoch, last + 1, mid, data, True)
            results[i] = stored
            new.append((i, stored, it))
            if key is not None:
                found[key] = stored  # the same key again in this batch answers like a retry
        if new:
            await conn.execute(
                """INSERT INTO channel_events (channel, seq, mid, kind, sender, idem_key, frame)
                   SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[],
                                        $7::bytea[])""",
                [s.channel for _, s, _ in new], [s.offset for _, s, _ in new], [s.mid for _, s, _ in new],
                [it.kind for _, _, it in new], [it.sender for _, _, it in new], [it.idem_key for _, _, it in new],
                [s.frame for _, s, _ in new],
            )
            tops = {s.channel: s.offset for _, s, _ in new}
            room_tops = {ch: top for ch, top in tops.items() if ch in rooms}
            channel_tops = {ch: top for ch, top in tops.items() if ch not in rooms}
            if channel_tops:
                await conn.execute(
                    """UPDATE channels c SET last_seq = v.top FROM unnest($1::text[], $2::int8[]) AS v (name, top)
                        WHERE c.name = v.name""",
                    list(channel_tops), list(channel_tops.values()),
                )
            if room_tops:
                await conn.execute(
                    """UPDATE rooms r SET last_seq = v.top FROM unnest($1::uuid[], $2::int8[]) AS v (id, top)
                        WHERE r.id = v.id""",
                    [_uuid(ch.removeprefix("room:")) for ch in room_tops], list(room_tops.values()),
                )
    return [r for r in results if r is not None]


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
