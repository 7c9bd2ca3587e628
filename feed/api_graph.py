"""Profiles, follows, follow requests and blocks over HTTP: ``/api/v1/me*`` and ``/api/v1/users/*``.

Who sees what:

* A profile (``GET /users/{id}``, ``/users/by-name/{username}``) is public, anonymous readers
  included, except to a user the account blocked: to them it is unknown (404 ``not_found``, as
  for an id that names nobody). A profile holds nothing viewer-specific, so an anonymous answer
  carries ``Cache-Control: public, max-age=<AMARO_FEED_PUBLIC_MAX_AGE>`` (with ``Vary:
  Authorization``, so a shared cache never hands it to a signed-in reader, whose answer depends
  on blocks); a signed-in reader's answer is ``private, no-cache`` (kept only by their own client,
  revalidated by ETag). ``/me`` and everything else here is ``no-store``.
* The followers and following lists of a private account are for its followers and itself (403
  ``private_account`` for others); a list never shows anyone a block stands between with the viewer.
* ``/users/{id}/relationship`` is the viewer's side of things. A user who blocked the viewer is
  404 there too: a block is never revealed to the blocked.

Refusals (every one changes nothing): 404 ``not_found`` (unknown, disabled, or blocking the viewer;
also any id that is not a lowercase UUID, and a username that cannot be one), 422
``cannot_follow_self`` / ``cannot_block_self``, 403 ``blocking`` (following a user the viewer
blocks), 403 ``private_account``, 400 ``bad_cursor``, 422 ``invalid_field``, 413, 415, 429
``rate_limited``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from feed.accounts import MAX_DISPLAY_NAME
from feed.graph import BLOCKS, FOLLOWERS, FOLLOWING_LIST, REQUESTS, Graph, Listing, list_page
from feed.profiles import MAX_BIO, Profiles, bio_problem, display_name_problem
from feed.rooms import Rooms
from feed.web import ApiError, Call, Endpoint, flag, invalid, no_content, not_found, page, respond, text

if TYPE_CHECKING:
    from feed.app import FeedApi

TAG = "graph"
PAGE_DEFAULT, PAGE_MAX = 20, 100
#: Writes per user: (name, limit, window in seconds).
FOLLOW_LIMIT = ("follow", 400, 3600)
ANSWER_LIMIT = ("follow_request", 1000, 3600)
BLOCK_LIMIT = ("block", 200, 3600)
PROFILE_LIMIT = ("profile", 60, 3600)
PROFILE_FIELDS = frozenset({"display_name", "bio", "private"})

_STR = {"type": "string"}
_ID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_COUNT = {"type": "integer", "minimum": 0}
SMALL = {"type": "object", "required": ["id", "username", "display_name"],
         "properties": {"id": _ID, "username": _STR, "display_name": _STR}}
PROFILE = {"type": "object",
           "required": ["id", "username", "display_name", "bio", "private", "followers_count", "following_count",
                        "posts_count", "created_at"],
           "properties": {"id": _ID, "username": _STR, "display_name": _STR, "bio": _STR,
                          "private": {"type": "boolean"}, "followers_count": _COUNT, "following_count": _COUNT,
                          "posts_count": _COUNT, "created_at": _TIME}}
PROFILE_PATCH = {"type": "object", "additionalProperties": False,
                 "properties": {"display_name": {"type": "string", "minLength": 1, "maxLength": MAX_DISPLAY_NAME},
                                "bio": {"type": "string", "maxLength": MAX_BIO},
                                "private": {"type": "boolean"}}}
RELATIONSHIP = {"type": "object", "required": ["following", "followed_by", "requested", "requested_by", "blocked"],
                "properties": {"following": {"type": "boolean"}, "followed_by": {"type": "boolean"},
                               "requested": {"type": "boolean", "description": "the viewer asked to follow"},
                               "requested_by": {"type": "boolean", "description": "they asked to follow the viewer"},
                               "blocked": {"type": "boolean", "description": "the viewer blocks them"}}}
FOLLOW_STATE = {"type": "object", "required": ["state"],
                "properties": {"state": {"enum": ["following", "requested", "none"]}}}
LIST_QUERY = {"cursor": "next_cursor of the previous page", "limit": f"1-{PAGE_MAX} (default {PAGE_DEFAULT})"}


def list_schema(at: str) -> dict[str, Any]:
    item = {"type": "object", "required": ["user", at], "properties": {"user": SMALL, at: _TIME}}
    return {"type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": item},
                           "next_cursor": {"type": ["string", "null"]}}}


def endpoints(api: FeedApi) -> list[Endpoint]:
    profiles = Profiles(api.db, api.caches.profiles)
    # A block also closes the pair's direct room (rooms.py) and changes what each may read (social.py).
    graph = Graph(api.db, profiles, api.events, after_block=[Rooms(api.db, api.events).blocked, api.social.blocked])
    public_cache = f"public, max-age={api.settings.public_max_age_s}"

    async def limited(call: Call, rule: tuple[str, int, int]) -> None:
        name, limit, window_s = rule
        if not await api.limits.hit(call.user, name, limit, window_s):
            raise ApiError("rate_limited", "too many changes; wait a while and try again", 429,
                           retry_after_s=min(window_s, 60))

    async def visible(call: Call, user_id: str) -> dict[str, Any]:
        """The profile of ``user_id`` as the viewer may see it; 404 when they may not."""
        profile = await profiles.get(user_id)
        if profile is None:
            raise not_found("no such user")
        if call.viewer is not None and (await graph.blocks_between(call.viewer, user_id))[1]:
            raise not_found("no such user")
        return profile

    def profile_response(call: Call, profile: dict[str, Any]) -> Response:
        cache = public_cache if call.viewer is None else "private, no-cache"
        return respond(call.request, profile, cache=cache, headers={"Vary": "Authorization"})

    def target(call: Call) -> str:
        return call.path_id("user_id", "no such user")

    async def me(call: Call) -> Response:
        profile = await profiles.get(call.user)
        if profile is None:
            raise not_found("no such user")
        return respond(call.request, profile)

    async def edit_me(call: Call) -> Response:
        data = await call.json()
        unknown = sorted(set(data) - PROFILE_FIELDS)
        if unknown:
            raise invalid(unknown[0][:64], "is not a field of a profile (display_name, bio, private)")
        display_name = bio = None
        if "display_name" in data:
            display_name = text(data, "display_name", max_len=MAX_DISPLAY_NAME, min_len=1)
            if (problem := display_name_problem(display_name)) is not None:
                raise invalid("display_name", problem)
        if "bio" in data:
            bio = text(data, "bio", max_len=MAX_BIO)
            if (problem := bio_problem(bio)) is not None:
                raise invalid("bio", problem)
        private = flag(data, "private") if "private" in data else None
        await limited(call, PROFILE_LIMIT)
        current = await profiles.get(call.user)
        if current is None:
            raise not_found("no such user")
        await profiles.update(call.user, display_name=display_name, bio=bio)
        if private is not None and private != current["private"]:
            await graph.set_private(call.user, private)
            await api.social.privacy_changed(call.user)
        return respond(call.request, await profiles.get(call.user))

    async def user(call: Call) -> Response:
        return profile_response(call, await visible(call, target(call)))

    async def by_name(call: Call) -> Response:
        found = await profiles.by_username(str(call.request.path_params.get("username", "")))
        if found is None:
            raise not_found("no such user")
        return profile_response(call, await visible(call, found["id"]))

    async def relationship(call: Call) -> Response:
        other = target(call)
        await visible(call, other)
        facts = await graph.relationship(call.user, other)
        facts.pop("blocked_by")  # always False here: visible() answered 404 otherwise
        return respond(call.request, facts)

    async def follow(call: Call) -> Response:
        other = target(call)
        await limited(call, FOLLOW_LIMIT)
        state = await graph.follow(call.user, other)
        if state == "following":
            await api.social.follow_changed(call.user, other)
        return respond(call.request, {"state": state})

    async def unfollow(call: Call) -> Response:
        other = target(call)
        await limited(call, FOLLOW_LIMIT)
        await graph.unfollow(call.user, other)
        await api.social.follow_changed(call.user, other)
        return respond(call.request, {"state": "none"})

    async def listing(call: Call, which: Listing, owner: str, viewer: str | None) -> Response:
        items, next_cursor = await list_page(
            api.db, api.cursors, which, owner, viewer=viewer, cursor=call.query_str("cursor", max_len=512),
            limit=call.query_int("limit", PAGE_DEFAULT, minimum=1, maximum=PAGE_MAX))
        return respond(call.request, page(items, next_cursor))

    async def user_list(call: Call, which: Listing) -> Response:
        owner = target(call)
        profile = await visible(call, owner)
        if profile["private"] and call.viewer != owner and (
                call.viewer is None or not await graph.follows(call.viewer, owner)):
            raise ApiError("private_account", "this account is private: only its followers see its lists", 403)
        return await listing(call, which, owner, call.viewer)

    async def followers(call: Call) -> Response:
        return await user_list(call, FOLLOWERS)

    async def following(call: Call) -> Response:
        return await user_list(call, FOLLOWING_LIST)

    async def requests(call: Call) -> Response:
        return await listing(call, REQUESTS, call.user, None)

    async def answer(call: Call, accept: bool) -> Response:
        requester = target(call)
        await limited(call, ANSWER_LIMIT)
        await graph.answer_request(call.user, requester, accept=accept)
        if accept:
            await api.social.follow_changed(requester, call.user)
        return no_content()

    async def accept(call: Call) -> Response:
        return await answer(call, True)

    async def decline(call: Call) -> Response:
        return await answer(call, False)

    async def block(call: Call) -> Response:
        other = target(call)
        await limited(call, BLOCK_LIMIT)
        await graph.block(call.user, other)
        return no_content()

    async def unblock(call: Call) -> Response:
        other = target(call)
        await limited(call, BLOCK_LIMIT)
        await graph.unblock(call.user, other)
        return no_content()

    async def blocks(call: Call) -> Response:
        # No block filter here: every row of this list is one.
        return await listing(call, BLOCKS, call.user, None)

    users = "/api/v1/users/{user_id}"
    requests_path = "/api/v1/me/follow-requests"
    return [
        Endpoint("GET", "/api/v1/me", me, "My profile", TAG, response=PROFILE, errors=(404,)),
        Endpoint("PATCH", "/api/v1/me", edit_me, "Edit my profile (display name, bio, private account)", TAG,
                 request=PROFILE_PATCH, response=PROFILE, errors=(404, 429)),
        # Before ``/users/{user_id}/...``: a username such as "follow" must reach this route.
        Endpoint("GET", "/api/v1/users/by-name/{username}", by_name, "A user's profile by username", TAG,
                 auth="optional", response=PROFILE, errors=(404,)),
        Endpoint("GET", users, user, "A user's profile", TAG, auth="optional", response=PROFILE, errors=(404,)),
        Endpoint("GET", f"{users}/relationship", relationship, "How I relate to a user", TAG,
                 response=RELATIONSHIP, errors=(404,)),
        Endpoint("POST", f"{users}/follow", follow, "Follow a user (a private account: ask to)", TAG,
                 response=FOLLOW_STATE, errors=(403, 404, 422, 429)),
        Endpoint("DELETE", f"{users}/follow", unfollow, "Unfollow a user, or withdraw my follow request", TAG,
                 response=FOLLOW_STATE, errors=(404, 422, 429)),
        Endpoint("GET", f"{users}/followers", followers, "A user's followers, newest first", TAG, auth="optional",
                 response=list_schema("followed_at"), errors=(400, 403, 404, 422), query=LIST_QUERY),
        Endpoint("GET", f"{users}/following", following, "Whom a user follows, newest first", TAG,
                 auth="optional", response=list_schema("followed_at"), errors=(400, 403, 404, 422),
                 query=LIST_QUERY),
        Endpoint("GET", requests_path, requests, "Follow requests waiting for me, newest first", TAG,
                 response=list_schema("requested_at"), errors=(400, 422), query=LIST_QUERY),
        Endpoint("POST", requests_path + "/{user_id}/accept", accept, "Accept a follow request", TAG,
                 status=204, errors=(404, 429)),
        Endpoint("POST", requests_path + "/{user_id}/decline", decline, "Decline a follow request", TAG,
                 status=204, errors=(404, 429)),
        Endpoint("POST", f"{users}/block", block, "Block a user", TAG, status=204, errors=(404, 422, 429)),
        Endpoint("DELETE", f"{users}/block", unblock, "Unblock a user", TAG, status=204, errors=(404, 422, 429)),
        Endpoint("GET", "/api/v1/me/blocks", blocks, "Users I block, newest first", TAG,
                 response=list_schema("blocked_at"), errors=(400, 422), query=LIST_QUERY),
    ]
