"""HTTP API of accounts under ``/api/v1/auth``: JSON in, JSON out, consistent error bodies.

Error body: ``{"error": {"code": "<stable code>", "message": "<human text>"}}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from amaro.infra.web import JSONResponse
from amaro.infra.web import error_response as _error_response
from feed.accounts import AccountError, Accounts, Grant, normalize_username

MAX_BODY = 16 * 1024
ADDRESS_WINDOW_S = 60
USERNAME_WINDOW_S = 300


def error_response(code: str, message: str, status: int) -> JSONResponse:
    return _error_response(code, message, status, retry_after_s=60 if status == 429 else None)


def grant_body(grant: Grant) -> dict[str, Any]:
    return {
        "user": {"id": grant.user.id, "username": grant.user.username,
                 "display_name": grant.user.display_name},
        "access_token": grant.access_token,
        "refresh_token": grant.refresh_token,
        "token_type": "Bearer",
        "expires_in": grant.expires_in,
    }


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body, read with a size cap before parsing."""
    if "application/json" not in request.headers.get("content-type", ""):
        raise AccountError("unsupported_media_type", "send a JSON body with Content-Type: application/json", 415)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise AccountError("body_too_large", f"body must be at most {MAX_BODY} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise AccountError("body_too_large", f"body must be at most {MAX_BODY} bytes", 413)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise AccountError("invalid_json", "body is not valid JSON", 400) from None
    if not isinstance(data, dict):
        raise AccountError("invalid_json", "body must be a JSON object", 400)
    return data


def _string_field(data: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name, None if required else "")
    if not isinstance(value, str) or (required and not value):
        raise AccountError("invalid_field", f"'{name}' must be a non-empty string", 422)
    return value


class WindowCounter(Protocol):
    """Fixed-window counters shared by every node (the hub's per-user limits implement it)."""

    async def hit(self, user: str, name: str, limit: int, window_s: int) -> bool:
        """Count one ``name`` action of ``user``; False when over ``limit`` in this window."""
        ...


@dataclass(frozen=True, slots=True)
class AttemptLimits:
    """Guessing passwords costs the guesser: attempts per client address per minute and per
    username per five minutes, shared by every node (fixed windows in Redis). Sign-ups count
    against the address too. Addresses get a generous budget: carriers put many phones behind one."""

    counters: WindowCounter
    per_address: int
    per_username: int


async def check_attempts(limits: AttemptLimits, request: Request, username: str | None) -> None:
    address = request.client.host if request.client else "unknown"
    allowed = await limits.counters.hit(f"addr:{address}", "auth", limits.per_address, ADDRESS_WINDOW_S)
    if allowed and username is not None:
        allowed = await limits.counters.hit(f"name:{normalize_username(username)[:64]}", "login",
                                            limits.per_username, USERNAME_WINDOW_S)
    if not allowed:
        raise AccountError("rate_limited", "too many attempts; wait a few minutes and try again", 429)


def auth_routes(accounts: Accounts, limits: AttemptLimits) -> list[Route]:
    async def signup(request: Request) -> Response:
        try:
            await check_attempts(limits, request, None)
            data = await read_json_object(request)
            grant = await accounts.signup(
                _string_field(data, "username"), _string_field(data, "password"),
                _string_field(data, "display_name", required=False),
                user_agent=request.headers.get("user-agent", ""),
            )
        except AccountError as exc:
            return error_response(exc.code, exc.message, exc.status)
        return JSONResponse(grant_body(grant), status_code=201, headers={"Cache-Control": "no-store"})

    async def login(request: Request) -> Response:
        try:
            data = await read_json_object(request)
            await check_attempts(limits, request, _string_field(data, "username"))
            grant = await accounts.login(_string_field(data, "username"), _string_field(data, "password"),
                                         user_agent=request.headers.get("user-agent", ""))
        except AccountError as exc:
            return error_response(exc.code, exc.message, exc.status)
        return JSONResponse(grant_body(grant), headers={"Cache-Control": "no-store"})

    async def refresh(request: Request) -> Response:
        try:
            data = await read_json_object(request)
            grant = await accounts.refresh(_string_field(data, "refresh_token"))
        except AccountError as exc:
            return error_response(exc.code, exc.message, exc.status)
        return JSONResponse(grant_body(grant), headers={"Cache-Control": "no-store"})

    async def logout(request: Request) -> Response:
        try:
            data = await read_json_object(request)
            await accounts.logout(_string_field(data, "refresh_token"))
        except AccountError as exc:
            return error_response(exc.code, exc.message, exc.status)
        return Response(status_code=204)

    return [
        Route("/api/v1/auth/signup", signup, methods=["POST"]),
        Route("/api/v1/auth/login", login, methods=["POST"]),
        Route("/api/v1/auth/refresh", refresh, methods=["POST"]),
        Route("/api/v1/auth/logout", logout, methods=["POST"]),
    ]
