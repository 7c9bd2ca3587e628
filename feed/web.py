"""The feed's HTTP plumbing: every endpoint of ``/api/v1`` is an ``Endpoint`` (method, path,
handler, and what OpenAPI says of it), so the routes and the OpenAPI document are one list.

Handlers take a ``Call`` (the request, the authenticated viewer, typed readers of the path, the
query and the JSON body) and return a ``Response``; they raise ``ApiError`` for anything the client
got wrong, which becomes the one error body of every API here,
``{"error": {"code": "<stable code>", "message": "<human text>"}}``. Input is checked before
anything changes: sizes, types, UUIDs in their canonical spelling, and no NUL bytes anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgpack
import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from amaro.infra.web import JSONResponse, error_response
from protocol.errors import ErrorCode, ProtocolError

log = structlog.get_logger(__name__)

MAX_BODY = 16 * 1024
PRIVATE = "no-store"


class ApiError(Exception):
    """A refusal the client can act on: ``status``, a stable ``code`` and a human ``message``."""

    def __init__(self, code: str, message: str, status: int = 400, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s


def not_found(what: str = "no such thing") -> ApiError:
    return ApiError("not_found", what, 404)


def invalid(name: str, rule: str) -> ApiError:
    return ApiError("invalid_field", f"'{name}' {rule}", 422)


class AccessTokens(Protocol):
    def user_of(self, token: str) -> str:
        """The user a valid access token names; raises ``ProtocolError`` (TOKEN_*) otherwise."""
        ...


def canonical_uuid(text: str) -> str | None:
    """``text`` if it is a UUID in its canonical lower-case spelling, else None."""
    try:
        value = str(uuid.UUID(text))
    except (ValueError, TypeError, AttributeError):
        return None
    return value if value == text else None


def _no_nul(name: str, value: str) -> str:
    if "\x00" in value:
        raise invalid(name, "must not contain NUL characters")
    return value


@dataclass
class Call:
    """One request to an endpoint, with the viewer it was authenticated as (None: anonymous)."""

    request: Request
    viewer: str | None
    _body: dict[str, Any] | None = None

    @property
    def user(self) -> str:
        """The viewer of an endpoint that requires authentication."""
        assert self.viewer is not None
        return self.viewer

    def path_id(self, name: str, what: str = "no such thing") -> str:
        """A path parameter that must be a canonical UUID; anything else names nothing (404)."""
        found = canonical_uuid(str(self.request.path_params.get(name, "")))
        if found is None:
            raise not_found(what)
        return found

    def query_int(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        raw = self.request.query_params.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isascii() or not raw.isdigit() or not minimum <= int(raw) <= maximum:
            raise invalid(name, f"must be an integer from {minimum} to {maximum}")
        return int(raw)

    def query_str(self, name: str, default: str = "", *, max_len: int = 512) -> str:
        raw = self.request.query_params.get(name, default)
        if len(raw) > max_len:
            raise invalid(name, f"must be at most {max_len} characters")
        return _no_nul(name, raw)

    async def json(self, max_bytes: int = MAX_BODY) -> dict[str, Any]:
        """The JSON object body, its size capped before it is parsed."""
        if self._body is None:
            self._body = await read_json_object(self.request, max_bytes)
        return self._body


async def read_json_object(request: Request, max_bytes: int = MAX_BODY) -> dict[str, Any]:
    if "application/json" not in request.headers.get("content-type", ""):
        raise ApiError("unsupported_media_type", "send a JSON body with Content-Type: application/json", 415)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isascii() or not declared.isdigit() or int(declared) > max_bytes):
        raise ApiError("body_too_large", f"body must be at most {max_bytes} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError("body_too_large", f"body must be at most {max_bytes} bytes", 413)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError("invalid_json", "body is not valid JSON", 400) from None
    if not isinstance(data, dict):
        raise ApiError("invalid_json", "body must be a JSON object", 400)
    return data


# -- fields of a JSON body --------------------------------------------------------------------------

_MISSING: Any = object()


def text(data: Mapping[str, Any], name: str, *, max_len: int, min_len: int = 0, default: Any = _MISSING,
         strip: bool = True) -> str:
    """A string field of at most ``max_len`` code points (``min_len`` at least, after stripping)."""
    value = data.get(name, default)
    if value is _MISSING:
        raise invalid(name, "is required")
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    value = _no_nul(name, value.strip() if strip else value)
    if not min_len <= len(value) <= max_len:
        raise invalid(name, f"must be {min_len} to {max_len} characters")
    return value


def flag(data: Mapping[str, Any], name: str, default: Any = _MISSING) -> bool:
    value = data.get(name, default)
    if value is _MISSING:
        raise invalid(name, "is required")
    if not isinstance(value, bool):
        raise invalid(name, "must be true or false")
    return value


def choice(data: Mapping[str, Any], name: str, options: Sequence[str], default: Any = _MISSING) -> str:
    value = data.get(name, default)
    if value is _MISSING:
        raise invalid(name, "is required")
    if value not in options:
        raise invalid(name, "must be one of " + ", ".join(options))
    return str(value)


def user_id(data: Mapping[str, Any], name: str, default: Any = _MISSING) -> str:
    value = data.get(name, default)
    if value is _MISSING:
        raise invalid(name, "is required")
    found = canonical_uuid(value) if isinstance(value, str) else None
    if found is None:
        raise invalid(name, "must be an id (a lowercase UUID)")
    return found


def user_ids(data: Mapping[str, Any], name: str, *, max_items: int, default: Any = _MISSING) -> list[str]:
    value = data.get(name, default)
    if value is _MISSING:
        raise invalid(name, "is required")
    if not isinstance(value, list) or len(value) > max_items:
        raise invalid(name, f"must be a list of at most {max_items} ids")
    out: list[str] = []
    for item in value:
        found = canonical_uuid(item) if isinstance(item, str) else None
        if found is None:
            raise invalid(name, "must hold ids (lowercase UUIDs)")
        if found not in out:
            out.append(found)
    return out


# -- cursors ----------------------------------------------------------------------------------------


class Cursors:
    """Opaque, signed page cursors: a client can only hand back what a page gave it. A cursor
    that does not verify (forged, truncated, from another list) is ``bad_cursor`` (400)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, kind: str, body: bytes) -> bytes:
        return hmac.new(self._key, kind.encode() + b"\x00" + body, hashlib.sha256).digest()[:12]

    def encode(self, kind: str, position: Mapping[str, Any]) -> str:
        body = msgpack.packb(dict(position))
        return base64.urlsafe_b64encode(self._mac(kind, body) + body).rstrip(b"=").decode()

    def decode(self, kind: str, cursor: str) -> dict[str, Any]:
        if not cursor:
            return {}
        try:
            raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise ApiError("bad_cursor", "the cursor is not one this list gave", 400) from None
        mac, body = raw[:12], raw[12:]
        if len(raw) <= 12 or not hmac.compare_digest(mac, self._mac(kind, body)):
            raise ApiError("bad_cursor", "the cursor is not one this list gave", 400)
        position = msgpack.unpackb(body)
        if not isinstance(position, dict):
            raise ApiError("bad_cursor", "the cursor is not one this list gave", 400)
        return position


