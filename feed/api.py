"""Accounts and tokens over HTTP: ``/api/v1/auth/signup``, ``/login``, ``/refresh``, ``/logout``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from starlette.responses import Response

from feed.accounts import AccountError, Accounts, Grant, normalize_username
from feed.web import ApiError, Call, Endpoint, json_response, no_content, text

ADDRESS_WINDOW_S = 60
USERNAME_WINDOW_S = 300


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


async def check_attempts(limits: AttemptLimits, call: Call, username: str | None) -> None:
    request = call.request
    address = request.client.host if request.client else "unknown"
    allowed = await limits.counters.hit(f"addr:{address}", "auth", limits.per_address, ADDRESS_WINDOW_S)
    if allowed and username is not None:
        allowed = await limits.counters.hit(f"name:{normalize_username(username)[:64]}", "login",
                                            limits.per_username, USERNAME_WINDOW_S)
    if not allowed:
        raise ApiError("rate_limited", "too many attempts; wait a few minutes and try again", 429, retry_after_s=60)


def grant_body(grant: Grant) -> dict[str, Any]:
    return {
        "user": {"id": grant.user.id, "username": grant.user.username,
                 "display_name": grant.user.display_name},
        "access_token": grant.access_token,
        "refresh_token": grant.refresh_token,
        "token_type": "Bearer",
        "expires_in": grant.expires_in,
    }


def _refused(exc: AccountError) -> ApiError:
    return ApiError(exc.code, exc.message, exc.status, retry_after_s=60 if exc.status == 429 else None)


_STR = {"type": "string"}
GRANT = {"type": "object", "required": ["user", "access_token", "refresh_token", "token_type", "expires_in"],
         "properties": {"user": {"type": "object", "properties": {"id": _STR, "username": _STR,
                                                                  "display_name": _STR}},
                        "access_token": _STR, "refresh_token": _STR, "token_type": {"const": "Bearer"},
                        "expires_in": {"type": "integer"}}}
CREDENTIALS = {"type": "object", "required": ["username", "password"],
               "properties": {"username": _STR, "password": _STR, "display_name": _STR}}
REFRESH = {"type": "object", "required": ["refresh_token"], "properties": {"refresh_token": _STR}}


def auth_endpoints(accounts: Accounts, limits: AttemptLimits) -> list[Endpoint]:
    async def signup(call: Call) -> Response:
        await check_attempts(limits, call, None)
        data = await call.json()
        try:
            grant = await accounts.signup(
                text(data, "username", max_len=256, min_len=1), text(data, "password", max_len=1024, strip=False),
                text(data, "display_name", max_len=256, default=""),
                user_agent=call.request.headers.get("user-agent", ""))
        except AccountError as exc:
            raise _refused(exc) from None
        return json_response(grant_body(grant), 201)

    async def login(call: Call) -> Response:
        data = await call.json()
        username = text(data, "username", max_len=256, min_len=1)
        await check_attempts(limits, call, username)
        try:
            grant = await accounts.login(username, text(data, "password", max_len=1024, strip=False),
                                         user_agent=call.request.headers.get("user-agent", ""))
        except AccountError as exc:
            raise _refused(exc) from None
        return json_response(grant_body(grant))

    async def refresh(call: Call) -> Response:
        data = await call.json()
        try:
            grant = await accounts.refresh(text(data, "refresh_token", max_len=512, min_len=1))
        except AccountError as exc:
            raise _refused(exc) from None
        return json_response(grant_body(grant))

    async def logout(call: Call) -> Response:
        data = await call.json()
        try:
            await accounts.logout(text(data, "refresh_token", max_len=512, min_len=1))
        except AccountError as exc:
            raise _refused(exc) from None
        return no_content()

    return [
        Endpoint("POST", "/api/v1/auth/signup", signup, "Create an account and log in", "auth", auth="none",
                 request=CREDENTIALS, response=GRANT, status=201, errors=(409, 429)),
        Endpoint("POST", "/api/v1/auth/login", login, "Log in with a username and password", "auth", auth="none",
                 request=CREDENTIALS, response=GRANT, errors=(401, 429)),
        Endpoint("POST", "/api/v1/auth/refresh", refresh, "Trade a refresh token for new tokens", "auth",
                 auth="none", request=REFRESH, response=GRANT, errors=(401,)),
        Endpoint("POST", "/api/v1/auth/logout", logout, "Revoke a refresh token", "auth", auth="none",
                 request=REFRESH, status=204),
    ]
