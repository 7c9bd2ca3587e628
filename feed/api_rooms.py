"""Rooms and their members over HTTP: ``/api/v1/rooms*`` (the rules are feed/rooms.py's).

A room the viewer is not a member of answers exactly like one that does not exist (404
``not_found``), whatever is asked of it. Chat itself travels over the socket (``chat.send`` to the
room id, ``sub`` to ``room:<id>``); these endpoints make rooms and change who is in them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from feed.rooms import MAX_INVITEES, MAX_MEMBERS, MAX_TITLE, ROLES, Rooms
from feed.web import (
    ApiError,
    Call,
    Endpoint,
    canonical_uuid,
    choice,
    invalid,
    no_content,
    page,
    respond,
    text,
    user_ids,
)

if TYPE_CHECKING:
    from feed.app import FeedApi

TAG = "rooms"
CURSOR_KIND = "rooms"
#: Room changes per user per minute (creations count twice: here and below).
WRITES_PER_MINUTE = 120
CREATIONS_PER_MINUTE = 30

_STR = {"type": "string"}
_ID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_USER: dict[str, Any] = {"type": "object", "properties": {"id": _ID, "username": _STR, "display_name": _STR}}
ROOM_SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": ["id", "kind", "title", "members_count", "my_role", "muted", "unread"],
    "properties": {
        "id": _ID, "kind": {"enum": ["direct", "group"]}, "title": _STR, "members_count": {"type": "integer"},
        "my_role": {"enum": list(ROLES)}, "muted": {"type": "boolean"}, "created_at": _TIME, "active_at": _TIME,
        "peer": {"description": "the other member of a direct room", "oneOf": [{"type": "null"}, _USER]},
        "last_message": {"description": "the room's last chat.msg as a map (SPEC §9)",
                         "oneOf": [{"type": "null"}, {"type": "object"}]},
        "last_offset": {"type": "integer"},
        "unread": {"type": "integer", "description": "messages after my read receipt"},
    },
}
ROOM: dict[str, Any] = {
    **ROOM_SUMMARY,
    "required": [*ROOM_SUMMARY["required"], "members"],
    "properties": {**ROOM_SUMMARY["properties"], "members": {"type": "array", "items": {
        "type": "object", "properties": {**_USER["properties"], "role": {"enum": list(ROLES)}, "joined_at": _TIME}}}},
}
ROOM_PAGE = {"type": "object", "required": ["items", "next_cursor"],
             "properties": {"items": {"type": "array", "items": ROOM_SUMMARY},
                            "next_cursor": {"oneOf": [{"type": "null"}, _STR]}}}
_IDS = {"type": "array", "items": _ID, "maxItems": MAX_INVITEES}
CREATE = {"type": "object", "required": ["kind", "members"],
          "properties": {"kind": {"enum": ["direct", "group"]}, "members": _IDS,
                         "title": {"type": "string", "maxLength": MAX_TITLE}}}
RENAME = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string", "maxLength": MAX_TITLE}}}
ADD = {"type": "object", "required": ["user_ids"], "properties": {"user_ids": _IDS}}
ADDED = {"type": "object", "required": ["added", "room"], "properties": {"added": {"type": "array", "items": _ID},
                                                                           "room": ROOM}}
ROLE = {"type": "object", "required": ["role"], "properties": {"role": {"enum": list(ROLES)}}}


def endpoints(api: FeedApi) -> list[Endpoint]:
    rooms = Rooms(api.db, api.events)

    async def limited(call: Call, action: str = "room.write", limit: int = WRITES_PER_MINUTE) -> None:
        if not await api.limits.hit(call.user, action, limit, 60):
            raise ApiError("rate_limited", "too many room changes; wait a minute", 429, retry_after_s=60)

    async def with_activity(user: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each room with its last message, last offset and unread count (the hub's chat)."""
        if not items:
            return items
        found = await api.rooms.summaries([r["id"] for r in items], user)
        empty = {"last_message": None, "last_offset": 0, "unread": 0}
        return [{**r, **found.get(r["id"], empty)} for r in items]

    async def one(user: str, room: str) -> dict[str, Any]:
        detail = await rooms.get(user, room)
        return (await with_activity(user, [detail]))[0]

    async def create(call: Call) -> Response:
        data = await call.json()
        kind = choice(data, "kind", ("direct", "group"))
        members = user_ids(data, "members", max_items=MAX_INVITEES)
        title = text(data, "title", max_len=MAX_TITLE, default="")
        others = [m for m in members if m != call.user]
        if kind == "direct" and len(others) != 1:
            raise invalid("members", "of a direct room must name one other user")
        if kind == "direct" and title:
            raise invalid("title", "must be empty: a direct room has no title")
        await limited(call, "room.create", CREATIONS_PER_MINUTE)
        await limited(call)
        if kind == "direct":
            opened = await rooms.open_direct(call.user, others[0])
            room, created = opened.room, opened.created
        else:
            room, created = await rooms.create_group(call.user, others, title), True
        return respond(call.request, await one(call.user, room), 201 if created else 200)

    async def list_mine(call: Call) -> Response:
        limit = call.query_int("limit", 20, minimum=1, maximum=100)
        position = api.cursors.decode(CURSOR_KIND, call.query_str("cursor"))
        after = None
        if position:
            at, room = position.get("a"), position.get("i")
            if type(at) is not int or not isinstance(room, str) or canonical_uuid(room) is None:
                raise ApiError("bad_cursor", "the cursor is not one this list gave", 400)
            after = (at, room)
        found = await rooms.page(call.user, after, limit)
        cursor = None if found.next is None else api.cursors.encode(CURSOR_KIND, {"a": found.next[0],
                                                                                  "i": found.next[1]})
        return respond(call.request, page(await with_activity(call.user, found.rooms), cursor))

    async def show(call: Call) -> Response:
        return respond(call.request, await one(call.user, call.path_id("room_id", "no such room")))

    async def rename(call: Call) -> Response:
        room = call.path_id("room_id", "no such room")
        title = text(await call.json(), "title", max_len=MAX_TITLE)
        await limited(call)
        await rooms.rename(call.user, room, title)
        return respond(call.request, await one(call.user, room))

    async def add(call: Call) -> Response:
        room = call.path_id("room_id", "no such room")
        wanted = user_ids(await call.json(), "user_ids", max_items=MAX_INVITEES)
        await limited(call)
        added = await rooms.add(call.user, room, wanted)
        return respond(call.request, {"added": added, "room": await one(call.user, room)})

    async def set_role(call: Call) -> Response:
        room = call.path_id("room_id", "no such room")
        target = call.path_id("user_id", "no such member")
        role = choice(await call.json(), "role", ROLES)
        await limited(call)
        await rooms.set_role(call.user, room, target, role)
        return respond(call.request, await one(call.user, room))

    async def remove(call: Call) -> Response:
        room = call.path_id("room_id", "no such room")
        target = call.path_id("user_id", "no such member")
        await limited(call)
        await rooms.remove(call.user, room, target)
        return no_content()

    async def mute(call: Call) -> Response:
        room = call.path_id("room_id", "no such room")
        await limited(call)
        await rooms.set_muted(call.user, room, call.request.method == "PUT")
        return no_content()

    path, one_room = "/api/v1/rooms", "/api/v1/rooms/{room_id}"
    member = "/api/v1/rooms/{room_id}/members/{user_id}"
    return [
        Endpoint("POST", path, create, "Create a group room, or open the direct room with one user (idempotent: "
                 "200 with the existing room)", TAG, request=CREATE, response=ROOM, status=201,
                 errors=(403, 404, 429)),
        Endpoint("GET", path, list_mine, "My rooms, most recently active first, with the last message and my "
                 "unread count", TAG, response=ROOM_PAGE, errors=(400, 422),
                 query={"limit": "rooms per page, 1 to 100 (default 20)", "cursor": "next_cursor of the last page"}),
        Endpoint("GET", one_room, show, "A room I am a member of, with its members", TAG, response=ROOM,
                 errors=(404,)),
        Endpoint("PATCH", one_room, rename, "Rename a group room (owner and admins)", TAG, request=RENAME,
                 response=ROOM, errors=(403, 404, 409, 429)),
        Endpoint("POST", "/api/v1/rooms/{room_id}/members", add, f"Add members to a group room (owner and admins; "
                 f"at most {MAX_INVITEES} at once, {MAX_MEMBERS} in all)", TAG, request=ADD, response=ADDED,
                 errors=(403, 404, 409, 429)),
        Endpoint("PATCH", member, set_role, "Make a member an admin or a member, or hand over ownership (owner "
                 "only)", TAG, request=ROLE, response=ROOM, errors=(403, 404, 409, 429)),
        Endpoint("DELETE", member, remove, "Remove a member (owner: admins and members; admins: members), or leave "
                 "when the user is me", TAG, status=204, errors=(403, 404, 409, 429)),
        Endpoint("PUT", "/api/v1/rooms/{room_id}/mute", mute, "Mute a room for me", TAG, status=204,
                 errors=(404, 429)),
        Endpoint("DELETE", "/api/v1/rooms/{room_id}/mute", mute, "Unmute a room for me", TAG, status=204,
                 errors=(404, 429)),
    ]
