"""Delivery of NARA-1r outputs: signed, expiring prefix URLs, and the playback API.

Outputs live in the object store under immutable keys ``media/<upload id>/...``. The node serves
them at::

    /m/<expires>/<signature>/<upload id>/<rest of the key>

where the signature is an HMAC over ``expires`` and the key prefix ``media/<upload id>/``. One
signature therefore covers every object of a media item, and the relative URIs inside HLS
playlists (variant playlists, segments, the storyboard sprite) resolve under the same signed
prefix with no rewriting. Expiry times are rounded up to a bucket so that every viewer in the same
window gets the same URL (a CDN caches one copy, not one per viewer).

``GET /api/v1/media/<upload id>`` (Bearer access token) returns the media's state, plan and signed
URLs to viewers allowed to see its post (the feed decides: ``PostVisibility``); to anyone else it
answers 404, like an unknown id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from amaro.infra.web import JSONResponse, error_response
from media.config import PlaybackSettings
from media.errors import StoreError
from media.runtime import AccessTokens, MediaContext
from media.store import ObjectStore, RangeReader
from media.uploads import ENDINGS, UploadState
from protocol.errors import ErrorCode, ProtocolError

IMMUTABLE = "public, max-age=31536000, immutable"
GROWING = "no-cache"  # phase 1 EVENT playlist: revalidate every time (ETag makes that cheap)
BLOCK = 1024 * 1024
MAX_PLAYLIST_BYTES = 4 * 1024 * 1024
SIG_BYTES = 16
CONTENT_TYPES = {
    "m3u8": "application/vnd.apple.mpegurl", "ts": "video/mp2t", "m4s": "video/mp4", "mp4": "video/mp4",
    "jpg": "image/jpeg", "webp": "image/webp", "vtt": "text/vtt; charset=utf-8",
}
# One path segment of an output key: no dot first (no "..", no hidden files), no separators.
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_MAX_DEPTH = 4


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def canonical_uuid(text: str) -> str | None:
    """``text`` if it is a UUID in canonical lower-case form, else None (no aliases of one id)."""
    try:
        value = str(uuid.UUID(text))
    except (ValueError, TypeError):
        return None
    return value if value == text else None


@dataclass(frozen=True, slots=True)
class UrlSigner:
    """Signs and checks ``/m/`` prefix URLs. ``keys[0]`` signs; every key verifies (rotation)."""

    keys: tuple[bytes, ...]
    ttl_s: int = 6 * 3600
    bucket_s: int = 3600
    base: str = ""  # e.g. a CDN origin; empty: paths relative to the node

    @classmethod
    def from_settings(cls, settings: PlaybackSettings, token_secrets: tuple[str, ...] = ()) -> UrlSigner:
        """``settings.url_secret`` if set, else keys derived from the token secrets under a label of
        their own, so a media URL is never a token signature. Raises ``ValueError`` without any."""
        secrets = (settings.url_secret,) if settings.url_secret else token_secrets
        keys = tuple(hmac.new(s.encode(), b"amaro-media-url/v1", hashlib.sha256).digest() for s in secrets if s)
        if not keys:
            raise ValueError("a media URL secret or a token secret is required to sign media URLs")
        ttl = settings.url_ttl_s
        return cls(keys, ttl, max(60, min(3600, ttl // 6)), settings.url_base.rstrip("/"))

    @staticmethod
    def _message(expires: int, upload_id: str) -> bytes:
        return f"v1\n{expires}\nmedia/{upload_id}/".encode()

    def _sig(self, key: bytes, expires: int, upload_id: str) -> str:
        return _b64(hmac.new(key, self._message(expires, upload_id), hashlib.sha256).digest()[:SIG_BYTES])

    def expires(self, now: float | None = None) -> int:
        at = int(time.time() if now is None else now) + self.ttl_s
        return -(-at // self.bucket_s) * self.bucket_s

    def prefix(self, upload_id: str, expires: int) -> str:
        return f"{self.base}/m/{expires}/{self._sig(self.keys[0], expires, upload_id)}/{upload_id}/"

    def url(self, upload_id: str, key: str, expires: int) -> str:
        """The signed URL of object ``key`` (which must lie under ``media/<upload_id>/``)."""
        own = f"media/{upload_id}/"
        if not key.startswith(own):
            raise ValueError(f"{key!r} is not an output of {upload_id}")
        return self.prefix(upload_id, expires) + key[len(own):]

    def check(self, expires: int, signature: str, upload_id: str, now: float | None = None) -> str | None:
        """None if the URL is valid now, else an error code (``bad_signature``, ``url_expired``)."""
        if not any(hmac.compare_digest(self._sig(k, expires, upload_id), signature) for k in self.keys):
            return "bad_signature"
        if expires <= int(time.time() if now is None else now):
            return "url_expired"
        return None


def _not_found() -> JSONResponse:
    return error_response("not_found", "no such media", 404)


# --- objects -------------------------------------------------------------------------------------


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """A single ``bytes=`` range as ``[start, end)``; None to serve the whole object (absent or
    multi-range); "unsatisfiable" for a range outside the object."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return "unsatisfiable"
    return start, min(end, size)


