"""Acceptance of the social domain: two people, through the HTTP API and the socket only (the SDK
and httpx; no SQL, no server code): sign up, open a room and chat, follow, post, comment, react,
and each hears the other's news live as `feed` frames on their own channel."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import httpx

from amaro_client import Client, signup
from protocol import frames as F
from tests.conftest import RunningNode

PASSWORD = "a long passphrase for tests"


async def feed_frame(client: Client, kind: str, timeout_s: float = 10.0) -> F.FeedUpdate:
    """The next ``feed`` frame of ``kind`` on the client's own channel (others are skipped)."""
    deadline = time.monotonic() + timeout_s
    while True:
        frame = await client.next_event(max(0.01, deadline - time.monotonic()))
        if isinstance(frame, F.FeedUpdate) and frame.kind == kind:
            return frame


async def next_of(client: Client, kind: type[F.Frame], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        frame = await client.next_event(max(0.01, deadline - time.monotonic()))
        if isinstance(frame, kind):
            return frame


async def test_two_people_meet_chat_follow_post_comment_and_react(running_node: RunningNode) -> None:
    names = [f"acc{secrets.token_hex(4)}" for _ in range(2)]
    ana_grant = await signup(running_node.http_url, names[0], PASSWORD, "Ana")
    bo_grant = await signup(running_node.http_url, names[1], PASSWORD, "Bo")
    ana_id, bo_id = ana_grant.user_id, bo_grant.user_id
    as_ana = {"Authorization": f"Bearer {ana_grant.access_token}"}
    as_bo = {"Authorization": f"Bearer {bo_grant.access_token}"}
    async with httpx.AsyncClient(base_url=running_node.http_url, timeout=10) as http, \
            Client(running_node.ws_url, token=ana_grant.access_token) as ana, \
            Client(running_node.ws_url, token=bo_grant.access_token) as bo:
        await ana.subscribe(f"user:{ana_id}")
        await bo.subscribe(f"user:{bo_id}")

        # A direct room, then chat in it: each sees the other's message.
        created = await http.post("/api/v1/rooms", json={"kind": "direct", "members": [bo_id]}, headers=as_ana)
        assert created.status_code == 201, created.text
        room = created.json()["id"]
        added = await feed_frame(bo, "room.added")
        assert added.data["room"] == room
        await ana.subscribe(f"room:{room}")
        await bo.subscribe(f"room:{room}")
        await ana.chat_send(room, "Sastipe, Bo!")
        got = await next_of(bo, F.ChatMessage)
        assert (got.body, got.sender) == ("Sastipe, Bo!", ana_id)
        listed = (await http.get("/api/v1/rooms", headers=as_bo)).json()["items"]
        assert [r["id"] for r in listed] == [room] and listed[0]["unread"] == 1

        # Bo follows Ana: she hears it.
        follow = await http.post(f"/api/v1/users/{ana_id}/follow", headers=as_bo)
        assert follow.status_code == 200 and follow.json()["state"] == "following"
        news = await feed_frame(ana, "follow.new")
        assert news.data["user"]["id"] == bo_id

        # Ana posts: Bo, her follower, hears of it and finds it on his home timeline.
        posted = await http.post("/api/v1/posts", json={"body": "Bašalav e gili", "visibility": "followers"},
                                 headers=as_ana)
        assert posted.status_code == 201, posted.text
        post = posted.json()["id"]
        announced = await feed_frame(bo, "post.created")
        assert announced.data["post"]["id"] == post and announced.data["post"]["author"]["id"] == ana_id
        home = (await http.get("/api/v1/timelines/home", headers=as_bo)).json()["items"]
        assert post in [item["id"] for item in home]

        # Bo comments and reacts: Ana hears both.
        await bo.subscribe(f"post:{post}")
        comment = await http.post(f"/api/v1/posts/{post}/comments", json={"body": "Šukar!"}, headers=as_bo)
        assert comment.status_code == 201, comment.text
        heard = await feed_frame(ana, "comment.created")
        assert heard.data["post"]["id"] == post and heard.data["comment"]["author"]["id"] == bo_id
        on_post = await next_of(bo, F.Event)
        assert on_post.ch == f"post:{post}" and on_post.data["type"] == "comment.created"
        await bo.react("post", post, "❤️")
        reacted = await feed_frame(ana, "reaction.created")
        assert (reacted.data["post"]["id"], reacted.data["emoji"], reacted.data["user"]["id"]) == (post, "❤️", bo_id)

        # Nothing here is visible to a stranger.
        stranger = await signup(running_node.http_url, f"acc{secrets.token_hex(4)}", PASSWORD)
        as_stranger = {"Authorization": f"Bearer {stranger.access_token}"}
        assert (await http.get(f"/api/v1/posts/{post}", headers=as_stranger)).status_code == 404
        assert (await http.get(f"/api/v1/rooms/{room}", headers=as_stranger)).status_code == 404
        assert (await http.get(f"/api/v1/posts/{uuid.uuid4()}", headers=as_bo)).status_code == 404
