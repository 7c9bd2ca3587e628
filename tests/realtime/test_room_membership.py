"""Membership changes reach every node at once: two real hub processes on one Redis and one
PostgreSQL; a member removed over HTTP on one node loses their subscriptions on both, and can no
longer send or resubscribe anywhere."""

from __future__ import annotations

import secrets

import httpx
import pytest

from amaro_client import Connection
from protocol import frames as F
from protocol.errors import ErrorCode
from tests.realtime.test_cluster import NodeProcess, two_nodes  # noqa: F401 - the fixture
from tests.realtime.wsclient import Client

pytestmark = pytest.mark.slow


async def sign_up(http: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    answer = await http.post("/api/v1/auth/signup", json={"username": f"x{secrets.token_hex(6)}",
                                                         "password": "songs-of-the-caravan-9"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return body["user"]["id"], {"Authorization": f"Bearer {body['access_token']}"}


async def test_a_member_removed_on_one_node_loses_the_room_on_every_node(
        two_nodes: tuple[NodeProcess, NodeProcess]) -> None:  # noqa: F811
    node_a, node_b = two_nodes
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node_a.port}", timeout=15) as http:
        owner, owner_auth = await sign_up(http)
        bob, bob_auth = await sign_up(http)
        made = await http.post("/api/v1/rooms", json={"kind": "group", "members": [bob], "title": "two nodes"},
                               headers=owner_auth)
        assert made.status_code == 201, made.text
        room = made.json()["id"]
        ch = f"room:{room}"
        token = bob_auth["Authorization"].removeprefix("Bearer ")
        on_a = Client(await Connection.open(node_a.ws_url, owner_auth["Authorization"].removeprefix("Bearer ")), owner)
        bob_a = Client(await Connection.open(node_a.ws_url, token), bob)
        bob_b = Client(await Connection.open(node_b.ws_url, token), bob)
        assert (bob_a.welcome.node, bob_b.welcome.node) == ("it-a", "it-b")
        await on_a.subscribe(ch)
        for client in (bob_a, bob_b):
            await client.subscribe(ch)
        await bob_b.subscribe(f"user:{bob}")
        hello = await on_a.chat(room, "c1", "both of bob's sockets hear this")
        for client in (bob_a, bob_b):
            assert (await client.expect(F.ChatMessage)).mid == hello.mid

        removed = await http.delete(f"/api/v1/rooms/{room}/members/{bob}", headers=owner_auth)
        assert removed.status_code == 204
        for client in (bob_a, bob_b):
            gone = await client.expect(F.Unsubscribed)
            assert (gone.id, gone.ch) == (0, ch)
        told = await bob_b.seen_or_expect(F.FeedUpdate, lambda f: f.kind == "room.removed")
        assert told.data == {"room": room, "by": owner, "reason": "removed"}
        for client in (bob_a, bob_b):
            send = await client.request(F.ChatSend(id=client.next_id(), room=room, cmid="late", body="?"))
            sub = await client.request(F.Subscribe(id=client.next_id(), ch=ch))
            assert isinstance(send, F.Error) and send.code == ErrorCode.PERMISSION_DENIED
            assert isinstance(sub, F.Error) and sub.code == ErrorCode.PERMISSION_DENIED
        after = await on_a.chat(room, "c2", "bob is gone")
        await on_a.seen_or_expect(F.ChatMessage, lambda m: m.mid == after.mid)
        for client in (bob_a, bob_b):
            await client.sync()
            assert [f.mid for f in client.seen if isinstance(f, F.ChatMessage)] == [hello.mid]
        assert (await http.get(f"/api/v1/rooms/{room}", headers=bob_auth)).status_code == 404
        for client in (on_a, bob_a, bob_b):
            await client.close()
