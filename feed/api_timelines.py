"""Timelines over HTTP: ``GET /api/v1/timelines/home`` (the posts of the people I follow, and
mine) and ``GET /api/v1/users/{user_id}/posts`` (a user's posts I may see), newest first.

Pages are ``{"items": [post, ...], "next_cursor"}``; ``next_cursor`` (signed, for this list and
this viewer or author only) gives the posts below the page's last one, so paging never repeats or
skips a post whatever is published meanwhile (new posts come at the top of the next first page).
A page may hold fewer than ``limit`` posts while ``next_cursor`` is not null (posts the viewer may
not see were passed over). A user who blocked the viewer, or whom the viewer blocked, has no posts
to them: 404 like an unknown user. Answers are ``no-store`` (an anonymous reader's page of a
profile, the same for everyone, is ``public, max-age``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import Response

from feed.api_posts import POST, seq_position
from feed.web import ApiError, Call, Endpoint, page, respond

if TYPE_CHECKING:
    from feed.app import FeedApi

TAG = "timelines"
PAGE_DEFAULT, PAGE_MAX = 20, 100
TIMELINE = {"type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": POST}, "next_cursor": {"type": ["string", "null"]}}}
PAGE_QUERY = {"cursor": "next_cursor of the previous page", "limit": f"1-{PAGE_MAX} (default {PAGE_DEFAULT})"}


def endpoints(api: FeedApi) -> list[Endpoint]:
    social = api.social
    public_cache = f"public, max-age={api.settings.public_max_age_s}"

    def limit(call: Call) -> int:
        return call.query_int("limit", PAGE_DEFAULT, minimum=1, maximum=PAGE_MAX)

    async def home(call: Call) -> Response:
        before = seq_position(api, "home", call.query_str("cursor", max_len=512), u=call.user)
        posts, last = await social.timelines.home(call.user, before, limit(call))
        cursor = None if last is None else api.cursors.encode("home", {"s": last, "u": call.user})
        return respond(call.request, page(await social.reader.views(posts), cursor))

    async def profile(call: Call) -> Response:
        author = call.path_id("user_id", "no such user")
        before = seq_position(api, "profile", call.query_str("cursor", max_len=512), a=author)
        size = limit(call)
        if await social.profiles.get(author) is None:
            raise ApiError("not_found", "no such user", 404)
        if call.viewer is not None and author in (await social.viewers.of(call.viewer)).blocked:
            raise ApiError("not_found", "no such user", 404)
        posts, last = await social.timelines.profile(call.viewer, author, before, size)
        cursor = None if last is None else api.cursors.encode("profile", {"s": last, "a": author})
        cache = public_cache if call.viewer is None else "no-store"
        return respond(call.request, page(await social.reader.views(posts), cursor), cache=cache,
                       headers={"Vary": "Authorization"})

    return [
        Endpoint("GET", "/api/v1/timelines/home", home, "My home timeline: posts of people I follow, and mine",
                 TAG, response=TIMELINE, errors=(400,), query=PAGE_QUERY),
        Endpoint("GET", "/api/v1/users/{user_id}/posts", profile, "A user's posts that I may see, newest first",
                 TAG, auth="optional", response=TIMELINE, errors=(400, 404), query=PAGE_QUERY),
    ]
