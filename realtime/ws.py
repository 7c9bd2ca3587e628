"""The ``/ws`` endpoint: thin I/O glue between a WebSocket and the protocol core.

Skeleton for the foundation: Origin allow-list, authentication in the first frame (``hello``) with
version negotiation, ``welcome``, ping/pong, clean close. The hub builds channels on top of it.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from feed.tokens import TokenError, TokenSigner
from protocol import codec
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.frames import PROTOCOL_VERSION, Error, Frame, Hello, Ping, Pong, Welcome
from realtime.config import Settings

log = structlog.get_logger(__name__)


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Browsers always send Origin; native clients usually do not. No Origin is allowed (no
    ambient credentials ride on a socket that authenticates in its first frame); a present Origin
    must be on the allow-list, or, with an empty list, be a loopback origin (development)."""
    if origin is None:
        return True
    if allowed:
        return origin in allowed or "*" in allowed
    return origin.startswith(("http://localhost", "http://127.0.0.1", "http://[::1]"))


async def close_with_error(ws: WebSocket, close_code: CloseCode, error: Error) -> None:
    try:
        await ws.send_bytes(codec.encode(error))
        await ws.close(code=int(close_code), reason=error.message[:120])
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass


async def receive_frame_bytes(ws: WebSocket) -> bytes | None:
    """Next binary message, or None when the peer closed. Text messages are a protocol error."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        return None
    data = message.get("bytes")
    if data is None:
        raise ProtocolError("frames are binary msgpack messages, not text", ErrorCode.BAD_FRAME)
    return bytes(data)


async def handshake(ws: WebSocket, settings: Settings, signer: TokenSigner,
                    session_id: str) -> Welcome | None:
    """Run hello/welcome. Returns the Welcome sent, or None after closing the socket."""
    try:
        data = await asyncio.wait_for(receive_frame_bytes(ws), settings.handshake_timeout_s)
    except TimeoutError:
        await close_with_error(ws, CloseCode.HANDSHAKE_TIMEOUT,
                               Error(code=ErrorCode.NOT_AUTHENTICATED, message="no hello in time"))
        return None
    except ProtocolError as exc:
        await close_with_error(ws, CloseCode.BAD_HANDSHAKE, Error(code=exc.code, message=exc.message))
        return None
    if data is None:
        return None
    try:
        frame = codec.decode_client(data, settings.max_frame)
    except ProtocolError as exc:
        await close_with_error(ws, CloseCode.BAD_HANDSHAKE, Error(code=exc.code, message=exc.message))
        return None
    if not isinstance(frame, Hello):
        await close_with_error(ws, CloseCode.BAD_HANDSHAKE,
                               Error(code=ErrorCode.NOT_AUTHENTICATED, message="first frame must be hello"))
        return None
    if PROTOCOL_VERSION not in frame.versions:
        await close_with_error(ws, CloseCode.UNSUPPORTED_VERSION,
                               Error(code=ErrorCode.UNSUPPORTED_VERSION,
                                     message=f"server speaks protocol version {PROTOCOL_VERSION}"))
        return None
    try:
        claims = signer.verify(frame.token)
    except TokenError as exc:
        if exc.expired:
            await close_with_error(ws, CloseCode.TOKEN_EXPIRED,
                                   Error(code=ErrorCode.TOKEN_EXPIRED, message="token expired; refresh it"))
        else:
            await close_with_error(ws, CloseCode.UNAUTHORIZED,
                                   Error(code=ErrorCode.TOKEN_INVALID, message="token is not valid"))
        return None
    welcome = Welcome(version=PROTOCOL_VERSION, session=session_id, user=claims.user_id,
                      node=settings.node_id, ping_interval_ms=int(settings.ping_interval_s * 1000),
                      max_frame=settings.max_frame)
    await ws.send_bytes(codec.encode(welcome))
    return welcome


async def serve_socket(ws: WebSocket, settings: Settings, signer: TokenSigner) -> None:
    if not origin_allowed(ws.headers.get("origin"), settings.allowed_origins):
        await ws.close(code=int(CloseCode.POLICY_VIOLATION))
        return
    await ws.accept()
    session_id = uuid.uuid4().hex
    welcome = await handshake(ws, settings, signer, session_id)
    if welcome is None:
        return
    bound = log.bind(session=session_id, user_id=welcome.user)
    bound.debug("socket_open")
    try:
        while True:
            try:
                data = await receive_frame_bytes(ws)
                if data is None:
                    return
                frame: Frame = codec.decode_client(data, settings.max_frame)
            except ProtocolError as exc:
                await ws.send_bytes(codec.encode(Error(code=exc.code, message=exc.message,
                                                       id=exc.request_id)))
                continue
            if isinstance(frame, Ping):
                await ws.send_bytes(codec.encode(Pong(id=frame.id)))
            elif isinstance(frame, Hello):
                await ws.send_bytes(codec.encode(Error(code=ErrorCode.ALREADY_AUTHENTICATED,
                                                       message="already authenticated")))
            elif isinstance(frame, Pong):
                continue
            else:
                await ws.send_bytes(codec.encode(Error(code=ErrorCode.UNAVAILABLE,
                                                       message=f"{frame.TYPE} is not served by this node yet",
                                                       id=int(getattr(frame, "id", 0)))))
    except WebSocketDisconnect:
        return
    finally:
        bound.debug("socket_closed")
