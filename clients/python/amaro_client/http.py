"""One JSON request over HTTP with the standard library, and the error a refusal raises.

The SDK installs with nothing but the protocol and websockets, so HTTP is ``urllib``: blocking,
hence always run in a thread by the async callers (``Api``, ``signup``...).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ApiError(Exception):
    """The server refused a request: its HTTP ``status``, the error body's stable ``code`` (switch
    on it, never on ``message``) and ``retry_after`` seconds when it said when to come back."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the server never sends one


def check_http_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the URL must be http(s), got {url!r}")


def call(method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None,
         timeout_s: float = 10.0) -> Any:
    """One blocking request: the decoded JSON answer, or ``None`` for an empty one (204)."""
    check_http_url(url)
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
        raise ApiError(exc.code, code, message, retry_after(exc.headers.get("Retry-After"))) from None
