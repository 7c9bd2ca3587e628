"""Rooms and their members: direct rooms (one per pair of users) and group rooms.

A room is also a channel (``room:<id>``) whose chat the hub stores and fans out; the room row
carries that channel's epoch and last offset, which the hub advances. This module creates rooms
and changes who belongs to them; ``access.Access.is_member`` answers who does, and the hub's chat
send checks ``room_members`` in the statement that stores a message, so a member removed here
cannot send from the moment the removal commits.

Room ids are the canonical lowercase UUIDs this module issues. The rules (pure functions below,
``Rooms`` applies them under a lock of the room's row, so concurrent changes of one room queue):

* A **direct** room belongs to two users and exists once per pair: opening it again returns it.
  It has no title, no roles that mean anything, no adds, no removals and no leaving (mute it).
  It cannot be opened while either user blocks the other, and a block suspends it: both
  memberships go (``Rooms.blocked``) until one of them opens it again once unblocked, history kept.
* A **group** room has a title of at most ``MAX_TITLE`` characters, at most ``MAX_INVITEES`` users
  per invitation (its creation included) and at most ``MAX_MEMBERS`` members. Its creator is its
  owner. Owner and admins add members and remove plain members; the owner also removes admins,
  promotes and demotes them, and hands ownership to another member (becoming an admin). Owner and
  admins rename it. Anyone leaves; an owner who leaves hands ownership to the oldest admin, else
  the oldest member; the last one out leaves an empty room behind.
* Nobody adds a user who blocks them or whom they block.
* Every member mutes or unmutes the room for themselves.

Who hears what (``feed`` frames, feed/events.py): ``room.added`` goes to users who joined (and to
a creator's other devices), ``room.removed`` to a user removed or leaving (whose subscriptions of
``room:<id>`` end on every node at once: ``unsub.ok`` with id 0), ``room.updated`` to the members
who stay (title, members, roles) or to oneself (mute).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import structlog

from amaro.infra.connect import Conn
from feed.events import FeedEvents
from feed.web import ApiError

log = structlog.get_logger(__name__)

MAX_TITLE = 100  # characters of a group room's title
MAX_INVITEES = 256  # users one request may add (a group's creation included)
MAX_MEMBERS = 1000  # members of a group room
ROLES = ("owner", "admin", "member")
DIRECT, GROUP = "direct", "group"


def no_room() -> ApiError:
    """A room that does not exist and a room the user is not a member of look the same."""
    return ApiError("not_found", "no such room", 404)


class Subscriptions(Protocol):
    """Live subscriptions on every node (the hub implements it)."""

    async def revoke(self, channel: str, user: str) -> None:
        """End ``user``'s subscriptions of ``channel`` on every node, now."""
        ...


# -- the rules ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    user: str
    role: str
    joined_at: datetime


def may_manage_members(role: str) -> bool:
    """Add members, rename the room."""
    return role in ("owner", "admin")


def may_remove(actor_role: str, target_role: str) -> bool:
    """The owner removes admins and members, an admin plain members (oneself: ``leave``)."""
    if actor_role == "owner":
        return target_role != "owner"
    return actor_role == "admin" and target_role == "member"


def may_set_role(actor_role: str) -> bool:
    """Only the owner promotes, demotes and hands over ownership."""
    return actor_role == "owner"


def successor(members: Iterable[Member]) -> Member | None:
    """Who owns a room its owner left: the oldest admin, else the oldest member (ties: by id)."""
    ranked = sorted((m for m in members if m.role != "owner"),
                    key=lambda m: (m.role != "admin", m.joined_at, m.user))
    return ranked[0] if ranked else None


def direct_key(a: str, b: str) -> str:
    x, y = sorted((str(uuid.UUID(a)), str(uuid.UUID(b))))
    return f"{x}:{y}"


def check_title(title: str) -> str:
    title = title.strip()
    if len(title) > MAX_TITLE or "\x00" in title:
        raise ApiError("invalid_field", f"'title' must be at most {MAX_TITLE} characters, no NUL", 422)
    return title


# -- storage without the rules (tests, load tests and ``Rooms`` below) -------------------------------------


