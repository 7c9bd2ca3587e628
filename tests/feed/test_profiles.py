"""Profiles over real HTTP: my profile and its edits, profiles by id and by username, their cache
headers, invalidation across nodes, blocks hiding a profile, and bad input refused unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest

from amaro.services import Services
from amaro.settings import Settings
from tests.conftest import RunningNode, serve_node, with_node
from tests.feed.people import Member, error_code, join


@pytest.fixture
async def http(running_node: RunningNode) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running_node.http_url, timeout=15) as client:
        yield client


async def test_my_profile_and_its_edits(http: httpx.AsyncClient) -> None:
    ann = await join(http)
    me = await ann.get("/api/v1/me")
    assert me.status_code == 200 and me.headers["cache-control"] == "no-store"
    body = me.json()
    assert body == {"id": ann.id, "username": ann.username, "display_name": ann.username, "bio": "",
                    "private": False, "followers_count": 0, "following_count": 0, "posts_count": 0,
                    "created_at": body["created_at"]}
    assert (await http.get(f"/api/v1/users/{ann.id}")).json()["bio"] == ""  # now cached
    edited = await ann.send("PATCH", "/api/v1/me", {"display_name": "  Ann Lovari ", "bio": "line one\nline two"})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["display_name"], edited.json()["bio"]) == ("Ann Lovari", "line one\nline two")
    # The cached profile was invalidated: every reader sees the edit at once.
    public = await http.get(f"/api/v1/users/{ann.id}")
    assert (public.json()["display_name"], public.json()["bio"]) == ("Ann Lovari", "line one\nline two")
    assert (await ann.send("PATCH", "/api/v1/me", {"private": True})).json()["private"] is True
    assert (await http.get(f"/api/v1/users/{ann.id}")).json()["private"] is True
    assert (await ann.send("PATCH", "/api/v1/me", {})).json()["display_name"] == "Ann Lovari"
    assert (await http.get("/api/v1/me")).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"bio": "x" * 501}, 422, "invalid_field"),
        ({"bio": "evil\x00bio"}, 422, "invalid_field"),
        ({"bio": "bell\x07"}, 422, "invalid_field"),
        ({"display_name": "nul\x00name"}, 422, "invalid_field"),
        ({"display_name": ""}, 422, "invalid_field"),
        ({"display_name": "x" * 65}, 422, "invalid_field"),
        ({"display_name": 7}, 422, "invalid_field"),
        ({"private": "yes"}, 422, "invalid_field"),
        ({"username": "takeover"}, 422, "invalid_field"),
        ({"followers_count": 10**6}, 422, "invalid_field"),
        ({"bio": "fine", "display_name": None}, 422, "invalid_field"),  # all or nothing
        ({"bio": "y" * 20_000}, 413, "body_too_large"),
    ],
)
async def test_bad_edits_are_refused_and_change_nothing(http: httpx.AsyncClient, body: dict[str, object],
                                                        status: int, code: str) -> None:
    ann = await join(http)
    before = (await ann.get("/api/v1/me")).json()
    answer = await ann.send("PATCH", "/api/v1/me", body)
    assert (answer.status_code, error_code(answer)) == (status, code), answer.text
    assert (await ann.get("/api/v1/me")).json() == before


async def test_edits_need_json_and_a_valid_token(http: httpx.AsyncClient) -> None:
    ann = await join(http)
    form = await http.patch("/api/v1/me", content=b"bio=x", headers={**ann.bearer, "content-type": "text/plain"})
    assert (form.status_code, error_code(form)) == (415, "unsupported_media_type")
    broken = await http.patch("/api/v1/me", content=b'{"bio": ', headers={**ann.bearer,
                                                                          "content-type": "application/json"})
    assert (broken.status_code, error_code(broken)) == (400, "invalid_json")
    forged = await http.patch("/api/v1/me", json={"bio": "x"}, headers={"Authorization": "Bearer at1.forged"})
    assert (forged.status_code, error_code(forged)) == (401, "unauthorized")
    assert (await ann.get("/api/v1/me")).json()["bio"] == ""


async def test_profiles_by_id_and_by_username(http: httpx.AsyncClient) -> None:
    ann = await join(http)
    by_id = await http.get(f"/api/v1/users/{ann.id}")
    assert by_id.status_code == 200
    for spelled in (ann.username, ann.username.upper()):
        by_name = await http.get(f"/api/v1/users/by-name/{spelled}")
        assert by_name.status_code == 200 and by_name.json() == by_id.json()
    # A username that is also a word of the API's paths still names its user.
    words = await join(http, "followers")
    assert (await http.get("/api/v1/users/by-name/followers")).json()["id"] == words.id


@pytest.mark.parametrize("name", [
    "robert'); DROP TABLE users;--", "a' OR '1'='1", "nul\x00byte", "x" * 5000, "%", "_", "...", "ann*",
    "名前", " ", "a b",
])
async def test_usernames_that_cannot_be_are_unknown(http: httpx.AsyncClient, name: str) -> None:
    answer = await http.get("/api/v1/users/by-name/" + quote(name, safe=""))
    assert (answer.status_code, error_code(answer)) == (404, "not_found"), answer.text
    assert (await http.get("/api/v1/users/by-name/" + quote("robert", safe=""))).status_code == 404


@pytest.mark.parametrize("ident", ["not-a-uuid", "00000000-0000-4000-8000-000000000000",
                                   "6F1C1A52-5B8E-4C1E-9D0E-1C2B3A4D5E6F", "1 OR 1=1", "%00"])
async def test_unknown_ids_are_404(http: httpx.AsyncClient, ident: str) -> None:
    answer = await http.get(f"/api/v1/users/{ident}")
    assert (answer.status_code, error_code(answer)) == (404, "not_found")


async def test_cache_headers_public_only_for_the_same_answer_for_everyone(http: httpx.AsyncClient,
                                                                          running_node: RunningNode) -> None:
    ann, bob = await join(http), await join(http)
    anonymous = await http.get(f"/api/v1/users/{ann.id}")
    max_age = running_node.settings.feed.public_max_age_s
    assert anonymous.headers["cache-control"] == f"public, max-age={max_age}"
    assert "Authorization" in anonymous.headers["vary"]
    again = await http.get(f"/api/v1/users/{ann.id}", headers={"If-None-Match": anonymous.headers["etag"]})
    assert again.status_code == 304
    # A signed-in reader's answer depends on blocks: only their own client may keep it.
    signed_in = await bob.get(f"/api/v1/users/{ann.id}")
    assert signed_in.headers["cache-control"] == "private, no-cache"
    assert signed_in.json() == anonymous.json()  # nothing viewer-specific in a profile
    for private in ("/api/v1/me", f"/api/v1/users/{ann.id}/relationship"):
        assert (await bob.get(private)).headers["cache-control"] == "no-store"


async def test_a_blocker_is_unknown_to_the_blocked(http: httpx.AsyncClient) -> None:
    ann, bob = await join(http), await join(http)
    assert (await ann.send("POST", f"/api/v1/users/{bob.id}/block")).status_code == 204
    unknown = await bob.get("/api/v1/users/00000000-0000-4000-8000-000000000000")
    for path in (f"/api/v1/users/{ann.id}", f"/api/v1/users/by-name/{ann.username}"):
        hidden = await bob.get(path)
        assert (hidden.status_code, hidden.json()) == (404, unknown.json())  # the same as nobody
        assert (await http.get(path)).status_code == 200  # anonymous readers are not the blocked user
    assert (await ann.profile(bob))["id"] == bob.id  # the blocker still sees whom they block
    assert (await ann.send("DELETE", f"/api/v1/users/{bob.id}/block")).status_code == 204
    assert (await bob.profile(ann))["id"] == ann.id


async def test_counts_are_exact_and_fresh(http: httpx.AsyncClient) -> None:
    ann, bob, cay = await join(http), await join(http), await join(http)
    await ann.profile(bob)  # cached before the follows
    await asyncio.gather(ann.follow(bob), cay.follow(bob), bob.follow(ann))
    assert (await ann.profile(bob))["followers_count"] == 2
    assert (await ann.profile(bob))["following_count"] == 1
    assert (await ann.send("DELETE", f"/api/v1/users/{bob.id}/follow")).status_code == 200
    assert (await http.get(f"/api/v1/users/{bob.id}")).json()["followers_count"] == 1
    assert (await ann.get("/api/v1/me")).json()["following_count"] == 0


async def test_an_edit_is_seen_on_another_node_at_once(http: httpx.AsyncClient, settings: Settings,
                                                       services: Services) -> None:
    ann: Member = await join(http)
    async with serve_node(with_node(settings, node_id="profiles-second"), services) as second, \
            httpx.AsyncClient(base_url=second.http_url, timeout=15) as other:
        assert (await other.get(f"/api/v1/users/{ann.id}")).json()["bio"] == ""  # cached on the second node
        assert (await ann.send("PATCH", "/api/v1/me", {"bio": "moved to Sevilla"})).status_code == 200
        for _ in range(100):
            if (await other.get(f"/api/v1/users/{ann.id}")).json()["bio"] == "moved to Sevilla":
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the second node kept the old profile")
