"""HTTP API of accounts under ``/api/v1/auth``: JSON in, JSON out, consistent error bodies.

Error body: ``{"error": {"code": "<stable code>", "message": "<human text>"}}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from feed.accounts import AccountError, Accounts, Grant

MAX_BODY = 16 * 1024


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers={"Cache-Control": "no-store"})


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


def auth_routes(accounts: Accounts) -> list[Route]:
    async def signup(request: Request) -> Response:
        try:
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
