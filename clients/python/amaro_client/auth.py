"""Account calls (sign-up, log-in, refresh) over HTTP, with the standard library only.

The blocking ``urllib`` call runs in a thread so that it never stalls the caller's event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from amaro_client.api import ApiError, call


class AuthError(ApiError):
    """An account call was refused (``status``, ``code``, ``message``)."""


@dataclass(frozen=True, slots=True)
class Grant:
    user_id: str
    username: str
    access_token: str
    refresh_token: str
    expires_in: int


def _post(url: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    try:
        data: dict[str, Any] = call("POST", url, body, timeout_s=timeout_s)
    except ApiError as exc:
        raise AuthError(exc.status, exc.code, exc.message) from None
    return data


async def _grant(base_url: str, path: str, body: dict[str, Any], timeout_s: float) -> Grant:
    data = await asyncio.to_thread(_post, base_url.rstrip("/") + path, body, timeout_s)
    return Grant(user_id=data["user"]["id"], username=data["user"]["username"],
                 access_token=data["access_token"], refresh_token=data["refresh_token"],
                 expires_in=data["expires_in"])


async def signup(base_url: str, username: str, password: str, display_name: str = "",
                 timeout_s: float = 10.0) -> Grant:
    return await _grant(base_url, "/api/v1/auth/signup",
                        {"username": username, "password": password, "display_name": display_name}, timeout_s)


async def login(base_url: str, username: str, password: str, timeout_s: float = 10.0) -> Grant:
    return await _grant(base_url, "/api/v1/auth/login", {"username": username, "password": password}, timeout_s)


async def refresh(base_url: str, refresh_token: str, timeout_s: float = 10.0) -> Grant:
    return await _grant(base_url, "/api/v1/auth/refresh", {"refresh_token": refresh_token}, timeout_s)