async def _insert_room(conn: Conn, room_id: uuid.UUID, kind: str, title: str, key: str | None,
                       creator: str) -> bool:
    """Insert the room row; False when a direct room of that pair exists already."""
    inserted = await conn.fetchval(
        """INSERT INTO rooms (id, kind, title, direct_key, created_by, epoch)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (direct_key) DO NOTHING RETURNING id""",
        room_id, kind, title, key, uuid.UUID(creator), secrets.token_hex(4),  # the room channel's first epoch
    )
    return inserted is not None


async def _insert_members(conn: Conn, room_id: uuid.UUID, members: Iterable[tuple[str, str]]
                          ) -> list[str]:
    """Insert (user, role) memberships (existing ones stay as they are); the users inserted."""
    rows = await conn.fetch(
        """INSERT INTO room_members (room_id, user_id, role)
           SELECT $1, t.user_id, t.role FROM unnest($2::uuid[], $3::text[]) AS t (user_id, role)
           ON CONFLICT DO NOTHING RETURNING user_id""",
        room_id, [uuid.UUID(u) for u, _ in members], [r for _, r in members],
    )
    return [str(r["user_id"]) for r in rows]


def _others(creator: str, members: Iterable[str]) -> list[str]:
    me = str(uuid.UUID(creator))
    out: list[str] = []
    for m in members:
        canonical = str(uuid.UUID(m))
        if canonical != me and canonical not in out:
            out.append(canonical)
    return out


async def create_room(db: asyncpg.Pool, creator: str, members: Iterable[str], *, title: str = "",
                      direct: bool = False) -> str:
    """Create a group room (or the direct room of two users, returned if it exists) with
    ``creator`` as owner and ``members``; returns the room id. No rule is checked here (no limit,
    no block): the API's ``Rooms`` checks them; tests and load tests build rooms with this."""
    others = _others(creator, members)
    if direct and len(others) != 1:
        raise ValueError("a direct room has exactly two members")
    key = direct_key(creator, others[0]) if direct else None
    room_id = uuid.uuid4()
    async with db.acquire() as conn, conn.transaction():
        if not await _insert_room(conn, room_id, DIRECT if direct else GROUP, title, key, creator):
            return str(await conn.fetchval("SELECT id FROM rooms WHERE direct_key = $1", key))
        lead = "member" if direct else "owner"
        await _insert_members(conn, room_id, [(creator, lead), *((m, "member") for m in others)])
    return str(room_id)


async def add_members(db: asyncpg.Pool, room_id: str, members: Iterable[str]) -> None:
    """Add members to a room (idempotent), no rule checked (see ``create_room``)."""
    async with db.acquire() as conn:
        await _insert_members(conn, uuid.UUID(room_id), [(m, "member") for m in members])


async def remove_member(db: asyncpg.Pool, room_id: str, user: str, live: Subscriptions | None = None) -> None:
    """Remove ``user`` from a room, no rule checked. With ``live``, their open subscriptions of
    ``room:<id>`` end at once on every node; without it they end at their next resubscribe, which
    is refused."""
    await db.execute(
        "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2", uuid.UUID(room_id), uuid.UUID(user)
    )
    if live is not None:
        await live.revoke(f"room:{room_id}", str(uuid.UUID(user)))


# -- the rules applied --------------------------------------------------------------------------------------