async def _ranged(store: ObjectStore, key: str, start: int, end: int) -> AsyncIterator[bytes]:
    if isinstance(store, RangeReader):
        pos = start
        while pos < end:
            block = await store.read_range(key, pos, min(end, pos + BLOCK))
            if not block:
                return
            pos += len(block)
            yield block
        return
    pos = 0
    async for block in store.stream(key, block_size=BLOCK):
        lo, hi = max(start - pos, 0), min(end - pos, len(block))
        if lo < hi:
            yield block[lo:hi]
        pos += len(block)
        if pos >= end:
            return


def _playlist_cache(text: str) -> str:
    # A master playlist is written once, last; a media playlist that ended never changes again.
    # Only phase 1's EVENT playlist grows, and players reload it every target duration.
    if "#EXT-X-STREAM-INF" in text or "#EXT-X-ENDLIST" in text:
        return IMMUTABLE
    return GROWING


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match", "")
    return header.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in header.split(",")]


def object_route(store: ObjectStore, urls: UrlSigner) -> Route:
    async def serve(request: Request) -> Response:
        p = request.path_params
        expires_s, signature, upload_id, rest = p["expires"], p["signature"], p["upload_id"], p["rest"]
        if not (expires_s.isdigit() and len(expires_s) <= 12) or canonical_uuid(upload_id) is None:
            return error_response("bad_signature", "malformed media URL", 403)
        problem = urls.check(int(expires_s), signature, upload_id)
        if problem == "url_expired":
            return error_response(problem, "this media URL has expired; ask the playback API again", 403)
        if problem is not None:
            return error_response(problem, "invalid media URL signature", 403)
        parts = rest.split("/")
        ext = parts[-1].rpartition(".")[2] if "." in parts[-1] else ""
        if len(parts) > _MAX_DEPTH or not all(_SEGMENT.match(s) for s in parts) or ext not in CONTENT_TYPES:
            return _not_found()
        key = f"media/{upload_id}/{rest}"
        head = request.method == "HEAD"
        base = {"Content-Type": CONTENT_TYPES[ext], "X-Content-Type-Options": "nosniff",
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag"}
        try:
            if ext == "m3u8":
                size = await store.size(key)
                if size is None:
                    return _not_found()
                if size > MAX_PLAYLIST_BYTES:
                    return error_response("too_large", "playlist too large", 500)
                body = await store.get(key)
                etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
                headers = {**base, "ETag": etag,
                           "Cache-Control": _playlist_cache(body.decode("utf-8", "replace"))}
                if _etag_matches(request, etag):
                    return Response(status_code=304, headers=headers)
                return Response(b"" if head else body, headers={**headers, "Content-Length": str(len(body))})
            size = await store.size(key)
        except StoreError as exc:
            if exc.code in ("not_found", "invalid_key"):
                return _not_found()
            raise
        if size is None:
            return _not_found()
        # Keys are immutable: the key and its size identify the content.
        etag = '"' + hashlib.sha256(f"{key}\n{size}".encode()).hexdigest()[:32] + '"'
        headers = {**base, "ETag": etag, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
        if _etag_matches(request, etag):
            return Response(status_code=304, headers=headers)
        wanted = _parse_range(request.headers.get("range", ""), size)
        if_range = request.headers.get("if-range")
        if if_range is not None and if_range.strip() != etag:
            wanted = None  # the client's copy is another version: send the whole object
        if wanted == "unsatisfiable":
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        if isinstance(wanted, tuple):
            start, end = wanted
            headers |= {"Content-Range": f"bytes {start}-{end - 1}/{size}", "Content-Length": str(end - start)}
            if head:
                return Response(status_code=206, headers=headers)
            return StreamingResponse(_ranged(store, key, start, end), status_code=206, headers=headers)
        headers["Content-Length"] = str(size)
        if head:
            return Response(headers=headers)
        return StreamingResponse(store.stream(key, block_size=BLOCK), headers=headers)

    return Route("/m/{expires}/{signature}/{upload_id}/{rest:path}", serve, methods=["GET", "HEAD"])


# --- playback API --------------------------------------------------------------------------------

_MEDIA = """
SELECT m.id::text AS id, m.owner_id::text AS owner_id, m.post_id::text AS post_id, m.kind, m.state,
       m.failure_reason, m.failure_detail, m.probe::text AS probe, m.plan_id, m.plan::text AS plan,
       m.fast_playlist, m.fast_complete, m.poster, m.placeholder, m.master_playlist,
       m.renditions::text AS renditions, m.variants::text AS variants, m.preview,
       m.storyboard_sprite, m.storyboard_vtt, m.created_at, m.good_enough_at, m.upgraded_at
FROM media m WHERE m.id = $1
"""
_UPLOAD = """
SELECT u.state, u.post_id::text AS post_id, u.content_type FROM media_uploads u
WHERE u.id = $1 AND u.user_id = $2
"""


PLAYABLE = ("good_enough", "upgraded")


class PostVisibility(Protocol):
    async def can_see_post(self, user: str, post_id: str) -> bool:
        """Whether ``user`` may see the post (the feed's rule: its author, else published and
        visible to them)."""
        ...


async def may_view(row: Mapping[str, Any], viewer: str, posts: PostVisibility) -> bool:
    """The owner always; others only playable media of a post they may see."""
    if row["owner_id"] == viewer:
        return True
    if row["state"] not in PLAYABLE or not row["post_id"]:
        return False
    return await posts.can_see_post(viewer, row["post_id"])


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _loads(text: str | None, default: Any) -> Any:
    return orjson.loads(text) if text else default


def playback_body(row: Mapping[str, Any], urls: UrlSigner, viewer: str, now: float | None = None) -> dict[str, Any]:
    upload_id: str = row["id"]
    expires = urls.expires(now)

    def sign(key: object) -> str | None:
        if not isinstance(key, str) or not key.startswith(f"media/{upload_id}/"):
            return None
        return urls.url(upload_id, key, expires)

    plan = _loads(row["plan"], None)
    renditions = [
        {**{k: v for k, v in r.items() if k != "playlist"}, "url": sign(r.get("playlist"))}
        for r in _loads(row["renditions"], []) if isinstance(r, dict)
    ]
    variants = [
        {"width": v.get("width"), "webp": sign(v.get("webp")), "jpeg": sign(v.get("jpeg"))}
        for v in _loads(row["variants"], []) if isinstance(v, dict)
    ]
    probe = _loads(row["probe"], {})
    master, fast = sign(row["master_playlist"]), sign(row["fast_playlist"])
    failure = None
    if row["state"] == "failed":
        failure = {"reason": row["failure_reason"],
                   "detail": row["failure_detail"] if row["owner_id"] == viewer else None}
    return {
        "id": upload_id, "post_id": row["post_id"], "owner_id": row["owner_id"], "kind": row["kind"],
        "state": row["state"], "failure": failure,
        "width": probe.get("width"), "height": probe.get("height"), "duration_s": probe.get("duration_s"),
        "plan_id": row["plan_id"], "plan": plan, "reasons": (plan or {}).get("reasons", []),
        "renditions": renditions, "variants": variants, "placeholder": row["placeholder"],
        "urls": {
            # What a player should open: the ladder once upgraded, else the growing fast rendition.
            "playlist": master or fast, "master": master, "fast": fast, "fast_complete": row["fast_complete"],
            "poster": sign(row["poster"]), "preview": sign(row["preview"]),
            "storyboard": {"vtt": sign(row["storyboard_vtt"]), "sprite": sign(row["storyboard_sprite"])},
        },
        "expires_at": expires,
        "created_at": _iso(row["created_at"]), "good_enough_at": _iso(row["good_enough_at"]),
        "upgraded_at": _iso(row["upgraded_at"]),
    }


def media_api_route(db: asyncpg.Pool, tokens: AccessTokens, urls: UrlSigner, posts: PostVisibility) -> Route:
    async def get_media(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return error_response("unauthorized", "send Authorization: Bearer <access token>", 401)
        try:
            viewer = tokens.user_of(token.strip())
        except ProtocolError as exc:
            if exc.code is ErrorCode.TOKEN_EXPIRED:
                return error_response("token_expired", "access token expired; refresh it", 401)
            return error_response("unauthorized", "invalid access token", 401)
        upload_id = canonical_uuid(request.path_params["upload_id"])
        viewer_id = canonical_uuid(viewer)
        if upload_id is None or viewer_id is None:
            return _not_found()
        found = await db.fetchrow(_MEDIA, uuid.UUID(upload_id))
        if found is None:
            # Not yet picked up by a worker: its owner learns it is on its way, nobody else anything.
            upload = await db.fetchrow(_UPLOAD, uuid.UUID(upload_id), uuid.UUID(viewer_id))
            if upload is None or upload["state"] in ENDINGS:
                return _not_found()
            kind = "image" if str(upload["content_type"] or "").startswith("image/") else "video"
            return JSONResponse({"id": upload_id, "post_id": upload["post_id"], "owner_id": viewer_id,
                                 "kind": kind, "state": "uploading" if upload["state"] == UploadState.UPLOADING
                                 else "processing", "urls": {}},
                                headers={"Cache-Control": "private, no-store"})
        row = dict(found)
        if not await may_view(row, viewer_id, posts):
            return _not_found()
        return JSONResponse(playback_body(row, urls, viewer_id), headers={"Cache-Control": "private, no-store"})

    return Route("/api/v1/media/{upload_id}", get_media, methods=["GET"])


def playback_routes(ctx: MediaContext, urls: UrlSigner, posts: PostVisibility) -> list[BaseRoute]:
    """The node's delivery routes: ``/m/...`` objects and ``/api/v1/media/<id>``."""
    return [object_route(ctx.store, urls), media_api_route(ctx.db, ctx.tokens, urls, posts)]


def playback_openapi() -> dict[str, Any]:
    """The OpenAPI path of ``GET /api/v1/media/<upload id>`` (the root merges it into the API's):
    the body ``playback_body`` answers, key for key (a test compares them)."""
    url = {"type": ["string", "null"], "description": "a signed, expiring /m/ URL"}
    text, number, time = {"type": ["string", "null"]}, {"type": ["number", "null"]}, {"type": ["string", "null"],
                                                                                        "format": "date-time"}
    listed = {"type": "array", "items": {"type": "object"}}
    urls = {"type": "object", "properties": {
        "playlist": {**url, "description": "what a player opens: the ladder once upgraded, else the fast rendition"},
        "master": url, "fast": url, "fast_complete": {"type": ["boolean", "null"]}, "poster": url, "preview": url,
        "storyboard": {"type": "object", "properties": {"vtt": url, "sprite": url}}}}
    body = {"type": "object", "required": ["id", "state", "urls"], "properties": {
        "id": {"type": "string"}, "post_id": text, "owner_id": {"type": "string"}, "kind": text,
        "state": {"enum": ["uploading", "processing", "good_enough", "upgraded", "failed"]},
        "failure": {"type": ["object", "null"], "properties": {"reason": text, "detail": text}},
        "width": number, "height": number, "duration_s": number, "plan_id": text,
        "plan": {"type": ["object", "null"]}, "reasons": {"type": "array"}, "renditions": listed,
        "variants": listed, "placeholder": {**text, "description": "a tiny data: URL image"}, "urls": urls,
        "expires_at": {"type": "number", "description": "when the URLs expire, Unix seconds"},
        "created_at": time, "good_enough_at": time, "upgraded_at": time}}
    return {"/api/v1/media/{upload_id}": {"get": {
        "summary": "A media item's state, plan and signed URLs", "tags": ["media"],
        "operationId": "get_media_upload_id", "security": [{"bearer": []}],
        "parameters": [{"name": "upload_id", "in": "path", "required": True,
                        "schema": {"type": "string", "format": "uuid"}}],
        "responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": body}}},
            "401": {"description": "not authenticated"},
            "404": {"description": "not found, or not visible to the viewer"}}}}}
