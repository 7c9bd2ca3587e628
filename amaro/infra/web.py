"""JSON over HTTP, the one way every part's API answers: orjson bodies and one error shape,
``{"error": {"code": "<stable code>", "message": "<human text>"}}``."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(code: str, message: str, status: int, *, retry_after_s: int | None = None) -> JSONResponse:
    """An error answer; never cached. ``retry_after_s`` adds ``Retry-After`` (429, 503)."""
    headers = {"Cache-Control": "no-store"}
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)
