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
import struct
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.protocol import State as WsState

from feed.tokens import TokenError
from protocol import codec
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.frames import Error, Hello
from protocol.session import ServerSession, error_frame

if TYPE_CHECKING:
    from realtime.node import HubNode

log = structlog.get_logger(__name__)

_OPEN = WsState.OPEN
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")


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
    """``hub.Transport`` over a Starlette WebSocket.

    Fast path: under uvicorn's sans-I/O websockets protocol, the frames of one flush are framed by
    that protocol object and handed to the socket in one ``transport.write`` (coalescing; no await,
    no task). ASGI has no such call, so this reaches behind ``send``; with any other server, or while
    the socket is paused by backpressure, frames go through plain ASGI ``send`` messages."""

    __slots__ = ("_proto", "ws")

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._proto = _sansio_protocol(getattr(ws, "_send", None))

    def try_write(self, frames: list[bytes]) -> bool:
        proto = self._proto
        if (proto is None or proto.close_sent or proto.disconnected or not proto.writable.is_set()
                or proto.conn.state is not _OPEN):
            return False
        # Server frames are unmasked, so framing is a 2-10 byte header: built here directly rather
        # than through the protocol object (a third of the per-delivery cost), and valid whether
        # or not compression was negotiated (a message may always go uncompressed).
        if len(frames) == 1:  # the common case of a broadcast: one frame this tick, one concatenation
            data = frames[0]
            n = len(data)
            proto.transport.write((bytes((0x82, n)) if n < 126 else _HEAD16.pack(0x82, 126, n) if n < 65536
                                   else _HEAD64.pack(0x82, 127, n)) + data)
            return True
        parts: list[bytes] = []
        for data in frames:
            n = len(data)
            parts.append(bytes((0x82, n)) if n < 126 else _HEAD16.pack(0x82, 126, n) if n < 65536
                         else _HEAD64.pack(0x82, 127, n))
            parts.append(data)
        proto.transport.write(b"".join(parts))
        return True

    async def send_many(self, frames: list[bytes]) -> None:
        proto = self._proto
        if proto is not None:
            await proto.writable.wait()
            if self.try_write(frames):
                return
        send = self.ws.send
        for data in frames:
            await send({"type": "websocket.send", "bytes": data})

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await self.ws.close(code=code, reason=reason)

    def release_handshake(self) -> None:
        """Drop the server's copies of the upgrade request and response (headers, a few KB per
        socket): nothing reads them after the handshake, and an idle socket should cost little."""
        proto = self._proto
        if proto is not None and proto.handshake_complete:
            proto.request = None
            proto.response = None

    def abort(self) -> None:
        """Drop the TCP connection now. A close handshake waits for the peer to read what is
        buffered, which a stuck client never does; without this its socket would linger."""
        owner = _asgi_owner(getattr(self.ws, "_send", None))
        if owner is not None:
            owner.transport.abort()


def _asgi_owner(send: object, depth: int = 0) -> Any:
    """The ASGI server's protocol object behind ``send`` (uvicorn's ``send`` is a bound method of
    it), looking through middleware closures; it must have a ``transport`` that can abort. None
    when not found: every caller has a plain-ASGI fallback."""
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is not None and callable(getattr(transport, "abort", None)):
        return owner
    if depth >= 4:
        return None
    for cell in getattr(send, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if callable(value):
            found = _asgi_owner(value, depth + 1)
            if found is not None:
                return found
    return None


def _sansio_protocol(send: object) -> Any:
    owner = _asgi_owner(send)
    needed = ("conn", "writable", "close_sent", "disconnected", "handshake_complete")
    if owner is None or not all(hasattr(owner, name) for name in needed):
        return None
    if not isinstance(getattr(owner.conn, "state", None), WsState):
        return None
    return owner


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


def _origin(ws: WebSocket) -> str | None:
    # Read from the raw scope: ``ws.headers`` would build and keep a Headers object per socket.
    for name, value in ws.scope.get("headers", ()):
        if name == b"origin":
            return bytes(value).decode("latin-1")
    return None


async def serve_socket(ws: WebSocket, node: HubNode) -> None:
    settings, hub = node.settings, node.hub
    if not origin_allowed(_origin(ws), settings.allowed_origins):
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
    transport = SocketTransport(ws)
    transport.release_handshake()
    conn = await hub.connect(transport, session, conn_id, user)
    del session, settings, transport  # an idle socket keeps this frame alive: keep it small
    receive = ws.receive
    try:
        # Runs until the peer goes: closing or aborting the socket from the hub side also ends it
        # (the server delivers ``websocket.disconnect``). Inlined (no helper coroutines) because
        # every idle socket holds this call stack.
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:  # a text message: answer, keep serving
                error = error_frame(ProtocolError("frames are binary msgpack messages, not text",
                                                  ErrorCode.BAD_FRAME))
                conn.push(codec.encode(error), Error.TYPE)
                continue
            await hub.receive(conn, data)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
    finally:
        await hub.disconnected(conn)
