"""Account calls (sign-up, log-in, refresh, log-out) over HTTP, with the standard library only.

The blocking ``urllib`` call runs in a thread so that it never stalls the caller's event loop.
Refresh tokens rotate (SPEC §2): ``refresh`` answers a new grant whose refresh token replaces the
old one, which is spent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from amaro_client.http import ApiError, call


class AuthError(ApiError):
    """An account call was refused (``status``, ``code``, ``message``)."""


@dataclass(frozen=True, slots=True)
class Grant:
    user_id: str
    username: str
    access_token: str
    refresh_token: str
    expires_in: int
    obtained_at: float = field(default_factory=time.time)  # wall clock: a grant may be saved and reloaded
    display_name: str = ""

    @property
    def expires_at(self) -> float:
        return self.obtained_at + self.expires_in

    def expiring(self, now: float | None = None) -> bool:
        """Within the last fifth of its life (at most a minute): time to refresh."""
        margin = min(60.0, self.expires_in / 5)
        return (time.time() if now is None else now) >= self.expires_at - margin

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Grant:
        return cls(user_id=str(data["user_id"]), username=str(data["username"]),
                   access_token=str(data["access_token"]), refresh_token=str(data["refresh_token"]),
                   expires_in=int(data["expires_in"]), obtained_at=float(data.get("obtained_at", 0.0)),
                   display_name=str(data.get("display_name", "")))


def _post(url: str, body: dict[str, Any], timeout_s: float) -> Any:
    try:
        return call("POST", url, body, timeout_s=timeout_s)
    except ApiError as exc:
        raise AuthError(exc.status, exc.code, exc.message, exc.retry_after) from None


async def _grant(base_url: str, path: str, body: dict[str, Any], timeout_s: float) -> Grant:
    data = await asyncio.to_thread(_post, base_url.rstrip("/") + path, body, timeout_s)
    user = data["user"]
    return Grant(user_id=user["id"], username=user["username"], access_token=data["access_token"],
                 refresh_token=data["refresh_token"], expires_in=data["expires_in"],
                 display_name=str(user.get("display_name", "")))


async def signup(base_url: str, username: str, password: str, display_name: str = "",
                 timeout_s: float = 10.0) -> Grant:
    return await _grant(base_url, "/api/v1/auth/signup",
                        {"username": username, "password": password, "display_name": display_name}, timeout_s)


async def login(base_url: str, username: str, password: str, timeout_s: float = 10.0) -> Grant:
    return await _grant(base_url, "/api/v1/auth/login", {"username": username, "password": password}, timeout_s)


async def refresh(base_url: str, refresh_token: str, timeout_s: float = 10.0) -> Grant:
    return await _grant(base_url, "/api/v1/auth/refresh", {"refresh_token": refresh_token}, timeout_s)


async def logout(base_url: str, refresh_token: str, timeout_s: float = 10.0) -> None:
    """Revoke ``refresh_token`` (the access token lives on until it expires)."""
    await asyncio.to_thread(_post, base_url.rstrip("/") + "/api/v1/auth/logout",
                            {"refresh_token": refresh_token}, timeout_s)
