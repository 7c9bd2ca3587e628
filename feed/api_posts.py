"""Posts and comments over HTTP: ``/api/v1/posts*``, ``/api/v1/comments/*``.

* ``POST /posts`` publishes a text post at once (``body``, ``visibility``), or composes a media
  post on its upload's draft (``upload_id``, or ``post_id`` as ``POST /uploads/`` answered it in
  ``Amaro-Post-Id``): its body, visibility and kind. Compose right after creating the upload:
  the post is published when NARA-1r says its media is good enough, and until then only its
  author sees it, as ``processing``.
* ``GET /posts/{id}`` may be read without a token. A public, published post is the same for
  every reader: ``Cache-Control: public, max-age=<AMARO_FEED_PUBLIC_MAX_AGE>`` with an ETag (304
  on ``If-None-Match``) and ``Vary: Authorization``; anything else is ``no-store``.
* Edits (``PATCH``: body, visibility) and deletion are the author's: another user who may see the
  post gets 403 ``not_author``, anyone else 404 like an unknown id.
* Comments: ``GET`` oldest first with a cursor, ``POST`` on a published post the viewer may see
  (``parent_id``: a reply to a top-level comment), ``DELETE /comments/{id}`` by the comment's
  author or the post's author.

Refusals (every one changes nothing): 404 ``not_found``, 403 ``not_author``, 409 ``media_failed``
/ ``not_published``, 400 ``bad_cursor`` / ``invalid_json``, 413 ``body_too_large``, 415, 422
``invalid_field``, 429 ``rate_limited``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from feed.comments import MAX_COMMENT, comment_problem
from feed.content import MAX_BODY, body_problem
from feed.posts import VISIBILITIES
from feed.web import ApiError, Call, Endpoint, canonical_uuid, choice, invalid, no_content, page, respond, text

if TYPE_CHECKING:
    from feed.app import FeedApi

TAG = "posts"
PAGE_DEFAULT, PAGE_MAX = 20, 100
BODY_BYTES = 64 * 1024  # 5,000 code points of any script, JSON-escaped, fit
#: Writes per user: (name, limit, window in seconds).
POST_LIMIT = ("post", 300, 3600)
EDIT_LIMIT = ("post_edit", 600, 3600)
COMMENT_LIMIT = ("comment", 600, 3600)

_STR = {"type": "string"}
_ID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
_VISIBILITY = {"enum": list(VISIBILITIES)}
AUTHOR = {"type": "object", "required": ["id", "username", "display_name"],
          "properties": {"id": _ID, "username": _STR, "display_name": _STR}}
POST = {"type": "object",
        "required": ["id", "author", "kind", "state", "visibility", "body", "media_id", "comments_count", "reactions",
                     "created_at", "published_at", "edited_at"],
        "properties": {"id": _ID, "author": AUTHOR, "kind": {"enum": ["text", "image", "video"]},
                       "state": {"enum": ["processing", "published", "failed"],
                                 "description": "processing and failed are seen by the author only"},
                       "visibility": _VISIBILITY, "body": _STR,
                       "media_id": {"type": ["string", "null"], "description": "GET /api/v1/media/{media_id}"},
                       "comments_count": {"type": "integer", "minimum": 0},
                       "reactions": {"type": "object", "additionalProperties": {"type": "integer"}},
                       "created_at": _TIME, "published_at": _NULL_TIME, "edited_at": _NULL_TIME}}
NEW_POST = {"type": "object", "additionalProperties": False,
            "properties": {"body": {"type": "string", "maxLength": MAX_BODY}, "visibility": _VISIBILITY,
                           "upload_id": _ID, "post_id": _ID, "kind": {"enum": ["image", "video"]}},
            "description": "A text post: body (1+ characters). A media post: upload_id or post_id, and "
                           "optionally body, visibility, kind."}
EDIT = {"type": "object", "additionalProperties": False, "minProperties": 1,
        "properties": {"body": {"type": "string", "maxLength": MAX_BODY}, "visibility": _VISIBILITY}}
COMMENT = {"type": "object", "required": ["id", "post_id", "parent_id", "author", "body", "created_at"],
           "properties": {"id": _ID, "post_id": _ID, "parent_id": {"type": ["string", "null"]}, "author": AUTHOR,
                          "body": _STR, "created_at": _TIME}}
NEW_COMMENT = {"type": "object", "required": ["body"], "additionalProperties": False,
               "properties": {"body": {"type": "string", "minLength": 1, "maxLength": MAX_COMMENT},
                              "parent_id": _ID}}
COMMENTS = {"type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": COMMENT}, "next_cursor": {"type": ["string", "null"]}}}
PAGE_QUERY = {"cursor": "next_cursor of the previous page", "limit": f"1-{PAGE_MAX} (default {PAGE_DEFAULT})"}


def only_fields(data: dict[str, Any], allowed: frozenset[str]) -> None:
    for name in sorted(set(data) - allowed):
        raise invalid(name[:64], "is not a field here (" + ", ".join(sorted(allowed)) + ")")


def body_field(data: dict[str, Any], name: str, *, max_len: int, min_len: int) -> str:
    """A text field of posts and comments: no control characters but line breaks and tabs."""
    value = text(data, name, max_len=max_len, min_len=min_len)
    problem = comment_problem(value) if max_len == MAX_COMMENT else body_problem(value)
    if problem is not None:
        raise invalid(name, problem)
    return value


def id_field(data: dict[str, Any], name: str) -> str | None:
    if name not in data:
        return None
    value = data[name]
    found = canonical_uuid(value) if isinstance(value, str) else None
    if found is None:
        raise invalid(name, "must be an id (a lowercase UUID)")
    return found


def seq_position(api: FeedApi, kind: str, cursor: str, **bound: str) -> int | None:
    """The position a signed cursor of list ``kind`` holds, for the list ``bound`` names."""
    if not cursor:
        return None
    position = api.cursors.decode(kind, cursor)
    seq = position.get("s")
    if (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0
            or any(position.get(k) != v for k, v in bound.items())):
        raise ApiError("bad_cursor", "the cursor is not one this list gave", 400)
    return seq


async def limited(api: FeedApi, user: str, rule: tuple[str, int, int]) -> None:
    name, limit, window_s = rule
    if not await api.limits.hit(user, name, limit, window_s):
        raise ApiError("rate_limited", "too many changes; wait a while and try again", 429,
                       retry_after_s=min(window_s, 60))


def endpoints(api: FeedApi) -> list[Endpoint]:
    social = api.social
    public_cache = f"public, max-age={api.settings.public_max_age_s}"

    def post_id(call: Call) -> str:
        return call.path_id("post_id", "no such post")

    async def create(call: Call) -> Response:
        data = await call.json(BODY_BYTES)
        only_fields(data, frozenset({"body", "visibility", "upload_id", "post_id", "kind"}))
        upload, draft = id_field(data, "upload_id"), id_field(data, "post_id")
        if upload is None and draft is None:
            if "kind" in data:
                raise invalid("kind", "is for media posts (with upload_id or post_id)")
            body = body_field(data, "body", max_len=MAX_BODY, min_len=1)
            visibility = choice(data, "visibility", VISIBILITIES, default="public")
            await limited(api, call.user, POST_LIMIT)
            return respond(call.request, await social.posts.create_text(call.user, body, visibility), 201)
        if upload is not None and draft is not None:
            raise invalid("upload_id", "and post_id name the same post: send one of them")
        return await compose(call, data, upload, draft)

    async def compose(call: Call, data: dict[str, Any], upload: str | None, draft: str | None) -> Response:
        """A media post: what is not sent stays as it is (a draft is public until told)."""
        body = body_field(data, "body", max_len=MAX_BODY, min_len=0) if "body" in data else None
        visibility = choice(data, "visibility", VISIBILITIES) if "visibility" in data else None
        kind = choice(data, "kind", ("image", "video")) if "kind" in data else None
        await limited(api, call.user, POST_LIMIT)
        if upload is not None:
            draft = await api.media.post_of_upload(upload, call.user)
            if draft is None:
                raise ApiError("not_found", "no such upload", 404)
        assert draft is not None
        return respond(call.request, await social.posts.compose(call.user, draft, body, visibility, kind), 201)

    async def show(call: Call) -> Response:
        post, _ = await social.reader.visible(call.viewer, post_id(call))
        body = await social.reader.views([post])
        if not body:
            raise ApiError("not_found", "no such post", 404)
        public = post["visibility"] == "public" and post["state"] == "published" and not post.get("author_private")
        return respond(call.request, body[0], cache=public_cache if public else "no-store",
                       headers={"Vary": "Authorization"})

    async def edit(call: Call) -> Response:
        target = post_id(call)
        data = await call.json(BODY_BYTES)
        only_fields(data, frozenset({"body", "visibility"}))
        if not data:
            raise invalid("body", "or visibility is required")
        body = body_field(data, "body", max_len=MAX_BODY, min_len=0) if "body" in data else None
        visibility = choice(data, "visibility", VISIBILITIES) if "visibility" in data else None
        await limited(api, call.user, EDIT_LIMIT)
        return respond(call.request, await social.posts.edit(call.user, target, body, visibility))

    async def delete(call: Call) -> Response:
        target = post_id(call)
        await limited(api, call.user, EDIT_LIMIT)
        await social.posts.delete(call.user, target)
        return no_content()

    async def comments(call: Call) -> Response:
        target = post_id(call)
        after = seq_position(api, "comments", call.query_str("cursor", max_len=512), p=target) or 0
        limit = call.query_int("limit", PAGE_DEFAULT, minimum=1, maximum=PAGE_MAX)
        items, last = await social.comments.page(call.viewer, target, after, limit)
        cursor = None if last is None else api.cursors.encode("comments", {"s": last, "p": target})
        return respond(call.request, page(items, cursor))

    async def comment(call: Call) -> Response:
        target = post_id(call)
        data = await call.json(BODY_BYTES)
        only_fields(data, frozenset({"body", "parent_id"}))
        body = body_field(data, "body", max_len=MAX_COMMENT, min_len=1)
        parent = id_field(data, "parent_id")
        await limited(api, call.user, COMMENT_LIMIT)
        return respond(call.request, await social.comments.create(call.user, target, body, parent), 201)

    async def uncomment(call: Call) -> Response:
        target = call.path_id("comment_id", "no such comment")
        await limited(api, call.user, COMMENT_LIMIT)
        await social.comments.delete(call.user, target)
        return no_content()

    one = "/api/v1/posts/{post_id}"
    return [
        Endpoint("POST", "/api/v1/posts", create, "Publish a text post, or compose a media post on its upload", TAG,
                 request=NEW_POST, response=POST, status=201, errors=(400, 404, 409, 429)),
        Endpoint("GET", one, show, "A post (public posts may be read without a token and cached)", TAG,
                 auth="optional", response=POST, errors=(404,)),
        Endpoint("PATCH", one, edit, "Edit my post's body or visibility", TAG, request=EDIT, response=POST,
                 errors=(400, 403, 404, 429)),
        Endpoint("DELETE", one, delete, "Delete my post (its media leaves my quota)", TAG, status=204,
                 errors=(403, 404, 429)),
        Endpoint("GET", f"{one}/comments", comments, "A post's comments and replies, oldest first (next_cursor "
                 "continues after the last one, also at the end: ask again later for newer ones)", TAG,
                 auth="optional", response=COMMENTS, errors=(400, 404), query=PAGE_QUERY),
        Endpoint("POST", f"{one}/comments", comment, "Comment on a post, or reply to a top-level comment", TAG,
                 request=NEW_COMMENT, response=COMMENT, status=201, errors=(400, 404, 409, 429)),
        Endpoint("DELETE", "/api/v1/comments/{comment_id}", uncomment,
                 "Delete a comment (its author or the post's author)", TAG, status=204, errors=(403, 404, 429)),
    ]
