"""Posts over HTTP against a real node: text posts, who sees them, HTTP caching, edits and
deletion by the author only, exact counters, live ``post.created``, and bad input refused with a
stable code and nothing changed."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from amaro_client import Client
from tests.conftest import RunningNode

from .postkit import User, block, error_code, follow, http, new_user, next_feed, no_feed, post, until, users

__all__ = ["http"]


async def test_a_text_post_is_published_at_once_and_read_by_those_who_may(
        running_node: RunningNode, http: httpx.AsyncClient) -> None:
    author, follower, stranger = await users(running_node, 3)
    await follow(http, follower, author)
    public = await post(http, author, "hello, world")
    assert (public["state"], public["kind"], public["visibility"], public["body"]) == (
        "published", "text", "public", "hello, world")
    assert public["author"]["id"] == author.id and public["reactions"] == {} and public["comments_count"] == 0
    followers_only = await post(http, author, "for my followers", "followers")
    private = await post(http, author, "for me", "private")

    for viewer, visible in ((author, {public["id"], followers_only["id"], private["id"]}),
                            (follower, {public["id"], followers_only["id"]}),
                            (stranger, {public["id"]})):
        for item in (public, followers_only, private):
            r = await http.get(f"/api/v1/posts/{item['id']}", headers=viewer.auth)
            assert r.status_code == (200 if item["id"] in visible else 404), (viewer, item["visibility"], r.text)
            if r.status_code == 404:
                assert error_code(r) == "not_found"
    # Anonymous readers: public posts only, cacheable by anyone for a while.
    anon = await http.get(f"/api/v1/posts/{public['id']}")
    assert anon.status_code == 200 and anon.json()["body"] == "hello, world"
    assert anon.headers["cache-control"] == f"public, max-age={running_node.settings.feed.public_max_age_s}"
    again = await http.get(f"/api/v1/posts/{public['id']}", headers={"If-None-Match": anon.headers["etag"]})
    assert again.status_code == 304 and not again.content
    assert (await http.get(f"/api/v1/posts/{followers_only['id']}")).status_code == 404
    mine = await http.get(f"/api/v1/posts/{private['id']}", headers=author.auth)
    assert mine.headers["cache-control"] == "no-store"
    # Unknown, malformed and non-canonical ids name nothing.
    for path in (str(uuid.uuid4()), "nope", public["id"].upper(), "'; DROP TABLE posts;--"):
        r = await http.get(f"/api/v1/posts/{path}", headers=stranger.auth)
        assert r.status_code == 404 and error_code(r) == "not_found"


async def test_blocks_hide_posts_both_ways(running_node: RunningNode, http: httpx.AsyncClient) -> None:
    author, blocked, blocker = await users(running_node, 3)
    mine = await post(http, author, "public words")
    await block(http, author, blocked)
    assert (await http.get(f"/api/v1/posts/{mine['id']}", headers=blocked.auth)).status_code == 404
    theirs = await post(http, blocker, "public too")
    await block(http, blocker, author)  # the blocker sees nothing of the blocked either
    assert (await http.get(f"/api/v1/posts/{theirs['id']}", headers=author.auth)).status_code == 404
    mine2 = await post(http, author, "after the block")
    assert (await http.get(f"/api/v1/posts/{mine2['id']}", headers=blocker.auth)).status_code == 404
    r = await http.post(f"/api/v1/posts/{mine['id']}/comments", json={"body": "hi"}, headers=blocked.auth)
    assert r.status_code == 404


async def test_edits_and_deletion_are_the_authors(running_node: RunningNode, http: httpx.AsyncClient,
                                                  db: asyncpg.Pool) -> None:
    author, other = await users(running_node, 2)
    item = await post(http, author, "first words")
    r = await http.patch(f"/api/v1/posts/{item['id']}", json={"body": "hacked"}, headers=other.auth)
    assert r.status_code == 403 and error_code(r) == "not_author"
    r = await http.delete(f"/api/v1/posts/{item['id']}", headers=other.auth)
    assert r.status_code == 403 and error_code(r) == "not_author"
    hidden = await post(http, author, "only me", "private")
    r = await http.patch(f"/api/v1/posts/{hidden['id']}", json={"body": "hacked"}, headers=other.auth)
    assert r.status_code == 404  # what they may not see does not exist for them
    assert (await http.get(f"/api/v1/posts/{item['id']}", headers=other.auth)).json()["body"] == "first words"

    r = await http.patch(f"/api/v1/posts/{item['id']}", json={"body": "second words", "visibility": "followers"},
                         headers=author.auth)
    assert r.status_code == 200, r.text
    edited = r.json()
    assert (edited["body"], edited["visibility"]) == ("second words", "followers") and edited["edited_at"]
    assert (await http.get(f"/api/v1/posts/{item['id']}", headers=other.auth)).status_code == 404  # no follower

    profile = (await http.get(f"/api/v1/users/{author.id}", headers=author.auth)).json()
    assert profile["posts_count"] == 2
    assert (await http.delete(f"/api/v1/posts/{item['id']}", headers=author.auth)).status_code == 204
    assert (await http.get(f"/api/v1/posts/{item['id']}", headers=author.auth)).status_code == 404
    assert (await http.delete(f"/api/v1/posts/{item['id']}", headers=author.auth)).status_code == 404
    r = await http.patch(f"/api/v1/posts/{item['id']}", json={"body": "revived?"}, headers=author.auth)
    assert r.status_code == 404
    profile = (await http.get(f"/api/v1/users/{author.id}", headers=author.auth)).json()
    assert profile["posts_count"] == 1
    count = await db.fetchval("SELECT posts_count FROM users WHERE id = $1", uuid.UUID(author.id))
    assert count == 1 == await db.fetchval(
        "SELECT count(*) FROM posts WHERE author_id = $1 AND state = 'published'", uuid.UUID(author.id))


async def test_bad_input_is_refused_and_changes_nothing(running_node: RunningNode, http: httpx.AsyncClient,
                                                        db: asyncpg.Pool) -> None:
    author = await new_user(running_node)
    item = await post(http, author, "steady")
    cases = [
        ({"body": "nul\x00byte"}, 422, "invalid_field"),
        ({"body": "x" * 5001}, 422, "invalid_field"),
        ({"body": ""}, 422, "invalid_field"),
        ({"body": "   "}, 422, "invalid_field"),
        ({"body": 42}, 422, "invalid_field"),
        ({"body": "bell\x07"}, 422, "invalid_field"),
        ({"body": "ok", "visibility": "secret"}, 422, "invalid_field"),
        ({"body": "ok", "author_id": author.id}, 422, "invalid_field"),
        ({"body": "ok", "kind": "video"}, 422, "invalid_field"),
        ({"upload_id": "not-a-uuid"}, 422, "invalid_field"),
        ({"upload_id": str(uuid.uuid4())}, 404, "not_found"),
        ({"post_id": item["id"]}, 404, "not_found"),  # a text post is no draft
    ]
    before = await db.fetchval("SELECT count(*) FROM posts WHERE author_id = $1", uuid.UUID(author.id))
    for body, status, code in cases:
        r = await http.post("/api/v1/posts", json=body, headers=author.auth)
        assert (r.status_code, error_code(r)) == (status, code), (body, r.text)
    r = await http.post("/api/v1/posts", content=b'{"body": "' + b"y" * 70_000 + b'"}',
                        headers={**author.auth, "Content-Type": "application/json"})
    assert (r.status_code, error_code(r)) == (413, "body_too_large")
    r = await http.post("/api/v1/posts", content=b"[1, 2", headers={**author.auth, "Content-Type": "application/json"})
    assert (r.status_code, error_code(r)) == (400, "invalid_json")
    r = await http.post("/api/v1/posts", content=b"body=x", headers=author.auth)
    assert r.status_code == 415
    r = await http.post("/api/v1/posts", json={"body": "anonymous"})
    assert r.status_code == 401
    for patch in ({}, {"body": "\x00"}, {"visibility": "everyone"}, {"state": "deleted"}, {"body": ""}):
        r = await http.patch(f"/api/v1/posts/{item['id']}", json=patch, headers=author.auth)
        assert r.status_code == 422, (patch, r.text)
    assert before == await db.fetchval("SELECT count(*) FROM posts WHERE author_id = $1", uuid.UUID(author.id))
    assert (await http.get(f"/api/v1/posts/{item['id']}", headers=author.auth)).json()["body"] == "steady"
    # SQL metacharacters and any script are text like any other.
    tricky = "'); DELETE FROM posts; -- \\ % _ \" Добар дан 🎉 ज़"
    stored = await post(http, author, tricky)
    assert (await http.get(f"/api/v1/posts/{stored['id']}", headers=author.auth)).json()["body"] == tricky
    assert len((await post(http, author, "é" * 5000))["body"]) == 5000


async def test_followers_hear_of_a_new_post_live(running_node: RunningNode, http: httpx.AsyncClient) -> None:
    author, follower, stranger = await users(running_node, 3)
    await follow(http, follower, author)
    async with Client(running_node.ws_url, token=follower.token) as fc, \
            Client(running_node.ws_url, token=stranger.token) as sc, \
            Client(running_node.ws_url, token=author.token) as ac:
        for client, user in ((fc, follower), (sc, stranger), (ac, author)):
            await client.subscribe(f"user:{user.id}")
        item = await post(http, author, "news")
        frame = await next_feed(fc, "post.created", lambda f: f.data["post"]["id"] == item["id"])
        assert frame.data["post"]["author"]["id"] == author.id and frame.data["post"]["kind"] == "text"
        await next_feed(ac, "post.created", lambda f: f.data["post"]["id"] == item["id"])
        hidden = await post(http, author, "secret", "private")
        await post(http, author, "news again")
        frame = await next_feed(fc, "post.created")
        assert frame.data["post"]["id"] != hidden["id"]
        try:
            stray = await next_feed(sc, "post.created", timeout_s=0.5)
        except (AssertionError, TimeoutError):
            stray = None
        assert stray is None

        r = await http.patch(f"/api/v1/posts/{item['id']}", json={"body": "news, edited"}, headers=author.auth)
        assert r.status_code == 200
        updated = await next_feed(ac, "post.updated", lambda f: f.data["post"]["id"] == item["id"])
        assert updated.data["changes"] == ["body"]
        assert (await http.delete(f"/api/v1/posts/{item['id']}", headers=author.auth)).status_code == 204
        await next_feed(fc, "post.deleted", lambda f: f.data["post"]["id"] == item["id"])


async def test_reactions_show_with_posts_and_reach_the_author(running_node: RunningNode,
                                                              http: httpx.AsyncClient) -> None:
    author, fan, other = await users(running_node, 3)
    item = await post(http, author, "react to me")
    async with Client(running_node.ws_url, token=author.token) as ac, \
            Client(running_node.ws_url, token=fan.token) as fc, \
            Client(running_node.ws_url, token=other.token) as oc:
        await ac.subscribe(f"user:{author.id}")
        assert (await http.get(f"/api/v1/posts/{item['id']}", headers=fan.auth)).json()["reactions"] == {}
        await fc.react("post", item["id"], "🔥")
        frame = await next_feed(ac, "reaction.created", lambda f: f.data["post"]["id"] == item["id"])
        assert frame.data["emoji"] == "🔥" and frame.data["user"]["id"] == fan.id
        await oc.react("post", item["id"], "🔥")
        await oc.react("post", item["id"], "😂")
        await ac.react("post", item["id"], "😂")  # the author's own: no frame to themselves
        for _ in range(2):
            await next_feed(ac, "reaction.created", lambda f: f.data["user"]["id"] == other.id)

        async def totals() -> bool:
            got = (await http.get(f"/api/v1/posts/{item['id']}", headers=fan.auth)).json()["reactions"]
            return bool(got == {"🔥": 2, "😂": 2})

        await until(totals, timeout_s=5)
        await fc.react("post", item["id"], "🔥", on=False)
        await until(lambda: _reactions_are(http, fan, item["id"], {"🔥": 1, "😂": 2}), timeout_s=5)
        await no_feed(ac, "reaction.created", 0.3)


async def _reactions_are(http: httpx.AsyncClient, user: User, post_id: str, expected: dict[str, int]) -> bool:
    r = await http.get(f"/api/v1/posts/{post_id}", headers=user.auth)
    return bool(r.json()["reactions"] == expected)
