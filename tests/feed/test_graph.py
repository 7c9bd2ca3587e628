"""The follow graph over real HTTP and the real socket: follows and their live frames, private
accounts and follow requests, blocks everywhere they must hide someone, paging under concurrent
follows, and bad input refused with a stable code and nothing changed."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningNode
from tests.feed.people import Member, crowd, error_code, feed_frame, join

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def http(running_node: RunningNode) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running_node.http_url, timeout=30) as client:
        yield client


async def relationship(viewer: Member, other: Member) -> dict[str, Any]:
    answer = await viewer.get(f"/api/v1/users/{other.id}/relationship")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def ids(viewer: Member | httpx.AsyncClient, path: str, **params: Any) -> list[str]:
    """Every user of a list, all pages."""
    out: list[str] = []
    cursor = ""
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = await (viewer.get(path, **query) if isinstance(viewer, Member) else viewer.get(path, params=query))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        out += [item["user"]["id"] for item in body["items"]]
        if body["next_cursor"] is None:
            return out
        cursor = body["next_cursor"]


async def counts(member: Member) -> tuple[int, int]:
    me = (await member.get("/api/v1/me")).json()
    return me["followers_count"], me["following_count"]


async def test_follow_unfollow_counts_and_the_live_frame(http: httpx.AsyncClient, running_node: RunningNode) -> None:
    ann, bob = await join(http), await join(http)
    inbox = await bob.inbox(running_node.ws_url)
    assert await ann.follow(bob) == "following"
    frame = await feed_frame(inbox, "follow.new")
    assert frame.data == {"user": {"id": ann.id, "username": ann.username, "display_name": ann.username}}
    assert await ann.follow(bob) == "following"  # idempotent: no second frame, no second count
    assert (await counts(bob), await counts(ann)) == ((1, 0), (0, 1))
    assert await relationship(ann, bob) == {"following": True, "followed_by": False, "requested": False,
                                            "requested_by": False, "blocked": False}
    assert (await relationship(bob, ann))["followed_by"] is True
    assert await ids(http, f"/api/v1/users/{bob.id}/followers") == [ann.id]
    assert await ids(ann, f"/api/v1/users/{ann.id}/following") == [bob.id]
    gone = await ann.send("DELETE", f"/api/v1/users/{bob.id}/follow")
    assert (gone.status_code, gone.json()) == (200, {"state": "none"})
    assert (await ann.send("DELETE", f"/api/v1/users/{bob.id}/follow")).status_code == 200
    assert (await counts(bob), await counts(ann)) == ((0, 0), (0, 0))
    await asyncio.sleep(0.2)
    assert [f.kind for f in inbox.seen if getattr(f, "kind", "").startswith("follow.")] == ["follow.new"]
    await inbox.close()


async def test_following_yourself_and_nobody_is_refused(http: httpx.AsyncClient) -> None:
    ann = await join(http)
    for method in ("POST", "DELETE"):
        answer = await ann.send(method, f"/api/v1/users/{ann.id}/follow")
        assert (answer.status_code, error_code(answer)) == (422, "cannot_follow_self")
        for bad in (UNKNOWN, "nobody", "1;DROP TABLE follows", UNKNOWN.upper()):
            answer = await ann.send(method, f"/api/v1/users/{bad}/follow")
            assert (answer.status_code, error_code(answer)) == (404, "not_found")
    answer = await ann.send("POST", f"/api/v1/users/{ann.id}/block")
    assert (answer.status_code, error_code(answer)) == (422, "cannot_block_self")
    assert await counts(ann) == (0, 0)
    assert (await http.post(f"/api/v1/users/{ann.id}/follow")).status_code == 401


async def test_a_private_account_accepts_followers_one_by_one(http: httpx.AsyncClient,
                                                              running_node: RunningNode) -> None:
    owner, ann, bob, cay = await crowd(http, 4)
    assert (await owner.send("PATCH", "/api/v1/me", {"private": True})).status_code == 200
    owner_inbox, ann_inbox = await owner.inbox(running_node.ws_url), await ann.inbox(running_node.ws_url)

    assert await ann.follow(owner) == "requested"
    asked = await feed_frame(owner_inbox, "follow.request")
    assert asked.data["user"]["id"] == ann.id
    assert await ann.follow(owner) == "requested"  # asking twice is one request
    assert await bob.follow(owner) == "requested"
    assert (await relationship(ann, owner))["requested"] is True
    assert (await relationship(owner, ann))["requested_by"] is True
    assert await ids(owner, "/api/v1/me/follow-requests") == [bob.id, ann.id]  # newest first
    assert await counts(owner) == (0, 0)
    # A private account's lists are for its followers and itself.
    for answer in (await ann.get(f"/api/v1/users/{owner.id}/followers"),
                   await http.get(f"/api/v1/users/{owner.id}/following")):
        assert (answer.status_code, error_code(answer)) == (403, "private_account")

    accepted = await owner.send("POST", f"/api/v1/me/follow-requests/{ann.id}/accept")
    assert accepted.status_code == 204
    frame = await feed_frame(ann_inbox, "follow.accepted")
    assert frame.data["user"]["id"] == owner.id
    assert (await relationship(ann, owner))["following"] is True
    assert await counts(owner) == (1, 0) and await counts(ann) == (0, 1)
    assert await ids(ann, f"/api/v1/users/{owner.id}/followers") == [ann.id]  # a follower now
    assert await ids(owner, f"/api/v1/users/{owner.id}/followers") == [ann.id]

    declined = await owner.send("POST", f"/api/v1/me/follow-requests/{bob.id}/decline")
    assert declined.status_code == 204
    again = await owner.send("POST", f"/api/v1/me/follow-requests/{bob.id}/accept")
    assert (again.status_code, error_code(again)) == (404, "not_found")
    assert (await relationship(bob, owner))["requested"] is False
    assert (await relationship(bob, owner))["following"] is False
    for answer_path in ("accept", "decline"):  # nobody asked / unknown / not an id
        for who in (cay.id, UNKNOWN, "x'--"):
            answer = await owner.send("POST", f"/api/v1/me/follow-requests/{who}/{answer_path}")
            assert (answer.status_code, error_code(answer)) == (404, "not_found")

    # A requester withdraws their request.
    assert await cay.follow(owner) == "requested"
    assert (await cay.send("DELETE", f"/api/v1/users/{owner.id}/follow")).json() == {"state": "none"}
    assert await ids(owner, "/api/v1/me/follow-requests") == []

    # Going public accepts whoever is waiting.
    assert await bob.follow(owner) == "requested"
    bob_inbox = await bob.inbox(running_node.ws_url)
    assert (await owner.send("PATCH", "/api/v1/me", {"private": False})).json()["followers_count"] == 2
    assert (await feed_frame(bob_inbox, "follow.accepted")).data["user"]["id"] == owner.id
    assert (await relationship(bob, owner))["following"] is True
    assert await ids(owner, "/api/v1/me/follow-requests") == []
    assert await counts(bob) == (0, 1)
    assert await cay.follow(owner) == "following"
    for client in (owner_inbox, ann_inbox, bob_inbox):
        await client.close()


async def test_a_block_cuts_every_tie_and_hides_the_blocker(http: httpx.AsyncClient) -> None:
    ann, bob, cay = await crowd(http, 3)
    await ann.follow(bob)
    await bob.follow(ann)
    await cay.follow(bob)
    await ann.follow(cay)
    await cay.follow(ann)
    assert (await bob.send("POST", f"/api/v1/users/{ann.id}/block")).status_code == 204
    assert (await bob.send("POST", f"/api/v1/users/{ann.id}/block")).status_code == 204  # idempotent
    # Both follows are gone, with the counts.
    assert await counts(ann) == (1, 1) and await counts(bob) == (1, 0)
    # The blocked user: the blocker is unknown everywhere.
    for path in (f"/api/v1/users/{bob.id}", f"/api/v1/users/by-name/{bob.username}",
                 f"/api/v1/users/{bob.id}/relationship", f"/api/v1/users/{bob.id}/followers",
                 f"/api/v1/users/{bob.id}/following"):
        answer = await ann.get(path)
        assert (answer.status_code, error_code(answer)) == (404, "not_found"), path
    for method in ("POST", "DELETE"):
        answer = await ann.send(method, f"/api/v1/users/{bob.id}/follow")
        assert (answer.status_code, error_code(answer)) == (404, "not_found")
    # ... and left out of other people's lists.
    assert bob.id not in await ids(ann, f"/api/v1/users/{cay.id}/following", limit=1)
    assert bob.id in await ids(http, f"/api/v1/users/{cay.id}/following")
    assert ann.id not in await ids(bob, f"/api/v1/users/{cay.id}/followers")
    # The blocker: knows what they did.
    answer = await bob.send("POST", f"/api/v1/users/{ann.id}/follow")
    assert (answer.status_code, error_code(answer)) == (403, "blocking")
    assert await relationship(bob, ann) == {"following": False, "followed_by": False, "requested": False,
                                            "requested_by": False, "blocked": True}
    assert await ids(bob, "/api/v1/me/blocks") == [ann.id]
    assert await ids(ann, "/api/v1/me/blocks") == []
    assert await counts(ann) == (1, 1) and await counts(bob) == (1, 0)
    # The blocked may block back; unblocking one side leaves the other.
    assert (await ann.send("POST", f"/api/v1/users/{bob.id}/block")).status_code == 204
    assert (await bob.send("DELETE", f"/api/v1/users/{ann.id}/block")).status_code == 204
    assert (await bob.send("POST", f"/api/v1/users/{ann.id}/follow")).status_code == 404
    assert (await ann.send("DELETE", f"/api/v1/users/{bob.id}/block")).status_code == 204
    assert await ann.follow(bob) == "following"
    assert (await relationship(bob, ann))["followed_by"] is True


async def test_a_block_removes_follow_requests_both_ways(http: httpx.AsyncClient) -> None:
    ann, bob = await crowd(http, 2)
    for member in (ann, bob):
        await member.send("PATCH", "/api/v1/me", {"private": True})
    assert await ann.follow(bob) == "requested" and await bob.follow(ann) == "requested"
    assert (await ann.send("POST", f"/api/v1/users/{bob.id}/block")).status_code == 204
    assert await ids(ann, "/api/v1/me/follow-requests") == []
    assert await ids(bob, "/api/v1/me/follow-requests") == []
    answer = await ann.send("POST", f"/api/v1/me/follow-requests/{bob.id}/accept")
    assert answer.status_code == 404


async def test_concurrent_follows_and_blocks_keep_counts_exact(http: httpx.AsyncClient) -> None:
    star, *fans = await crowd(http, 12)
    await asyncio.gather(*(fan.follow(star) for fan in fans), *(star.follow(fan) for fan in fans[:6]))
    await asyncio.gather(*(star.send("POST", f"/api/v1/users/{fan.id}/block") for fan in fans[::2]),
                         *(fan.send("DELETE", f"/api/v1/users/{star.id}/follow") for fan in fans[1:4:2]))
    followers = await ids(star, f"/api/v1/users/{star.id}/followers")
    following = await ids(star, f"/api/v1/users/{star.id}/following")
    assert sorted(followers) == sorted(fan.id for fan in fans[1::2] if fan not in fans[1:4:2])
    assert sorted(following) == sorted(fan.id for fan in fans[1:6:2])
    assert await counts(star) == (len(followers), len(following))
    for fan in fans:
        assert (await counts(fan))[1] == (fan.id in followers)


async def test_paging_under_concurrent_follows_never_repeats_or_skips(http: httpx.AsyncClient) -> None:
    star = await join(http)
    early = await crowd(http, 30)
    for fan in early:
        await fan.follow(star)
    late = await crowd(http, 15)
    seen: list[str] = []
    cursor = ""

    async def join_in() -> None:
        for fan in late:
            await fan.follow(star)
            await asyncio.sleep(0.005)

    writer = asyncio.create_task(join_in())
    while True:
        answer = await http.get(f"/api/v1/users/{star.id}/followers",
                                params={"limit": 4, **({"cursor": cursor} if cursor else {})})
        body = answer.json()
        seen += [item["user"]["id"] for item in body["items"]]
        await asyncio.sleep(0.01)
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    await writer
    assert len(seen) == len(set(seen)), "a follower came twice"
    # Everyone who followed before the paging started sorts after every cursor: none is missed.
    assert set(fan.id for fan in early) <= set(seen)
    # Whoever else came was a late follower; the order is newest first throughout.
    assert set(seen) <= {fan.id for fan in early + late}
    everyone = await ids(http, f"/api/v1/users/{star.id}/followers", limit=100)
    assert everyone[-30:] == [fan.id for fan in reversed(early)]
    assert [u for u in everyone if u in seen] == seen


async def test_cursors_only_work_where_they_were_given(http: httpx.AsyncClient) -> None:
    ann, bob = await crowd(http, 2)
    for fan in await crowd(http, 3):
        await fan.follow(ann)
        await fan.follow(bob)
        await ann.follow(fan)
    page = (await http.get(f"/api/v1/users/{ann.id}/followers", params={"limit": 1})).json()
    cursor = page["next_cursor"]
    assert cursor
    body = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    tampered = base64.urlsafe_b64encode(body[:-1] + bytes([body[-1] ^ 1])).rstrip(b"=").decode()
    for path, bad in (
        (f"/api/v1/users/{ann.id}/followers", "garbage"),
        (f"/api/v1/users/{ann.id}/followers", tampered),
        (f"/api/v1/users/{ann.id}/followers", "' OR 1=1 --"),
        (f"/api/v1/users/{ann.id}/followers", "\x00"),
        (f"/api/v1/users/{bob.id}/followers", cursor),  # another user's list
        (f"/api/v1/users/{ann.id}/following", cursor),  # another list of the same user
    ):
        answer = await http.get(path, params={"cursor": bad})
        assert (answer.status_code, error_code(answer)) in ((400, "bad_cursor"), (422, "invalid_field")), bad
    other = await ann.get("/api/v1/me/blocks", cursor=cursor)
    assert (other.status_code, error_code(other)) == (400, "bad_cursor")
    huge = await http.get(f"/api/v1/users/{ann.id}/followers", params={"cursor": "A" * 5000})
    assert (huge.status_code, error_code(huge)) == (422, "invalid_field")
    for limit in ("0", "101", "-1", "ten", "1e3"):
        answer = await http.get(f"/api/v1/users/{ann.id}/followers", params={"limit": limit})
        assert (answer.status_code, error_code(answer)) == (422, "invalid_field"), limit
    nxt = await http.get(f"/api/v1/users/{ann.id}/followers", params={"limit": 1, "cursor": cursor})
    assert nxt.status_code == 200 and len(nxt.json()["items"]) == 1


async def test_writes_are_rate_limited(http: httpx.AsyncClient) -> None:
    from feed.api_graph import BLOCK_LIMIT

    ann, bob = await crowd(http, 2)
    _, limit, _ = BLOCK_LIMIT
    statuses = [(await ann.send("POST", f"/api/v1/users/{bob.id}/block")).status_code for _ in range(limit)]
    assert statuses == [204] * limit
    last = await ann.send("DELETE", f"/api/v1/users/{bob.id}/block")
    assert (last.status_code, error_code(last)) == (429, "rate_limited") and last.headers["retry-after"]
    assert await ids(ann, "/api/v1/me/blocks") == [bob.id]  # the refused unblock changed nothing