# One room as its member sees it (``$1`` the member); ``$2`` one room or NULL; ``$3``/``$4`` the
# keyset position (active_us, id) to continue below, or NULL; ``$5`` the page size. A room's
# activity is the latest of its creation, its last change, the member's joining and its last message.
_ROOMS_OF = """
WITH mine AS (
    SELECT r.id, r.kind, r.title, r.created_at, rm.role, rm.muted,
           GREATEST(r.created_at, r.updated_at, rm.joined_at, COALESCE(m.created_at, r.created_at)) AS active_at
      FROM room_members rm
      JOIN rooms r ON r.id = rm.room_id
      LEFT JOIN messages m ON m.room_id = r.id AND m.seq = r.last_seq
     WHERE rm.user_id = $1 AND ($2::uuid IS NULL OR rm.room_id = $2)
), keyed AS (
    SELECT mine.*, floor(extract(epoch FROM mine.active_at) * 1000000)::bigint AS active_us FROM mine
), paged AS (
    SELECT * FROM keyed
     WHERE $3::bigint IS NULL OR (keyed.active_us, keyed.id) < ($3::bigint, $4::uuid)
     ORDER BY keyed.active_us DESC, keyed.id DESC LIMIT $5
)
SELECT p.*, (SELECT count(*) FROM room_members c WHERE c.room_id = p.id) AS members_count,
       peer.user_id AS peer_id, peer.username AS peer_username, peer.display_name AS peer_display_name
  FROM paged p
  LEFT JOIN LATERAL (
      SELECT o.user_id, u.username, u.display_name FROM room_members o JOIN users u ON u.id = o.user_id
       WHERE o.room_id = p.id AND o.user_id <> $1 LIMIT 1) AS peer ON p.kind = 'direct'
 ORDER BY p.active_us DESC, p.id DESC
"""


def _summary(row: asyncpg.Record) -> dict[str, Any]:
    peer = None
    if row["peer_id"] is not None:
        peer = {"id": str(row["peer_id"]), "username": row["peer_username"],
                "display_name": row["peer_display_name"]}
    return {"id": str(row["id"]), "kind": row["kind"], "title": row["title"],
            "members_count": int(row["members_count"]), "my_role": row["role"], "muted": bool(row["muted"]),
            "created_at": row["created_at"], "active_at": row["active_at"], "peer": peer}


@dataclass(frozen=True, slots=True)
class Page:
    rooms: list[dict[str, Any]]
    next: tuple[int, str] | None  # the keyset position after the last room, when there may be more


@dataclass(frozen=True, slots=True)
class Opened:
    room: str
    created: bool


_Tell = Callable[[], Awaitable[None]]


