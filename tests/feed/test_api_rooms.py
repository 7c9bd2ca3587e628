"""Rooms over real HTTP and the real socket of an in-process node: users sign up over HTTP, make
rooms, chat; membership changes reach live sockets at once; bad input gets a clear 4xx."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from amaro_client import Connection
from protocol import frames as F
from protocol.errors import ErrorCode
from tests.conftest import RunningNode
from tests.realtime.wsclient import Client

PASSWORD = "songs-of-the-caravan-9"


@dataclass
class Person:
    id: str
    token: str
    http: httpx.AsyncClient

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.request(method, path, json=body,
                                       headers={"Authorization": f"Bearer {self.token}"})

    async def socket(self, node: RunningNode) -> Client:
        return Client(await Connection.open(node.ws_url, self.token), self.id)


@pytest.fixture
async def http(running_node: RunningNode) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=running_node.http_url, timeout=15)


async def sign_up(http: httpx.AsyncClient) -> Person:
    answer = await http.post("/api/v1/auth/signup", json={"username": f"r{secrets.token_hex(6)}",
                                                         "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Person(body["user"]["id"], body["access_token"], http)


async def people(http: httpx.AsyncClient, n: int) -> list[Person]:
    return [await sign_up(http) for _ in range(n)]


def code_of(answer: httpx.Response) -> str:
    return str(answer.json()["error"]["code"])


async def feed_of(client: Client, kind: str, room: str) -> F.FeedUpdate:
    return await client.seen_or_expect(F.FeedUpdate, lambda f: f.kind == kind and f.data.get("room") == room)


async def test_two_users_sign_up_open_a_direct_room_and_chat(http: httpx.AsyncClient,
                                                             running_node: RunningNode) -> None:
    alice, bob = await people(http, 2)
    ca, cb = await alice.socket(running_node), await bob.socket(running_node)
    await cb.subscribe(f"user:{bob.id}")

    made = await alice.call("POST", "/api/v1/rooms", {"kind": "direct", "members": [bob.id]})
    assert made.status_code == 201, made.text
    room = made.json()
    assert (room["kind"], room["title"], room["members_count"], room["peer"]["id"], room["unread"]) == (
        "direct", "", 2, bob.id, 0)
    assert {m["id"] for m in room["members"]} == {alice.id, bob.id}
    added = await feed_of(cb, "room.added", room["id"])
    assert added.data == {"room": room["id"], "kind": "direct", "title": "", "by": alice.id}
    # Opening it again, from either side, is the same room.
    for person, other in ((alice, bob), (bob, alice)):
        again = await person.call("POST", "/api/v1/rooms", {"kind": "direct", "members": [other.id, person.id]})
        assert again.status_code == 200 and again.json()["id"] == room["id"]

    ch = f"room:{room['id']}"
    await ca.subscribe(ch)
    await cb.subscribe(ch)
    sent = await ca.chat(room["id"], "c1", "Sastipe!")
    got = await cb.expect(F.ChatMessage)
    assert (got.mid, got.sender, got.body) == (sent.mid, alice.id, "Sastipe!")
    reply = await cb.chat(room["id"], "c2", "Sastipe, phrala")
    assert (await ca.expect(F.ChatMessage, lambda m: m.sender == bob.id)).mid == reply.mid

    mine = await bob.call("GET", "/api/v1/rooms")
    assert mine.status_code == 200 and mine.headers["cache-control"] == "no-store"
    first = mine.json()["items"][0]
    assert (first["id"], first["last_message"]["body"], first["last_offset"], first["unread"]) == (
        room["id"], "Sastipe, phrala", 2, 2)
    assert first["peer"]["id"] == alice.id and mine.json()["next_cursor"] is None
    unchanged = await bob.http.get("/api/v1/rooms", headers={"Authorization": f"Bearer {bob.token}",
                                                              "If-None-Match": mine.headers["etag"]})
    assert unchanged.status_code == 304
    await cb.send(F.ChatReceipt(room=room["id"], offset=2, kind="read"))
    for _ in range(100):
        first = (await bob.call("GET", "/api/v1/rooms")).json()["items"][0]
        if first["unread"] == 0:
            break
        await asyncio.sleep(0.05)
    assert first["unread"] == 0
    await ca.close()
    await cb.close()


async def test_a_group_is_run_by_its_owner_and_admins(http: httpx.AsyncClient, running_node: RunningNode) -> None:
    owner, helper, plain, newcomer = await people(http, 4)
    made = await owner.call("POST", "/api/v1/rooms", {"kind": "group", "members": [helper.id, plain.id],
                                                      "title": " Kumpania "})
    assert made.status_code == 201, made.text
    room = made.json()
    rid = room["id"]
    assert (room["title"], room["my_role"], room["members_count"]) == ("Kumpania", "owner", 3)
    base, members = f"/api/v1/rooms/{rid}", f"/api/v1/rooms/{rid}/members"

    refusals = [
        await plain.call("PATCH", base, {"title": "mine"}),
        await plain.call("POST", members, {"user_ids": [newcomer.id]}),
        await plain.call("DELETE", f"{members}/{helper.id}"),
        await plain.call("PATCH", f"{members}/{plain.id}", {"role": "admin"}),
        await helper.call("PATCH", f"{members}/{plain.id}", {"role": "admin"}),
    ]
    assert [(r.status_code, code_of(r)) for r in refusals] == [(403, "forbidden")] * 5

    promoted = await owner.call("PATCH", f"{members}/{helper.id}", {"role": "admin"})
    assert promoted.status_code == 200
    assert {m["id"]: m["role"] for m in promoted.json()["members"]}[helper.id] == "admin"
    renamed = await helper.call("PATCH", base, {"title": "Kris"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Kris"
    added = await helper.call("POST", members, {"user_ids": [newcomer.id, plain.id]})
    assert added.status_code == 200 and added.json()["added"] == [newcomer.id]
    assert added.json()["room"]["members_count"] == 4
    assert (await newcomer.call("GET", base)).json()["my_role"] == "member"
    assert (await helper.call("DELETE", f"{members}/{newcomer.id}")).status_code == 204
    assert (await newcomer.call("GET", base)).status_code == 404
    assert (await helper.call("DELETE", f"{members}/{newcomer.id}")).status_code == 404
    assert (await helper.call("DELETE", f"{members}/{owner.id}")).status_code == 403

    assert (await plain.call("PUT", f"{base}/mute")).status_code == 204
    assert (await plain.call("GET", base)).json()["muted"] is True
    assert (await owner.call("GET", base)).json()["muted"] is False
    assert (await plain.call("DELETE", f"{base}/mute")).status_code == 204
    assert (await plain.call("GET", base)).json()["muted"] is False

    assert (await owner.call("PATCH", f"{members}/{owner.id}", {"role": "member"})).status_code == 409
    assert (await owner.call("DELETE", f"{members}/{owner.id}")).status_code == 204  # leaving
    after = await helper.call("GET", base)
    assert after.json()["my_role"] == "owner" and after.json()["members_count"] == 2


async def test_a_direct_room_cannot_be_renamed_grown_or_left(http: httpx.AsyncClient) -> None:
    a, b, c = await people(http, 3)
    rid = (await a.call("POST", "/api/v1/rooms", {"kind": "direct", "members": [b.id]})).json()["id"]
    answers = [await a.call("PATCH", f"/api/v1/rooms/{rid}", {"title": "x"}),
               await a.call("POST", f"/api/v1/rooms/{rid}/members", {"user_ids": [c.id]}),
               await a.call("DELETE", f"/api/v1/rooms/{rid}/members/{b.id}"),
               await a.call("DELETE", f"/api/v1/rooms/{rid}/members/{a.id}"),
               await a.call("PATCH", f"/api/v1/rooms/{rid}/members/{b.id}", {"role": "admin"})]
    assert [(r.status_code, code_of(r)) for r in answers] == [(409, "direct_room")] * 5


async def test_a_non_member_and_an_unknown_room_get_the_same_404(http: httpx.AsyncClient) -> None:
    owner, member, stranger = await people(http, 3)
    rid = (await owner.call("POST", "/api/v1/rooms", {"kind": "group", "members": [member.id],
                                                      "title": "t"})).json()["id"]

    async def everything(room: str) -> list[tuple[int, Any]]:
        calls = [("GET", "", None), ("PATCH", "", {"title": "mine"}), ("POST", "/members", {"user_ids": [stranger.id]}),
                 ("PATCH", f"/members/{member.id}", {"role": "admin"}), ("DELETE", f"/members/{member.id}", None),
                 ("DELETE", f"/members/{stranger.id}", None), ("PUT", "/mute", None), ("DELETE", "/mute", None)]
        out = []
        for method, tail, body in calls:
            answer = await stranger.call(method, f"/api/v1/rooms/{room}{tail}", body)
            out.append((answer.status_code, answer.json()))
        return out

    existing = await everything(rid)
    assert {status for status, _ in existing} == {404}
    assert existing == await everything(str(uuid.uuid4()))
    for malformed in ("not-a-room", rid.upper(), "lobby", "%27%20OR%201%3D1--"):
        assert {s for s, _ in await everything(malformed)} == {404}
    assert (await owner.call("GET", f"/api/v1/rooms/{rid}")).json()["members_count"] == 2  # nothing changed


async def test_bad_input_gets_a_clear_4xx_and_changes_nothing(http: httpx.AsyncClient) -> None:
    me, friend = await people(http, 2)

    async def my_rooms() -> int:
        return len((await me.call("GET", "/api/v1/rooms?limit=100")).json()["items"])

    cases: list[tuple[Any, int, str]] = [
        ({"kind": "group", "members": [friend.id], "title": "a\x00b"}, 422, "invalid_field"),
        ({"kind": "group", "members": [friend.id], "title": "x" * 101}, 422, "invalid_field"),
        ({"kind": "group", "members": friend.id}, 422, "invalid_field"),
        ({"kind": "group", "members": [friend.id.upper()]}, 422, "invalid_field"),
        ({"kind": "group", "members": [friend.id + "\x00"]}, 422, "invalid_field"),
        ({"kind": "group", "members": [7]}, 422, "invalid_field"),
        ({"kind": "group", "members": [str(uuid.uuid4()) for _ in range(257)]}, 422, "invalid_field"),
        ({"kind": "group", "members": [str(uuid.uuid4()) for _ in range(10_000)]}, 413, "body_too_large"),
        ({"kind": "group", "members": [friend.id, str(uuid.uuid4())]}, 404, "user_not_found"),
        ({"kind": "chat", "members": [friend.id]}, 422, "invalid_field"),
        ({"kind": "direct", "members": [friend.id], "title": "ours"}, 422, "invalid_field"),
        ({"kind": "direct", "members": [friend.id, str(uuid.uuid4())]}, 422, "invalid_field"),
        ({"kind": "direct", "members": [me.id]}, 422, "invalid_field"),
        ({"kind": "direct", "members": [str(uuid.uuid4())]}, 404, "user_not_found"),
        ({"members": [friend.id]}, 422, "invalid_field"),
        ([friend.id], 400, "invalid_json"),
    ]
    for body, status, code in cases:
        answer = await me.call("POST", "/api/v1/rooms", body)
        assert (answer.status_code, code_of(answer)) == (status, code), (str(body)[:80], answer.text[:200])
    headers = {"Authorization": f"Bearer {me.token}"}
    not_json = await http.post("/api/v1/rooms", content=b"{nope",
                               headers={**headers, "content-type": "application/json"})
    assert not_json.status_code == 400
    assert (await http.post("/api/v1/rooms", data={"kind": "group"}, headers=headers)).status_code == 415
    assert (await http.post("/api/v1/rooms", json={"kind": "group", "members": []})).status_code == 401
    forged = await http.post("/api/v1/rooms", json={"kind": "group", "members": []},
                             headers={"Authorization": "Bearer at1.forged"})
    assert forged.status_code == 401
    assert await my_rooms() == 0

    sql = "'); DROP TABLE rooms; --"
    made = await me.call("POST", "/api/v1/rooms", {"kind": "group", "members": [friend.id], "title": sql})
    assert made.status_code == 201 and made.json()["title"] == sql
    rid = made.json()["id"]
    for body in ({"title": "\x00"}, {"title": 5}, {}, {"title": "y" * 101}):
        assert (await me.call("PATCH", f"/api/v1/rooms/{rid}", body)).status_code == 422
    for body in ({"user_ids": [str(uuid.uuid4()) for _ in range(10_000)]}, {"user_ids": "x"}, {"user_ids": ["'--"]}):
        assert (await me.call("POST", f"/api/v1/rooms/{rid}/members", body)).status_code in (413, 422)
    for role in ("root", "", None, "OWNER"):
        assert (await me.call("PATCH", f"/api/v1/rooms/{rid}/members/{friend.id}", {"role": role})).status_code == 422
    room = (await me.call("GET", f"/api/v1/rooms/{rid}")).json()
    assert (room["title"], room["members_count"], {m["role"] for m in room["members"]}) == (
        sql, 2, {"owner", "member"})


async def test_my_rooms_page_with_signed_cursors(http: httpx.AsyncClient) -> None:
    me, friend = await people(http, 2)
    made = [(await me.call("POST", "/api/v1/rooms", {"kind": "group", "members": [friend.id],
                                                     "title": f"r{i}"})).json()["id"] for i in range(5)]
    seen: list[str] = []
    url = "/api/v1/rooms?limit=2"
    cursor = None
    while True:
        body = (await me.call("GET", url)).json()
        seen += [r["id"] for r in body["items"]]
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
        url = f"/api/v1/rooms?limit=2&cursor={cursor}"
    assert seen == list(reversed(made))
    assert cursor is not None
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    for bad in (tampered, "forged", "%00", "x" * 600):
        answer = await me.call("GET", f"/api/v1/rooms?cursor={bad}")
        assert answer.status_code in (400, 422) and code_of(answer) in ("bad_cursor", "invalid_field"), bad
    for limit in ("0", "101", "-1", "abc"):
        assert (await me.call("GET", f"/api/v1/rooms?limit={limit}")).status_code == 422
    assert (await friend.call("GET", "/api/v1/rooms?limit=100")).json()["items"][0]["my_role"] == "member"


async def test_a_removed_member_loses_the_room_on_their_live_socket(http: httpx.AsyncClient,
                                                                   running_node: RunningNode) -> None:
    owner, bob = await people(http, 2)
    rid = (await owner.call("POST", "/api/v1/rooms", {"kind": "group", "members": [bob.id]})).json()["id"]
    ch = f"room:{rid}"
    co, cb = await owner.socket(running_node), await bob.socket(running_node)
    await co.subscribe(ch)
    await cb.subscribe(ch)
    await cb.subscribe(f"user:{bob.id}")
    assert (await owner.call("DELETE", f"/api/v1/rooms/{rid}/members/{bob.id}")).status_code == 204
    gone = await cb.expect(F.Unsubscribed)
    assert (gone.id, gone.ch) == (0, ch)
    removed = await feed_of(cb, "room.removed", rid)
    assert removed.data == {"room": rid, "by": owner.id, "reason": "removed"}
    refused = await cb.request(F.ChatSend(id=cb.next_id(), room=rid, cmid="late", body="still here?"))
    assert isinstance(refused, F.Error) and refused.code == ErrorCode.PERMISSION_DENIED
    again = await cb.request(F.Subscribe(id=cb.next_id(), ch=ch))
    assert isinstance(again, F.Error) and again.code == ErrorCode.PERMISSION_DENIED
    ack = await co.chat(rid, "after", "bob must not see this")
    await co.seen_or_expect(F.ChatMessage, lambda m: m.mid == ack.mid)  # delivered (to the owner) by now
    await cb.sync()
    assert not [f for f in cb.seen if isinstance(f, F.ChatMessage)]
    history = await cb.request(F.ChatHistory(id=cb.next_id(), room=rid))
    assert isinstance(history, F.Error) and history.code == ErrorCode.PERMISSION_DENIED
    await co.close()
    await cb.close()


async def test_the_socket_answers_room_ids_as_spec_says(http: httpx.AsyncClient, running_node: RunningNode) -> None:
    """A room id is a lowercase UUID the server issued. Any other name is ``301``; a well-formed id
    of a room that does not exist answers like one the user is not a member of: ``300``."""
    owner, member, stranger = await people(http, 3)
    rid = (await owner.call("POST", "/api/v1/rooms", {"kind": "group", "members": [member.id]})).json()["id"]
    cs = await stranger.socket(running_node)
    for room, code in (("lobby", 301), (rid.upper(), 301), (str(uuid.uuid4()), 300), (rid, 300)):
        sub = await cs.request(F.Subscribe(id=cs.next_id(), ch=f"room:{room}"))
        send = await cs.request(F.ChatSend(id=cs.next_id(), room=room, cmid="x", body="hi"))
        history = await cs.request(F.ChatHistory(id=cs.next_id(), room=room))
        for answer in (sub, send, history):
            assert isinstance(answer, F.Error) and answer.code == code, (room, answer)
    await cs.close()


async def test_room_writes_are_rate_limited(http: httpx.AsyncClient) -> None:
    me, friend = await people(http, 2)
    rid = (await me.call("POST", "/api/v1/rooms", {"kind": "direct", "members": [friend.id]})).json()["id"]
    statuses = []
    for _ in range(250):
        answer = await me.call("PUT", f"/api/v1/rooms/{rid}/mute")
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert code_of(answer) == "rate_limited" and answer.headers["retry-after"] == "60"
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {204}


async def test_a_block_closes_the_direct_room_live_and_unblocking_reopens_it(
        http: httpx.AsyncClient, running_node: RunningNode) -> None:
    alice, bob = await people(http, 2)
    rid = (await alice.call("POST", "/api/v1/rooms", {"kind": "direct", "members": [bob.id]})).json()["id"]
    cb = await bob.socket(running_node)
    await cb.subscribe(f"room:{rid}")
    await cb.subscribe(f"user:{bob.id}")
    assert (await alice.call("POST", f"/api/v1/users/{bob.id}/block")).status_code == 204
    gone = await cb.expect(F.Unsubscribed)
    assert (gone.id, gone.ch) == (0, f"room:{rid}")
    closed = await feed_of(cb, "room.removed", rid)
    assert closed.data["reason"] == "closed"  # not who blocked whom
    send = await cb.request(F.ChatSend(id=cb.next_id(), room=rid, cmid="x", body="hello?"))
    assert isinstance(send, F.Error) and send.code == ErrorCode.PERMISSION_DENIED
    assert (await bob.call("GET", f"/api/v1/rooms/{rid}")).status_code == 404
    assert (await alice.call("GET", f"/api/v1/rooms/{rid}")).status_code == 404
    by_bob = await bob.call("POST", "/api/v1/rooms", {"kind": "direct", "members": [alice.id]})
    assert (by_bob.status_code, code_of(by_bob)) == (404, "user_not_found")  # as if alice did not exist
    by_alice = await alice.call("POST", "/api/v1/rooms", {"kind": "direct", "members": [bob.id]})
    assert (by_alice.status_code, code_of(by_alice)) == (403, "blocked")
    group = await alice.call("POST", "/api/v1/rooms", {"kind": "group", "members": [bob.id]})
    assert (group.status_code, code_of(group)) == (403, "blocked")
    assert (await alice.call("DELETE", f"/api/v1/users/{bob.id}/block")).status_code == 204
    reopened = await bob.call("POST", "/api/v1/rooms", {"kind": "direct", "members": [alice.id]})
    assert reopened.status_code == 200 and reopened.json()["id"] == rid and reopened.json()["members_count"] == 2
    await cb.close()
