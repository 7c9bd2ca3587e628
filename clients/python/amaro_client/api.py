"""The HTTP API (SPEC §2): accounts and the social API, with the standard library only.

    api = Api("http://127.0.0.1:8000", grant.access_token)
    room = await api.open_direct_room(friend_id)
    await api.follow(friend_id)
    post = await api.publish("Sastipe!", visibility="followers")
    page = await api.home()  # {"items": [...], "next_cursor": ...}

Every call runs the blocking ``urllib`` request in a thread, so it never stalls the caller's event
loop. A refusal raises ``ApiError`` with the server's stable ``code`` (switch on it, never on the
message). Anything the social API offers and has no method here is one ``request`` away.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class ApiError(Exception):
    """The server refused a request: its HTTP status and the error body's ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def call(method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None,
         timeout_s: float = 10.0) -> Any:
    """One blocking request: the decoded JSON answer, or ``None`` for an empty one (204)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base URL must be http(s), got {url!r}")
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=None if body is None else json.dumps(body).encode(), method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - scheme checked above
            raw = response.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        try:
            error = json.load(exc)["error"]
            code, message = str(error.get("code", "")), str(error.get("message", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            code, message = "http_error", str(exc)
        raise ApiError(exc.code, code, message) from None


class Api:
    """The social API as one user (an access token from ``signup``/``login``/``refresh``)."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                      **query: str | int | None) -> Any:
        """``method`` on ``/api/v1<path>``; ``query`` pairs whose value is ``None`` are left out."""
        url = f"{self.base_url}/api/v1{path}"
        pairs = {k: str(v) for k, v in query.items() if v is not None}
        if pairs:
            url += "?" + urllib.parse.urlencode(pairs)
        return await asyncio.to_thread(call, method, url, body, self.token, self.timeout_s)

    # -- people ---------------------------------------------------------------------------------
    async def me(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/me")
        return result

    async def follow(self, user_id: str) -> str:
        """``following``, or ``requested`` when the account is private."""
        result: dict[str, Any] = await self.request("POST", f"/users/{user_id}/follow")
        return str(result["state"])

    async def unfollow(self, user_id: str) -> None:
        await self.request("DELETE", f"/users/{user_id}/follow")

    # -- rooms ----------------------------------------------------------------------------------
    async def open_direct_room(self, user_id: str) -> dict[str, Any]:
        """The direct room with ``user_id`` (created on first use, the same one afterwards)."""
        result: dict[str, Any] = await self.request("POST", "/rooms", {"kind": "direct", "members": [user_id]})
        return result

    async def create_group(self, title: str, members: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", "/rooms",
                                                    {"kind": "group", "title": title, "members": members})
        return result

    async def rooms(self, *, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/rooms", cursor=cursor, limit=limit)
        return result

    # -- posts ----------------------------------------------------------------------------------
    async def publish(self, body: str, *, visibility: str = "public") -> dict[str, Any]:
        """A text post, published at once."""
        result: dict[str, Any] = await self.request("POST", "/posts", {"body": body, "visibility": visibility})
        return result

    async def comment(self, post_id: str, body: str, *, parent_id: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"body": body}
        if parent_id is not None:
            payload["parent_id"] = parent_id
        result: dict[str, Any] = await self.request("POST", f"/posts/{post_id}/comments", payload)
        return result

    async def home(self, *, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """A page of my home timeline, newest first: ``{"items": [...], "next_cursor": ...}``."""
        result: dict[str, Any] = await self.request("GET", "/timelines/home", cursor=cursor, limit=limit)
        return result
