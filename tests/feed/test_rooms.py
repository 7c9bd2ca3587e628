"""Rooms and their members: the rules as pure functions, then applied on real PostgreSQL
(``Rooms``), with who is told what recorded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from feed.rooms import (
    MAX_INVITEES,
    MAX_MEMBERS,
    MAX_TITLE,
    Member,
    Rooms,
    add_members,
    check_title,
    create_room,
    may_manage_members,
    may_remove,
    may_set_role,
    successor,
)
from feed.web import ApiError
from tests.realtime.conftest import make_user


@dataclass
class Told:
    """A ``FeedEvents`` that records: (user, kind, data) frames and (channel, user) revocations."""

    frames: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)
    revoked: list[tuple[str, str]] = field(default_factory=list)

    async def feed_update(self, user_id: str, kind: str, data: dict[str, object],
                          idem_key: str | None = None) -> None:
        self.frames.append((user_id, kind, data))

    async def feed_updates(self, user_ids: Sequence[str], kind: str, data: dict[str, object],
                           idem_key: str | None = None) -> None:
        for user in user_ids:
            await self.feed_update(user, kind, data)

    async def channel_event(self, channel: str, sender: str, data: dict[str, object],
                            idem_key: str | None = None) -> int:
        raise AssertionError("rooms tell members through their feed")

    async def revoke(self, channel: str, user: str) -> None:
        self.revoked.append((channel, user))

    def to(self, user: str, kind: str) -> list[dict[str, object]]:
        return [d for u, k, d in self.frames if u == user and k == kind]


@pytest.fixture
def told() -> Told:
    return Told()


@pytest.fixture
def rooms(db: asyncpg.Pool, told: Told) -> Rooms:
    return Rooms(db, told)


async def refused(call: object, code: str, status: int) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call  # type: ignore[misc]
    assert (caught.value.code, caught.value.status) == (code, status), caught.value.message
    return caught.value


async def block(db: asyncpg.Pool, blocker: str, blocked: str) -> None:
    await db.execute("INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)", uuid.UUID(blocker),
                     uuid.UUID(blocked))


async def roles_of(db: asyncpg.Pool, room: str) -> dict[str, str]:
    rows = await db.fetch("SELECT user_id, role FROM room_members WHERE room_id = $1", uuid.UUID(room))
    return {str(r["user_id"]): r["role"] for r in rows}


# -- the rules, pure -----------------------------------------------------------------------------------------


def test_who_may_do_what() -> None:
    assert [may_manage_members(r) for r in ("owner", "admin", "member")] == [True, True, False]
    assert [may_set_role(r) for r in ("owner", "admin", "member")] == [True, False, False]
    allowed = {(a, t) for a in ("owner", "admin", "member") for t in ("owner", "admin", "member") if may_remove(a, t)}
    assert allowed == {("owner", "admin"), ("owner", "member"), ("admin", "member")}


def test_an_owner_who_leaves_is_followed_by_the_oldest_admin_else_the_oldest_member() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    older, newer = t0, t0 + timedelta(seconds=1)
    members = [Member("m-old", "member", older), Member("a-2", "admin", newer), Member("a-1", "admin", newer),
               Member("owner", "owner", older)]
    assert successor(members) == Member("a-1", "admin", newer)  # same age: the smaller id
    assert successor([m for m in members if m.role != "admin"]) == Member("m-old", "member", older)
    assert successor([Member("owner", "owner", older)]) is None
    assert successor([]) is None


def test_titles() -> None:
    assert check_title("  Kris  ") == "Kris"
    assert check_title("x" * MAX_TITLE) == "x" * MAX_TITLE
    for bad in ("x" * (MAX_TITLE + 1), "a\x00b"):
        with pytest.raises(ApiError) as caught:
            check_title(bad)
        assert caught.value.status == 422


# -- direct rooms --------------------------------------------------------------------------------------------


async def test_a_direct_room_is_one_per_pair_whoever_opens_it(rooms: Rooms, told: Told, db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    first = await rooms.open_direct(a, b)
    assert first.created
    again, reverse = await rooms.open_direct(a, b), await rooms.open_direct(b, a)
    assert (again.room, reverse.room) == (first.room, first.room) and not again.created and not reverse.created
    racing = await asyncio.gather(*(rooms.open_direct(*pair) for pair in [(a, b), (b, a)] * 4))
    assert {o.room for o in racing} == {first.room}
    assert await roles_of(db, first.room) == {a: "member", b: "member"}
    # Both are told once, when it was made.
    assert told.to(a, "room.added") == told.to(b, "room.added") == [
        {"room": first.room, "kind": "direct", "title": "", "by": a}]
    # The raw helper (tests, load tests) finds the same room.
    assert await create_room(db, b, [a], direct=True) == first.room


async def test_a_direct_room_is_refused_with_yourself_an_unknown_user_or_across_a_block(
        rooms: Rooms, db: asyncpg.Pool) -> None:
    a, b, c = await make_user(db), await make_user(db), await make_user(db)
    await refused(rooms.open_direct(a, a), "invalid_field", 422)
    await refused(rooms.open_direct(a, str(uuid.uuid4())), "user_not_found", 404)
    await block(db, b, a)  # b blocks a: to a, b is as if unknown
    await refused(rooms.open_direct(a, b), "user_not_found", 404)
    await refused(rooms.open_direct(b, a), "blocked", 403)  # b knows whom they blocked
    await block(db, a, c)
    await refused(rooms.open_direct(a, c), "blocked", 403)
    await refused(rooms.open_direct(c, a), "user_not_found", 404)
    assert await db.fetchval("SELECT count(*) FROM room_members WHERE user_id = ANY($1::uuid[])",
                             [uuid.UUID(u) for u in (a, b, c)]) == 0


async def test_a_direct_room_keeps_its_two_members_and_has_no_title_or_roles(rooms: Rooms, db: asyncpg.Pool) -> None:
    a, b, c = await make_user(db), await make_user(db), await make_user(db)
    room = (await rooms.open_direct(a, b)).room
    await refused(rooms.add(a, room, [c]), "direct_room", 409)
    await refused(rooms.rename(a, room, "ours"), "direct_room", 409)
    await refused(rooms.remove(a, room, b), "direct_room", 409)
    await refused(rooms.leave(b, room), "direct_room", 409)
    await refused(rooms.set_role(a, room, b, "admin"), "direct_room", 409)
    await rooms.set_muted(b, room, True)  # muting is for everyone
    assert await roles_of(db, room) == {a: "member", b: "member"}
    assert (await rooms.get(b, room))["muted"] and not (await rooms.get(a, room))["muted"]


async def test_a_block_closes_the_direct_room_until_it_is_opened_again(rooms: Rooms, told: Told,
                                                                      db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    room = (await rooms.open_direct(a, b)).room
    await block(db, a, b)
    await rooms.blocked(a, b)
    assert await roles_of(db, room) == {}
    assert sorted(told.revoked) == sorted([(f"room:{room}", a), (f"room:{room}", b)])
    assert told.to(b, "room.removed") == [{"room": room, "by": b, "reason": "closed"}]  # no word of who blocked
    await refused(rooms.get(b, room), "not_found", 404)
    await refused(rooms.open_direct(b, a), "user_not_found", 404)
    await db.execute("DELETE FROM blocks")
    reopened = await rooms.open_direct(b, a)
    assert reopened.room == room and not reopened.created  # its history with it
    assert await roles_of(db, room) == {a: "member", b: "member"}
    await rooms.blocked(a, str(uuid.uuid4()))  # no such room: nothing to do


# -- group rooms ---------------------------------------------------------------------------------------------


async def test_a_group_starts_with_its_creator_as_owner_and_tells_everyone(rooms: Rooms, told: Told,
                                                                          db: asyncpg.Pool) -> None:
    a, b, c = await make_user(db), await make_user(db), await make_user(db)
    room = await rooms.create_group(a, [b, c, b, a], "  Kumpania  ")
    assert await roles_of(db, room) == {a: "owner", b: "member", c: "member"}
    detail = await rooms.get(b, room)
    assert (detail["title"], detail["kind"], detail["members_count"], detail["my_role"]) == (
        "Kumpania", "group", 3, "member")
    assert [m["id"] for m in detail["members"]] and {m["role"] for m in detail["members"]} == {"owner", "member"}
    for user in (a, b, c):
        assert told.to(user, "room.added") == [{"room": room, "kind": "group", "title": "Kumpania", "by": a}]


async def test_a_group_refuses_bad_titles_too_many_invitees_unknown_and_blocked_users(
        rooms: Rooms, db: asyncpg.Pool) -> None:
    a, b, c = await make_user(db), await make_user(db), await make_user(db)
    before = await db.fetchval("SELECT count(*) FROM rooms")
    await refused(rooms.create_group(a, [b], "x" * (MAX_TITLE + 1)), "invalid_field", 422)
    await refused(rooms.create_group(a, [b], "nul\x00"), "invalid_field", 422)
    await refused(rooms.create_group(a, [str(uuid.uuid4()) for _ in range(MAX_INVITEES + 1)], ""),
                  "invalid_field", 422)
    await refused(rooms.create_group(a, [b, str(uuid.uuid4())], ""), "user_not_found", 404)
    await block(db, c, a)
    await refused(rooms.create_group(a, [b, c], ""), "user_not_found", 404)
    await refused(rooms.create_group(c, [b, a], ""), "blocked", 403)
    assert await db.fetchval("SELECT count(*) FROM rooms") == before  # nothing half made


async def test_owner_and_admins_manage_members_only_the_owner_manages_roles(rooms: Rooms, told: Told,
                                                                           db: asyncpg.Pool) -> None:
    owner, admin, member, other, newcomer = [await make_user(db) for _ in range(5)]
    room = await rooms.create_group(owner, [admin, member, other], "r")
    await rooms.set_role(owner, room, admin, "admin")
    assert told.to(member, "room.updated")[-1] == {"room": room, "by": owner, "change": "roles",
                                                   "roles": {admin: "admin"}}
    # A plain member manages nothing.
    await refused(rooms.add(member, room, [newcomer]), "forbidden", 403)
    await refused(rooms.remove(member, room, other), "forbidden", 403)
    await refused(rooms.rename(member, room, "mine"), "forbidden", 403)
    await refused(rooms.set_role(member, room, member, "admin"), "forbidden", 403)
    # An admin adds, renames and removes plain members, but not the owner or roles.
    assert await rooms.add(admin, room, [newcomer, member]) == [newcomer]  # members already are skipped
    assert await rooms.add(admin, room, [newcomer]) == []
    assert told.to(newcomer, "room.added") == [{"room": room, "kind": "group", "title": "r", "by": admin}]
    assert told.to(other, "room.updated")[-1] == {"room": room, "by": admin, "change": "members",
                                                  "added": [newcomer], "members_count": 5}
    assert await rooms.rename(admin, room, "renamed") == "renamed"
    await rooms.remove(admin, room, newcomer)
    assert told.revoked[-1] == (f"room:{room}", newcomer)
    assert told.to(newcomer, "room.removed") == [{"room": room, "by": admin, "reason": "removed"}]
    await refused(rooms.remove(admin, room, owner), "forbidden", 403)
    await refused(rooms.set_role(admin, room, other, "admin"), "forbidden", 403)
    await refused(rooms.remove(admin, room, newcomer), "member_not_found", 404)
    await refused(rooms.set_role(owner, room, newcomer, "admin"), "member_not_found", 404)
    await refused(rooms.set_role(owner, room, other, "root"), "invalid_field", 422)
    # The owner demotes, removes admins, and hands over ownership.
    await rooms.set_role(owner, room, other, "admin")
    await rooms.remove(owner, room, other)
    await refused(rooms.set_role(owner, room, owner, "member"), "owner_must_transfer", 409)
    await rooms.set_role(owner, room, member, "owner")
    assert await roles_of(db, room) == {owner: "admin", admin: "admin", member: "owner"}
    await refused(rooms.set_role(owner, room, admin, "member"), "forbidden", 403)  # no longer the owner
    await rooms.set_role(member, room, admin, "member")
    assert (await rooms.get(owner, room))["title"] == "renamed"


async def test_a_non_member_gets_not_found_for_everything_like_an_unknown_room(rooms: Rooms,
                                                                             db: asyncpg.Pool) -> None:
    a, b, stranger = [await make_user(db) for _ in range(3)]
    room = await rooms.create_group(a, [b], "private")
    for target in (room, str(uuid.uuid4())):
        answers = [await refused(call, "not_found", 404) for call in (
            rooms.get(stranger, target), rooms.add(stranger, target, [stranger]), rooms.remove(stranger, target, b),
            rooms.leave(stranger, target), rooms.set_role(stranger, target, b, "admin"),
            rooms.rename(stranger, target, "mine"), rooms.set_muted(stranger, target, True))]
        assert {e.message for e in answers} == {"no such room"}
    assert await roles_of(db, room) == {a: "owner", b: "member"}
    assert (await rooms.page(stranger, None, 10)).rooms == []


async def test_leaving_hands_ownership_on_and_the_last_leaves_an_empty_room(rooms: Rooms, told: Told,
                                                                           db: asyncpg.Pool) -> None:
    owner, first, second, admin = [await make_user(db) for _ in range(4)]
    room = await rooms.create_group(owner, [first], "")
    await rooms.add(owner, room, [second])
    await rooms.add(owner, room, [admin])
    await rooms.set_role(owner, room, admin, "admin")
    await rooms.remove(owner, room, owner)  # removing yourself is leaving
    assert await roles_of(db, room) == {first: "member", second: "member", admin: "owner"}  # the oldest admin
    assert told.to(owner, "room.removed") == [{"room": room, "by": owner, "reason": "left"}]
    assert told.revoked[-1] == (f"room:{room}", owner)
    assert told.to(first, "room.updated")[-1] == {"room": room, "by": owner, "change": "members",
                                                  "removed": [owner], "members_count": 3, "roles": {admin: "owner"}}
    await rooms.leave(admin, room)
    assert await roles_of(db, room) == {first: "owner", second: "member"}  # no admin: the oldest member
    await rooms.leave(second, room)
    await rooms.leave(first, room)
    assert await roles_of(db, room) == {}
    assert await db.fetchval("SELECT count(*) FROM rooms WHERE id = $1", uuid.UUID(room)) == 1


async def test_a_group_holds_at_most_max_members_even_under_concurrent_adds(rooms: Rooms, db: asyncpg.Pool) -> None:
    owner, admin = await make_user(db), await make_user(db)
    crowd = [str(r["id"]) for r in await db.fetch(
        """INSERT INTO users (id, username, password_hash)
           SELECT gen_random_uuid(), 'crowd' || md5(random()::text), 'x' FROM generate_series(1, $1)
           RETURNING id""", MAX_MEMBERS + 2)]
    room = await rooms.create_group(owner, [admin], "big")
    await rooms.set_role(owner, room, admin, "admin")
    await add_members(db, room, crowd[:MAX_MEMBERS - 4])  # 998 members now
    late = crowd[MAX_MEMBERS - 4:]
    results = await asyncio.gather(rooms.add(owner, room, late[:2]), rooms.add(admin, room, late[2:4]),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["ApiError", "list"]
    assert await db.fetchval("SELECT count(*) FROM room_members WHERE room_id = $1", uuid.UUID(room)) == MAX_MEMBERS
    await refused(rooms.add(owner, room, late[4:5]), "room_full", 409)


async def test_my_rooms_most_recently_active_first_in_pages_without_repeats(rooms: Rooms,
                                                                          db: asyncpg.Pool) -> None:
    from realtime.chat import ChatStore
    from tests.realtime.conftest import chat_send

    me, friend = await make_user(db), await make_user(db)
    made = [await rooms.create_group(me, [friend], f"room {i}") for i in range(5)]
    await chat_send(ChatStore(db), made[0], friend, "c1", "the oldest room speaks up")
    order: list[str] = []
    after = None
    while True:
        found = await rooms.page(me, after, 2)
        order += [r["id"] for r in found.rooms]
        if found.next is None:
            break
        after = found.next
    assert order == [made[0], *reversed(made[1:])]
    first = (await rooms.page(me, None, 1)).rooms[0]
    assert (first["id"], first["members_count"], first["my_role"], first["muted"]) == (made[0], 2, "owner", False)
