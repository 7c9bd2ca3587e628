"""Comments over HTTP and the socket: one level of replies, on posts the commenter may see and
never on a deleted post, deletion by the comment's or the post's author, oldest-first pages that
never miss a comment, exact counts, live frames on the post channel and to the post's watchers."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from amaro_client import Client, ClientError
from tests.conftest import RunningNode

from .postkit import block, error_code, follow, http, next_event, next_feed, no_feed, post, users

__all__ = ["http"]


async def _comment(http: httpx.AsyncClient, user_auth: dict[str, str], post_id: str, body: str,
                   parent: str | None = None) -> httpx.Response:
    data = {"body": body} if parent is None else {"body": body, "parent_id": parent}
    return await http.post(f"/api/v1/posts/{post_id}/comments", json=data, headers=user_auth)


async def _all(http: httpx.AsyncClient, post_id: str, auth: dict[str, str], limit: int = 3) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        r = await http.get(f"/api/v1/posts/{post_id}/comments", params=params, headers=auth)
        assert r.status_code == 200, r.text
        out += r.json()["items"]
        if not r.json()["items"]:
            assert r.json()["next_cursor"] is None
            return out
        cursor = r.json()["next_cursor"]


async def test_comments_and_replies(running_node: RunningNode, http: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    author, a, b = await users(running_node, 3)
    item = await post(http, author, "talk to me")
    first = await _comment(http, a.auth, item["id"], "first!")
    assert first.status_code == 201, first.text
    top = first.json()
    assert top["parent_id"] is None and top["author"]["id"] == a.id and top["post_id"] == item["id"]
    reply = await _comment(http, b.auth, item["id"], "a reply", top["id"])
    assert reply.status_code == 201 and reply.json()["parent_id"] == top["id"]
    # One level only: no reply to a reply, no parent from another post, no unknown parent.
    other = await post(http, author, "elsewhere")
    for parent in (reply.json()["id"], str(uuid.uuid4())):
        r = await _comment(http, a.auth, item["id"], "deeper", parent)
        assert (r.status_code, error_code(r)) == (422, "invalid_field"), r.text
    r = await _comment(http, a.auth, other["id"], "cross", top["id"])
    assert r.status_code == 422
    for n in range(5):
        assert (await _comment(http, a.auth, item["id"], f"more {n}")).status_code == 201
    listed = await _all(http, item["id"], a.auth)
    assert [c["body"] for c in listed] == ["first!", "a reply", *(f"more {n}" for n in range(5))]
    assert (await http.get(f"/api/v1/posts/{item['id']}")).json()["comments_count"] == 7
    anonymous = await http.get(f"/api/v1/posts/{item['id']}/comments")
    assert anonymous.status_code == 200 and len(anonymous.json()["items"]) == 7

    # Deleting: the comment's author, the post's author; nobody else. A top-level comment takes its replies.
    r = await http.delete(f"/api/v1/comments/{top['id']}", headers=b.auth)
    assert (r.status_code, error_code(r)) == (403, "not_author")
    assert (await http.delete(f"/api/v1/comments/{listed[-1]['id']}", headers=a.auth)).status_code == 204
    assert (await http.delete(f"/api/v1/comments/{top['id']}", headers=author.auth)).status_code == 204
    assert (await http.delete(f"/api/v1/comments/{top['id']}", headers=author.auth)).status_code == 404
    assert [c["body"] for c in await _all(http, item["id"], a.auth)] == [f"more {n}" for n in range(4)]
    count = await db.fetchval("SELECT comments_count FROM posts WHERE id = $1", uuid.UUID(item["id"]))
    assert count == 4 == (await http.get(f"/api/v1/posts/{item['id']}")).json()["comments_count"]


async def test_refusals_change_nothing(running_node: RunningNode, http: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    author, follower, stranger = await users(running_node, 3)
    await follow(http, follower, author)
    item = await post(http, author, "followers only", "followers")
    assert (await _comment(http, follower.auth, item["id"], "I may")).status_code == 201
    r = await _comment(http, stranger.auth, item["id"], "I may not")
    assert (r.status_code, error_code(r)) == (404, "not_found")
    r = await http.get(f"/api/v1/posts/{item['id']}/comments", headers=stranger.auth)
    assert r.status_code == 404
    for body in ("", "\x00", "x" * 2001, 7):
        r = await _comment(http, follower.auth, item["id"], body)  # type: ignore[arg-type]
        assert (r.status_code, error_code(r)) == (422, "invalid_field"), body
    r = await http.post(f"/api/v1/posts/{item['id']}/comments", json={"body": "x", "post_id": item["id"]},
                        headers=follower.auth)
    assert r.status_code == 422
    r = await http.get(f"/api/v1/posts/{item['id']}/comments", params={"cursor": "forged"}, headers=follower.auth)
    assert (r.status_code, error_code(r)) == (400, "bad_cursor")
    other = await post(http, author, "another")
    for _ in range(3):
        await _comment(http, follower.auth, other["id"], "c")
    page = (await http.get(f"/api/v1/posts/{other['id']}/comments", params={"limit": 1},
                           headers=follower.auth)).json()
    r = await http.get(f"/api/v1/posts/{item['id']}/comments", params={"cursor": page["next_cursor"]},
                       headers=follower.auth)
    assert (r.status_code, error_code(r)) == (400, "bad_cursor")  # a cursor of another post's comments

    # A deleted post takes no comment, and shows none.
    assert (await http.delete(f"/api/v1/posts/{item['id']}", headers=author.auth)).status_code == 204
    before = await db.fetchval("SELECT count(*) FROM comments WHERE post_id = $1", uuid.UUID(item["id"]))
    r = await _comment(http, follower.auth, item["id"], "too late")
    assert (r.status_code, error_code(r)) == (404, "not_found")
    r = await _comment(http, author.auth, item["id"], "too late, even for me")
    assert r.status_code == 404
    assert before == await db.fetchval("SELECT count(*) FROM comments WHERE post_id = $1", uuid.UUID(item["id"]))
    assert (await http.get(f"/api/v1/posts/{item['id']}/comments", headers=author.auth)).status_code == 404


async def test_pages_miss_nothing_while_comments_pour_in(running_node: RunningNode, http: httpx.AsyncClient) -> None:
    author, *commenters = await users(running_node, 5)
    item = await post(http, author, "popular")
    stop = asyncio.Event()
    written: list[str] = []

    async def write(auth: dict[str, str]) -> None:
        n = 0
        while not stop.is_set():
            r = await _comment(http, auth, item["id"], f"c{n}")
            assert r.status_code == 201
            written.append(r.json()["id"])
            n += 1

    writers = [asyncio.create_task(write(c.auth)) for c in commenters]
    await asyncio.sleep(0.3)
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params: dict[str, object] = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        r = await http.get(f"/api/v1/posts/{item['id']}/comments", params=params, headers=author.auth)
        seen += [c["id"] for c in r.json()["items"]]
        cursor = r.json()["next_cursor"] or cursor
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(*writers)
    while True:  # read on to the end once writing stopped
        params = {"limit": 50} | ({"cursor": cursor} if cursor else {})
        r = await http.get(f"/api/v1/posts/{item['id']}/comments", params=params, headers=author.auth)
        seen += [c["id"] for c in r.json()["items"]]
        if not r.json()["items"]:
            break
        cursor = r.json()["next_cursor"]
    assert len(seen) == len(set(seen)), "a comment came twice"
    assert sorted(seen) == sorted(written), "a comment was skipped"


async def test_live_comments(running_node: RunningNode, http: httpx.AsyncClient) -> None:
    author, commenter, watcher, blocked = await users(running_node, 4)
    item = await post(http, author, "watch this")
    assert (await _comment(http, watcher.auth, item["id"], "watching")).status_code == 201
    assert (await _comment(http, blocked.auth, item["id"], "me too")).status_code == 201
    await block(http, commenter, blocked)  # the blocked watcher hears nothing of the commenter
    async with Client(running_node.ws_url, token=author.token) as ac, \
            Client(running_node.ws_url, token=commenter.token) as cc, \
            Client(running_node.ws_url, token=watcher.token) as wc, \
            Client(running_node.ws_url, token=blocked.token) as bc:
        for client, user in ((ac, author), (cc, commenter), (wc, watcher), (bc, blocked)):
            await client.subscribe(f"user:{user.id}")
        await wc.subscribe(f"post:{item['id']}")
        r = await _comment(http, commenter.auth, item["id"], "hello all")
        comment = r.json()
        event = await next_event(wc, lambda e: e.ch == f"post:{item['id']}")
        assert event.data == {"type": "comment.created", "comment": comment}
        for client in (ac, wc):
            frame = await next_feed(client, "comment.created", lambda f: f.data["comment"]["id"] == comment["id"])
            assert frame.data["post"]["id"] == item["id"] and frame.data["comment"]["author"]["id"] == commenter.id
        await no_feed(cc, "comment.created")
        await no_feed(bc, "comment.created")
        # The post channel is for those who may see the post.
        hidden = await post(http, author, "private", "private")
        with pytest.raises(ClientError):
            await wc.subscribe(f"post:{hidden['id']}")
        await block(http, author, watcher)
        with pytest.raises(ClientError):
            await wc.subscribe(f"post:{item['id']}")