class Rooms:
    """The rules above over PostgreSQL, telling the people concerned through ``events``. Every
    method acts as the authenticated ``actor``; ids are canonical UUIDs (the API checks them)."""

    def __init__(self, db: asyncpg.Pool, events: FeedEvents | None) -> None:
        self.db = db
        self.events = events

    # -- reading -----------------------------------------------------------------------------------------

    async def page(self, user: str, after: tuple[int, str] | None, limit: int) -> Page:
        """``user``'s rooms, most recently active first, ``limit`` at most, below ``after``."""
        rows = await self.db.fetch(_ROOMS_OF, uuid.UUID(user), None, after[0] if after else None,
                                   uuid.UUID(after[1]) if after else None, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if rows else None
        return Page([_summary(r) for r in rows],
                    (int(last["active_us"]), str(last["id"])) if more and last is not None else None)

    async def get(self, user: str, room: str) -> dict[str, Any]:
        """One room with its members, as ``user`` (a member) sees it; ``not_found`` otherwise."""
        async with self.db.acquire() as conn:
            row = await conn.fetchrow(_ROOMS_OF, uuid.UUID(user), uuid.UUID(room), None, None, 1)
            if row is None:
                raise no_room()
            members = await conn.fetch(
                """SELECT rm.user_id, u.username, u.display_name, rm.role, rm.joined_at
                     FROM room_members rm JOIN users u ON u.id = rm.user_id
                    WHERE rm.room_id = $1 ORDER BY rm.joined_at, rm.user_id""",
                uuid.UUID(room))
        return {**_summary(row), "members": [
            {"id": str(m["user_id"]), "username": m["username"], "display_name": m["display_name"],
             "role": m["role"], "joined_at": m["joined_at"]} for m in members]}

    # -- creating -------------------------------------------------------------------------------------------

    async def open_direct(self, actor: str, other: str) -> Opened:
        """The direct room of ``actor`` and ``other``: created, or found (and its memberships
        restored after a block was lifted)."""
        if other == actor:
            raise ApiError("invalid_field", "a direct room is with one other user", 422)
        key = direct_key(actor, other)
        async with self.db.acquire() as conn, conn.transaction():
            # One at a time per pair, with ``blocked`` too: a block that commits while the room is
            # being opened either is seen here or suspends the room right after.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"room-direct:{key}")
            await self._check_invitees(conn, actor, [other])
            found = await conn.fetchval("SELECT id FROM rooms WHERE direct_key = $1", key)
            room_id = found if found is not None else uuid.uuid4()
            if found is None and not await _insert_room(conn, room_id, DIRECT, "", key, actor):
                # made meanwhile by ``create_room``, which does not take the pair's lock
                room_id = found = await conn.fetchval("SELECT id FROM rooms WHERE direct_key = $1", key)
            joined = await _insert_members(conn, room_id, [(actor, "member"), (other, "member")])
        room = str(room_id)
        await self._run([self._tell(joined, "room.added", {"room": room, "kind": DIRECT, "title": "", "by": actor})])
        return Opened(room, found is None)

    async def create_group(self, actor: str, members: Sequence[str], title: str) -> str:
        title = check_title(title)
        others = _others(actor, members)
        if len(others) > MAX_INVITEES:
            raise ApiError("invalid_field", f"a room starts with at most {MAX_INVITEES} invited users", 422)
        room_id = uuid.uuid4()
        async with self.db.acquire() as conn, conn.transaction():
            await self._check_invitees(conn, actor, others)
            await _insert_room(conn, room_id, GROUP, title, None, actor)
            await _insert_members(conn, room_id, [(actor, "owner"), *((m, "member") for m in others)])
        room = str(room_id)
        await self._run([self._tell([actor, *others], "room.added",
                                    {"room": room, "kind": GROUP, "title": title, "by": actor})])
        return room

    # -- changing -------------------------------------------------------------------------------------------

    async def add(self, actor: str, room: str, users: Sequence[str]) -> list[str]:
        """Add ``users`` (members already are skipped); returns those added."""
        wanted = _others(actor, users)
        if len(wanted) > MAX_INVITEES:
            raise ApiError("invalid_field", f"add at most {MAX_INVITEES} users at once", 422)
        rid = uuid.UUID(room)
        async with self.db.acquire() as conn, conn.transaction():
            await self._managed(conn, rid, actor, "add members")
            await self._check_invitees(conn, actor, wanted)
            present = {str(r["user_id"]) for r in await conn.fetch(
                "SELECT user_id FROM room_members WHERE room_id = $1", rid)}
            added = [u for u in wanted if u not in present]
            if len(present) + len(added) > MAX_MEMBERS:
                raise ApiError("room_full", f"a room has at most {MAX_MEMBERS} members", 409)
            if not added:
                return []
            await _insert_members(conn, rid, [(u, "member") for u in added])
            title = str(await conn.fetchval("UPDATE rooms SET updated_at = now() WHERE id = $1 RETURNING title", rid))
        await self._run([
            self._tell(added, "room.added", {"room": room, "kind": GROUP, "title": title, "by": actor}),
            self._tell(sorted(present), "room.updated", {"room": room, "by": actor, "change": "members",
                                                         "added": added, "members_count": len(present) + len(added)}),
        ])
        return added

    async def remove(self, actor: str, room: str, target: str) -> None:
        """Remove ``target`` (``actor`` themselves: ``leave``)."""
        if target == actor:
            await self.leave(actor, room)
            return
        rid = uuid.UUID(room)
        async with self.db.acquire() as conn, conn.transaction():
            kind, role = await self._lock(conn, rid, actor)
            target_role = await self._role(conn, rid, target)
            _group_only(kind)
            if not may_remove(role, target_role):
                raise ApiError("forbidden", "the owner removes admins and members, admins remove members", 403)
            await conn.execute("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2", rid, uuid.UUID(target))
            stayed = await self._touch(conn, rid)
        await self._gone(room, target, actor, "removed", stayed, {})

    async def leave(self, actor: str, room: str) -> None:
        rid = uuid.UUID(room)
        async with self.db.acquire() as conn, conn.transaction():
            kind, role = await self._lock(conn, rid, actor)
            if kind == DIRECT:
                raise ApiError("direct_room", "a direct room keeps its two members; mute it instead", 409)
            await conn.execute("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2", rid, uuid.UUID(actor))
            roles: dict[str, str] = {}
            if role == "owner":
                rows = await conn.fetch("SELECT user_id, role, joined_at FROM room_members WHERE room_id = $1", rid)
                heir = successor(Member(str(r["user_id"]), r["role"], r["joined_at"]) for r in rows)
                if heir is not None:
                    await conn.execute("UPDATE room_members SET role = 'owner' WHERE room_id = $1 AND user_id = $2",
                                       rid, uuid.UUID(heir.user))
                    roles[heir.user] = "owner"
            stayed = await self._touch(conn, rid)
        await self._gone(room, actor, actor, "left", stayed, {"roles": roles} if roles else {})

    async def set_role(self, actor: str, room: str, target: str, new_role: str) -> None:
        """The owner makes ``target`` an admin or a member, or the owner (becoming an admin)."""
        if new_role not in ROLES:
            raise ApiError("invalid_field", "'role' must be one of " + ", ".join(ROLES), 422)
        rid = uuid.UUID(room)
        async with self.db.acquire() as conn, conn.transaction():
            kind, role = await self._lock(conn, rid, actor)
            target_role = await self._role(conn, rid, target)
            _group_only(kind)
            if not may_set_role(role):
                raise ApiError("forbidden", "only the owner changes roles", 403)
            if target == actor:
                if new_role == "owner":
                    return
                raise ApiError("owner_must_transfer", "the owner hands ownership to another member first", 409)
            if target_role == new_role:
                return
            roles = {target: new_role}
            if new_role == "owner":
                roles[actor] = "admin"
            await conn.execute(
                """UPDATE room_members rm SET role = t.role
                     FROM unnest($2::uuid[], $3::text[]) AS t (user_id, role)
                    WHERE rm.room_id = $1 AND rm.user_id = t.user_id""",
                rid, [uuid.UUID(u) for u in roles], list(roles.values()))
            members = await self._touch(conn, rid)
        await self._run([self._tell(members, "room.updated",
                                    {"room": room, "by": actor, "change": "roles", "roles": roles})])

    async def rename(self, actor: str, room: str, title: str) -> str:
        title = check_title(title)
        rid = uuid.UUID(room)
        async with self.db.acquire() as conn, conn.transaction():
            await self._managed(conn, rid, actor, "rename a room")
            await conn.execute("UPDATE rooms SET title = $2 WHERE id = $1", rid, title)
            members = await self._touch(conn, rid)
        await self._run([self._tell(members, "room.updated",
                                    {"room": room, "by": actor, "change": "title", "title": title})])
        return title

    async def set_muted(self, actor: str, room: str, muted: bool) -> None:
        found = await self.db.fetchval(
            "UPDATE room_members SET muted = $3 WHERE room_id = $1 AND user_id = $2 RETURNING muted",
            uuid.UUID(room), uuid.UUID(actor), muted)
        if found is None:
            raise no_room()
        await self._run([self._tell([actor], "room.updated",
                                    {"room": room, "by": actor, "change": "muted", "muted": muted})])

    async def blocked(self, a: str, b: str) -> None:
        """``a`` and ``b`` are no longer on speaking terms (one blocked the other): their direct
        room, if any, loses both members (history kept) until one of them opens it again after the
        block is lifted. Call after the block committed."""
        key = direct_key(a, b)
        async with self.db.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"room-direct:{key}")
            room_id = await conn.fetchval("SELECT id FROM rooms WHERE direct_key = $1 FOR UPDATE", key)
            if room_id is None:
                return
            gone = await conn.fetch("DELETE FROM room_members WHERE room_id = $1 RETURNING user_id", room_id)
        room = str(room_id)
        for row in gone:
            await self._gone(room, str(row["user_id"]), str(row["user_id"]), "closed", [], {})

    # -- helpers -------------------------------------------------------------------------------------------

    async def _lock(self, conn: Conn, rid: uuid.UUID, actor: str) -> tuple[str, str]:
        """Lock the room's row (changes of one room queue; chat sends wait for the change) and
        return its kind and ``actor``'s role; ``not_found`` unless ``actor`` is a member."""
        row = await conn.fetchrow(
            """SELECT r.kind, rm.role FROM rooms r
                 LEFT JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = $2
                WHERE r.id = $1 FOR UPDATE OF r""",
            rid, uuid.UUID(actor))
        if row is None or row["role"] is None:
            raise no_room()
        return str(row["kind"]), str(row["role"])

    async def _managed(self, conn: Conn, rid: uuid.UUID, actor: str, what: str) -> None:
        """Lock a group room that ``actor`` manages (owner or admin)."""
        kind, role = await self._lock(conn, rid, actor)
        _group_only(kind)
        if not may_manage_members(role):
            raise ApiError("forbidden", f"only the owner and admins {what}", 403)

    @staticmethod
    async def _role(conn: Conn, rid: uuid.UUID, user: str) -> str:
        role = await conn.fetchval("SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2",
                                   rid, uuid.UUID(user))
        if role is None:
            raise ApiError("member_not_found", "no such member of this room", 404)
        return str(role)

    @staticmethod
    async def _touch(conn: Conn, rid: uuid.UUID) -> list[str]:
        """Mark the room changed now; returns its members."""
        rows = await conn.fetch(
            """WITH touched AS (UPDATE rooms SET updated_at = now() WHERE id = $1)
               SELECT user_id FROM room_members WHERE room_id = $1""", rid)
        return [str(r["user_id"]) for r in rows]

    @staticmethod
    async def _check_invitees(conn: Conn, actor: str, users: Sequence[str]) -> None:
        """Every user exists, and neither blocks the other with ``actor``. A user who blocks the
        actor answers like one who does not exist: the actor learns nothing."""
        if not users:
            return
        ids = [uuid.UUID(u) for u in users]
        known = {str(r["id"]) for r in await conn.fetch(
            "SELECT id FROM users WHERE id = ANY($1::uuid[]) AND disabled_at IS NULL", ids)}
        blocks = await conn.fetch(
            """SELECT blocker_id, blocked_id FROM blocks
                WHERE (blocker_id = $1 AND blocked_id = ANY($2::uuid[]))
                   OR (blocked_id = $1 AND blocker_id = ANY($2::uuid[]))""",
            uuid.UUID(actor), ids)
        blocking_me = {str(r["blocker_id"]) for r in blocks if str(r["blocked_id"]) == actor}
        missing = [u for u in users if u not in known or u in blocking_me]
        if missing:
            raise ApiError("user_not_found", f"no such user: {missing[0]}", 404)
        if blocks:
            raise ApiError("blocked", f"you blocked user {blocks[0]['blocked_id']}; unblock them first", 403)

    async def _gone(self, room: str, user: str, by: str, reason: str, stayed: list[str],
                    extra: dict[str, Any]) -> None:
        """``user`` is out of ``room``: their live subscriptions end everywhere first, then the
        frames: ``room.removed`` to them, ``room.updated`` to those who stayed."""
        tells: list[_Tell] = []
        if self.events is not None:
            tells.append(lambda: self._revoke(room, user))
        tells.append(self._tell([user], "room.removed", {"room": room, "by": by, "reason": reason}))
        tells.append(self._tell(stayed, "room.updated", {"room": room, "by": by, "change": "members",
                                                         "removed": [user], "members_count": len(stayed), **extra}))
        await self._run(tells)

    async def _revoke(self, room: str, user: str) -> None:
        assert self.events is not None
        await self.events.revoke(f"room:{room}", user)

    def _tell(self, users: Sequence[str], kind: str, data: dict[str, Any]) -> _Tell:
        async def tell() -> None:
            if self.events is not None and users:
                await self.events.feed_updates(list(users), kind, data)
        return tell

    @staticmethod
    async def _run(tells: Sequence[_Tell]) -> None:
        """Tell, in order, after the change committed. A failure is logged, not raised: the change
        stands, and a client that missed a frame sees it in its next list."""
        for tell in tells:
            try:
                await tell()
            except Exception as exc:
                log.warning("room_event_failed", error=type(exc).__name__)


def _group_only(kind: str) -> None:
    if kind == DIRECT:
        raise ApiError("direct_room", "a direct room has its two members, no title and no roles", 409)
