"""The ``/ws`` endpoint: thin I/O glue between a WebSocket and the hub.

Order of checks: Origin allow-list (before accepting), the node's accept rate (reconnect storms),
then authentication in the first frame (``hello``) through the sans-I/O ``ServerSession``. Frame
size is capped twice before any decoding: by uvicorn (``ws_max_size``, closes 1009) and by the codec.
After ``welcome`` every message goes to ``Hub.receive``; the connection's writer task (hub.py)
does all the writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from feed.tokens import TokenError
from protocol import codec
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.frames import Error, Hello
from protocol.session import ServerSession, error_frame

if TYPE_CHECKING:
    from realtime.hub import Connection
    from realtime.node import HubNode

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


class SocketTransport:
    """``hub.Transport`` over a Starlette WebSocket."""

    __slots__ = ("ws",)

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def send_many(self, frames: list[bytes]) -> None:
        send = self.ws.send
        for data in frames:
            await send({"type": "websocket.send", "bytes": data})

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await self.ws.close(code=code, reason=reason)

    def abort(self) -> None:
        """Drop the TCP connection now. A close handshake waits for the peer to read what is
        buffered, which a stuck client never does; without this its socket would linger."""
        transport = _transport_of(getattr(self.ws, "_send", None))
        if transport is not None:
            transport.abort()


def _transport_of(send: object, depth: int = 0) -> Any:
    """The server's transport behind an ASGI ``send``: the ASGI server's protocol object (uvicorn's
    ``send`` is a bound method of it), possibly wrapped in middleware closures. ASGI offers no
    abort, so this is best effort; None when not found."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None and callable(getattr(transport, "abort", None)):
        return transport
    if depth >= 4:
        return None
    for cell in getattr(send, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if callable(value):
            found = _transport_of(value, depth + 1)
            if found is not None:
                return found
    return None


async def _close_with(ws: WebSocket, close: CloseCode, error: Error) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await ws.send_bytes(codec.encode(error))
        await ws.close(code=int(close), reason=error.message[:120])


async def _receive_bytes(ws: WebSocket) -> bytes | None:
    """Next binary message, or None when the peer closed. Text is a protocol error."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        return None
    data = message.get("bytes")
    if data is None:
        raise ProtocolError("frames are binary msgpack messages, not text", ErrorCode.BAD_FRAME)
    return bytes(data)


async def handshake(ws: WebSocket, node: HubNode, session: ServerSession, conn_id: str) -> str | None:
    """Run hello/welcome on ``session``. Returns the authenticated user id, or None after closing."""
    settings = node.settings
    try:
        data = await asyncio.wait_for(_receive_bytes(ws), settings.handshake_timeout_s)
        if data is None:
            return None
        frame = session.receive_data(data)
        assert isinstance(frame, Hello)  # the only frame AWAIT_HELLO accepts
        try:
            claims = node.signer.verify(frame.token)
        except TokenError as exc:
            code = ErrorCode.TOKEN_EXPIRED if exc.expired else ErrorCode.TOKEN_INVALID
            raise ProtocolError("token expired; refresh it" if exc.expired else "token is not valid", code) from None
        if node.hub.draining:
            raise ProtocolError("node is draining, connect to another", ErrorCode.DRAINING)
    except TimeoutError:
        await _close_with(ws, CloseCode.HANDSHAKE_TIMEOUT,
                          Error(code=ErrorCode.NOT_AUTHENTICATED, message="no hello in time"))
        return None
    except ProtocolError as exc:
        failure = session.fail(exc)
        await _close_with(ws, failure.close or CloseCode.BAD_HANDSHAKE, failure.error)
        return None
    welcome = session.accept(user=claims.user_id, session=conn_id, node=settings.node_id,
                             ping_interval_ms=int(settings.ping_interval_s * 1000))
    await ws.send_bytes(codec.encode(welcome))
    return claims.user_id


async def serve_socket(ws: WebSocket, node: HubNode) -> None:
    settings, hub = node.settings, node.hub
    if not origin_allowed(ws.headers.get("origin"), settings.allowed_origins):
        await ws.close(code=int(CloseCode.POLICY_VIOLATION))
        return
    if not hub.accept_allowed():
        # Before accept this is an HTTP 403: the client backs off and retries (maybe elsewhere).
        await ws.close(code=int(CloseCode.DRAINING if hub.draining else CloseCode.GOING_AWAY))
        return
    await ws.accept()
    conn_id = uuid.uuid4().hex
    session = ServerSession(max_frame=settings.max_frame)
    user = await handshake(ws, node, session, conn_id)
    if user is None:
        return
    conn = await hub.connect(SocketTransport(ws), session, conn_id, user)
    reader = asyncio.create_task(_read_loop(ws, conn), name=f"reader-{conn_id}")
    closed = asyncio.create_task(conn.closed.wait(), name=f"closed-{conn_id}")
    try:
        await asyncio.wait((reader, closed), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, closed):
            task.cancel()
        await asyncio.gather(reader, closed, return_exceptions=True)
        await hub.disconnected(conn)


async def _read_loop(ws: WebSocket, conn: Connection) -> None:
    hub = conn.hub
    try:
        while not conn.closing:
            try:
                data = await _receive_bytes(ws)
            except ProtocolError as exc:  # a text message: answer, keep serving
                conn.push(codec.encode(error_frame(exc)), Error.TYPE)
                continue
            if data is None:
                return
            await hub.receive(conn, data)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
