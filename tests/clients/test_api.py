"""The SDK's HTTP calls against a real node: the social API as one user, refusals as ``ApiError``."""

from __future__ import annotations

import secrets
import uuid

import pytest

from amaro_client import Api, ApiError, AuthError, signup
from tests.conftest import RunningNode

PASSWORD = "a long passphrase for tests"


async def test_the_social_calls_do_what_the_api_says(running_node: RunningNode) -> None:
    ana = await signup(running_node.http_url, f"sdk{secrets.token_hex(4)}", PASSWORD, "Ana")
    bo = await signup(running_node.http_url, f"sdk{secrets.token_hex(4)}", PASSWORD, "Bo")
    as_ana, as_bo = Api(running_node.http_url, ana.access_token), Api(running_node.http_url, bo.access_token)
    assert (await as_ana.me())["id"] == ana.user_id
    room = await as_ana.open_direct_room(bo.user_id)
    assert (await as_bo.open_direct_room(ana.user_id))["id"] == room["id"]  # one direct room per pair
    assert [r["id"] for r in (await as_bo.rooms())["items"]] == [room["id"]]
    group = await as_ana.create_group("Familija", [bo.user_id])
    assert group["kind"] == "group" and group["title"] == "Familija"
    assert await as_bo.follow(ana.user_id) == "following"
    post = await as_ana.publish("Sastipe!", visibility="followers")
    assert [p["id"] for p in (await as_bo.home())["items"]] == [post["id"]]
    comment = await as_bo.comment(post["id"], "Šukar!")
    reply = await as_ana.comment(post["id"], "Palikerav", parent_id=comment["id"])
    assert reply["parent_id"] == comment["id"]
    assert await as_ana.request("DELETE", f"/comments/{reply['id']}") is None  # 204: no body
    listed = await as_bo.request("GET", f"/posts/{post['id']}/comments")
    assert [c["id"] for c in listed["items"]] == [comment["id"]]
    page = await as_bo.home(limit=1)
    assert len(page["items"]) == 1 and page["next_cursor"] is None
    await as_bo.unfollow(ana.user_id)
    assert (await as_bo.home())["items"] == []


async def test_refusals_carry_the_servers_code(running_node: RunningNode) -> None:
    ana = await signup(running_node.http_url, f"sdk{secrets.token_hex(4)}", PASSWORD)
    api = Api(running_node.http_url, ana.access_token)
    with pytest.raises(ApiError) as refused:
        await api.follow(ana.user_id)
    assert (refused.value.status, refused.value.code) == (422, "cannot_follow_self")
    with pytest.raises(ApiError) as missing:
        await api.request("GET", f"/posts/{uuid.uuid4()}")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(ApiError) as stranger:
        await Api(running_node.http_url, "not-a-token").me()
    assert stranger.value.status == 401
    with pytest.raises(AuthError) as taken:
        await signup(running_node.http_url, ana.username, PASSWORD)
    assert (taken.value.status, taken.value.code) == (409, "username_taken") and isinstance(taken.value, ApiError)
