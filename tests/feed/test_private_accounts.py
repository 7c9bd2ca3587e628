"""A private account's posts, even public ones, reach only its followers; turning private hides
them at once on every read path (the post maps cached before carry the old answer otherwise)."""

from __future__ import annotations

import httpx

from tests.conftest import RunningNode
from tests.feed.people import join


async def test_a_private_accounts_public_post_is_for_followers_only(running_node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=running_node.http_url, timeout=10) as http:
        author, follower, stranger = await join(http), await join(http), await join(http)
        assert await follower.follow(author) == "following"
        posted = await author.send("POST", "/api/v1/posts", {"body": "for whom?", "visibility": "public"})
        assert posted.status_code == 201, posted.text
        post = posted.json()["id"]
        shown = await stranger.get(f"/api/v1/posts/{post}")
        assert shown.status_code == 200 and shown.headers["cache-control"].startswith("public")

        assert (await author.send("PATCH", "/api/v1/me", {"private": True})).status_code == 200
        hidden = await stranger.get(f"/api/v1/posts/{post}")
        assert hidden.status_code == 404  # cached as visible a moment ago: dropped with the change
        assert (await http.get(f"/api/v1/posts/{post}")).status_code == 404  # anonymous too
        profile = (await stranger.get(f"/api/v1/users/{author.id}/posts")).json()["items"]
        assert profile == []
        still = await follower.get(f"/api/v1/posts/{post}")
        assert still.status_code == 200 and still.headers["cache-control"] == "no-store"
        home = (await follower.get("/api/v1/timelines/home")).json()["items"]
        assert post in [item["id"] for item in home]

        assert await stranger.follow(author) == "requested"
        assert (await stranger.get(f"/api/v1/posts/{post}")).status_code == 404
        accepted = await author.send("POST", f"/api/v1/me/follow-requests/{stranger.id}/accept")
        assert accepted.status_code == 204
        assert (await stranger.get(f"/api/v1/posts/{post}")).status_code == 200