def page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    """The shape of every list answer."""
    return {"items": items, "next_cursor": next_cursor}


# -- responses --------------------------------------------------------------------------------------


def respond(request: Request, body: Any, status: int = 200, *, cache: str = PRIVATE,
            headers: Mapping[str, str] | None = None) -> Response:
    """``body`` as JSON with an ETag; a matching ``If-None-Match`` gets 304 and no body.
    ``cache`` is the ``Cache-Control`` (default: private, not stored)."""
    content = orjson.dumps(body)
    etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    out = {"Cache-Control": cache, "ETag": etag, **(headers or {})}
    if status == 200 and request.method in ("GET", "HEAD"):
        wanted = request.headers.get("if-none-match", "")
        if wanted.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in wanted.split(",")]:
            return Response(status_code=304, headers=out)
    return Response(content, status_code=status, media_type="application/json", headers=out)


def no_content() -> Response:
    return Response(status_code=204, headers={"Cache-Control": PRIVATE})


# -- endpoints and their OpenAPI --------------------------------------------------------------------

Handler = Callable[[Call], Awaitable[Response]]
Auth = Literal["required", "optional", "none"]


@dataclass(frozen=True)
class Endpoint:
    """One operation of the API. ``request``/``response`` are JSON Schemas (OpenAPI 3.1) of the
    body; ``errors`` the statuses it may answer besides 401 and the generic ones."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: Auth = "required"
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    query: Mapping[str, str] = field(default_factory=dict)  # name -> description

    def route(self, tokens: AccessTokens) -> Route:
        async def serve(request: Request) -> Response:
            try:
                viewer = authenticate(request, tokens, self.auth)
                return await self.handler(Call(request, viewer))
            except ApiError as exc:
                return error_response(exc.code, exc.message, exc.status, retry_after_s=exc.retry_after_s)

        name = f"{self.method.lower()} {self.path}"
        return Route(self.path, serve, methods=[self.method], name=name)


def authenticate(request: Request, tokens: AccessTokens, auth: Auth) -> str | None:
    if auth == "none":
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        if auth == "optional" and not header:
            return None
        raise ApiError("unauthorized", "send Authorization: Bearer <access token>", 401)
    try:
        return tokens.user_of(token.strip())
    except ProtocolError as exc:
        if exc.code is ErrorCode.TOKEN_EXPIRED:
            raise ApiError("token_expired", "access token expired; refresh it", 401) from None
        raise ApiError("unauthorized", "invalid access token", 401) from None


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
}
_STATUS_TEXT = {400: "bad request", 401: "not authenticated", 403: "not allowed", 404: "not found",
                409: "conflict", 413: "body too large", 415: "not JSON", 422: "invalid field",
                429: "rate limited", 503: "unavailable"}


def openapi_paths(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    """The ``paths`` object of an OpenAPI 3.1 document for ``endpoints``."""
    paths: dict[str, Any] = {}
    for e in endpoints:
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": "ok"}
        if e.response is not None:
            ok["content"] = {"application/json": {"schema": e.response}}
        responses[str(e.status)] = ok
        codes = set(e.errors) | ({401} if e.auth == "required" else set())
        if e.request is not None:
            codes |= {413, 415, 422}
        for code in sorted(codes):
            responses[str(code)] = {"description": _STATUS_TEXT.get(code, "error"),
                                    "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        op: dict[str, Any] = {"summary": e.summary, "tags": [e.tag], "operationId": _operation_id(e),
                              "responses": responses}
        params = [{"name": p, "in": "path", "required": True,
                   "schema": {"type": "string", "format": "uuid"} if p.endswith("id") else {"type": "string"}}
                  for p in _path_params(e.path)]
        params += [{"name": q, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
                   for q, d in e.query.items()]
        if params:
            op["parameters"] = params
        if e.request is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": e.request}}}
        if e.auth == "required":
            op["security"] = [{"bearer": []}]
        elif e.auth == "optional":
            op["security"] = [{}, {"bearer": []}]
        paths.setdefault(e.path, {})[e.method.lower()] = op
    return paths


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def _operation_id(e: Endpoint) -> str:
    words = [w for w in e.path.replace("/api/v1/", "").replace("{", "").replace("}", "").split("/") if w]
    return e.method.lower() + "_" + "_".join(w.replace("-", "_") for w in words)


def openapi_document(paths: dict[str, Any], *, version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Amaro Than API", "version": version,
                 "description": "The HTTP API of the Amaro Than platform. Realtime events travel over the "
                                "socket (protocol/SPEC.md)."},
        "paths": dict(sorted(paths.items())),
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": {"Error": ERROR_SCHEMA}},
    }


def json_response(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": PRIVATE})
