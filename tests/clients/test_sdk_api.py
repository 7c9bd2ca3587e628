"""The SDK's ``Api`` against a real node covers every operation the node describes in
``GET /api/v1/openapi.json``: one story calls every method, a spy on the SDK's HTTP function
records what went over the wire, and each operation of the document must have been called. A new
endpoint without an SDK call fails here. Grants refresh before expiry and after a 401, keeping the
rotated refresh token."""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
import uuid
from typing import Any

import httpx
import pytest

from amaro_client import Api, ApiError, AuthError, Grant, api, auth, http, refresh, signup
from tests.conftest import RunningNode

PASSWORD = "a long passphrase for tests"
Calls = list[tuple[str, str]]


@pytest.fixture
def wire_calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """(method, path) of every request the SDK's account and API calls sent."""
    seen: Calls = []

    def spy(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        seen.append((method, httpx.URL(url).path))
        return real(method, url, *args, **kwargs)

    real = http.call
    monkeypatch.setattr(api, "call", spy)
    monkeypatch.setattr(auth, "call", spy)
    return seen


def operations(document: dict[str, Any]) -> dict[tuple[str, str], re.Pattern[str]]:
    return {(method.upper(), path): re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$")
            for path, ops in document["paths"].items() for method in ops}


async def people(base: str) -> tuple[Api, Api, Api]:
    made = [await Api.signup(base, f"sdk{secrets.token_hex(4)}", PASSWORD, name) for name in ("Ana", "Bo", "Cali")]
    return made[0], made[1], made[2]


async def test_every_operation_of_the_openapi_document_has_an_sdk_call(running_node: RunningNode,
                                                                     wire_calls: Calls) -> None:
    async with httpx.AsyncClient() as http:
        document = (await http.get(f"{running_node.http_url}/api/v1/openapi.json")).json()
    base = running_node.http_url
    ana, bo, cali = await people(base)
    a, b, c = await ana.user_id(), await bo.user_id(), await cali.user_id()

    # me and people
    assert (await ana.me())["id"] == a
    again = await Api.login(base, (await bo.me())["username"], PASSWORD)
    assert await again.user_id() == b
    me = await ana.update_me(bio="dances", private=True)
    assert (me["bio"], me["private"]) == ("dances", True)
    assert (await bo.user(a))["username"] == (await bo.user_by_name(me["username"]))["username"]
    # follows: a private account gets requests
    assert await bo.follow(a) == "requested" and await cali.follow(a) == "requested"
    assert (await bo.relationship(a))["requested"] is True
    assert sorted(r["user"]["id"] for r in [r async for r in ana.all_follow_requests(page_size=1)]) == sorted([b, c])
    assert [r["user"]["id"] for r in (await ana.follow_requests(limit=1))["items"]] in ([b], [c])
    await ana.accept_request(b)
    await ana.decline_request(c)
    assert [f["user"]["id"] for f in (await ana.followers(a))["items"]] == [b]
    assert [f["user"]["id"] for f in (await bo.following(b))["items"]] == [a]
    assert [f["user"]["id"] async for f in ana.all_followers(a)] == [b]
    assert [f["user"]["id"] async for f in bo.all_following(b)] == [a]
    assert await cali.unfollow(a) == "none"
    # blocks
    await cali.block(a)
    assert [x["user"]["id"] for x in (await cali.blocks())["items"]] == [a]
    assert [x["user"]["id"] async for x in cali.all_blocks()] == [a]
    with pytest.raises(ApiError) as hidden:
        await ana.user(c)
    assert (hidden.value.status, hidden.value.code) == (404, "not_found")
    await cali.unblock(a)

    # rooms
    direct = await ana.open_direct_room(b)
    assert (await bo.open_direct_room(a))["id"] == direct["id"]
    group = await ana.create_group("Familija", [b])
    renamed = await ana.rename_room(group["id"], "Familija 2")
    assert renamed["title"] == "Familija 2"
    added = await ana.add_members(group["id"], [c])
    assert added["added"] == [c] and added["room"]["members_count"] == 3
    assert (await ana.set_role(group["id"], b, "admin"))["members_count"] == 3
    assert {m["id"]: m["role"] for m in (await ana.room(group["id"]))["members"]}[b] == "admin"
    await bo.remove_member(group["id"], c)
    await ana.mute(group["id"])
    assert (await ana.room(group["id"]))["muted"] is True
    await ana.mute(group["id"], on=False)
    await bo.leave_room(group["id"])
    assert {r["id"] for r in (await ana.rooms())["items"]} == {direct["id"], group["id"]}
    assert [r["id"] async for r in bo.all_rooms(page_size=1)] == [direct["id"]]

    # posts, comments, timelines
    posts = [await ana.publish(f"Sastipe {i}", visibility="followers") for i in range(3)]
    assert (await bo.post(posts[0]["id"]))["body"] == "Sastipe 0"
    edited = await ana.edit_post(posts[0]["id"], body="Sastipe!", visibility="public")
    assert (edited["body"], edited["visibility"]) == ("Sastipe!", "public")
    assert [p["id"] async for p in bo.home_posts(page_size=2)] == [p["id"] for p in reversed(posts)]
    assert [p["id"] for p in (await bo.home(limit=1))["items"]] == [posts[2]["id"]]
    assert [p["id"] async for p in bo.all_user_posts(a, page_size=2)] == [p["id"] for p in reversed(posts)]
    assert len((await bo.user_posts(a, limit=2))["items"]) == 2
    comment = await bo.comment(posts[1]["id"], "Šukar!")
    reply = await ana.comment(posts[1]["id"], "Palikerav", parent_id=comment["id"])
    assert reply["parent_id"] == comment["id"]
    assert [x["id"] async for x in bo.all_comments(posts[1]["id"], page_size=1)] == [comment["id"], reply["id"]]
    await ana.delete_comment(reply["id"])
    assert [x["id"] for x in (await bo.comments(posts[1]["id"]))["items"]] == [comment["id"]]
    await ana.delete_post(posts[2]["id"])
    with pytest.raises(ApiError) as gone:
        await bo.post(posts[2]["id"])
    assert gone.value.status == 404

    # media: an upload's state (created over tus by tests/clients/test_sdk_uploads.py; unknown here)
    with pytest.raises(ApiError) as unknown:
        await ana.media(str(uuid.uuid4()))
    assert unknown.value.status == 404

    # the session: refresh and log out
    assert ana.grant is not None
    spent = ana.grant.refresh_token
    await ana.refresh()
    assert ana.grant.refresh_token != spent
    await ana.logout()
    with pytest.raises(AuthError):
        await refresh(base, spent)

    called = {(m, p) for m, p in wire_calls}
    missing = [f"{m} {path}" for (m, path), pattern in operations(document).items()
               if not any(cm == m and pattern.match(cp) for cm, cp in called)]
    assert missing == [], f"operations of openapi.json without an SDK call: {missing}"


async def test_a_grant_is_refreshed_before_it_expires_and_after_a_401(running_node: RunningNode) -> None:
    base = running_node.http_url
    grant = await signup(base, f"sdk{secrets.token_hex(4)}", PASSWORD)
    saved: list[Grant] = []
    # An hour-old grant of a 15-minute token: due for a refresh before the first call.
    old = dataclasses.replace(grant, obtained_at=time.time() - 3600)
    client = Api(base, old, on_grant=saved.append)
    assert (await client.me())["id"] == grant.user_id
    assert len(saved) == 1 and saved[0].refresh_token != grant.refresh_token
    assert client.grant == saved[0] and client.token == saved[0].access_token

    # A token the server refuses although it looks fresh: one refresh, then the call succeeds.
    current = client.grant
    assert current is not None
    client = Api(base, dataclasses.replace(current, access_token="at1.not.valid"), on_grant=saved.append)
    assert (await client.me())["id"] == grant.user_id
    assert len(saved) == 2 and saved[1].refresh_token != current.refresh_token
    with pytest.raises(AuthError):
        await refresh(base, grant.refresh_token)  # rotated: the first refresh token is spent

    # A bare access token cannot be refreshed: the 401 is the caller's.
    with pytest.raises(ApiError) as refused:
        await Api(base, "at1.not.valid").me()
    assert refused.value.status == 401
