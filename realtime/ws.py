"""The socket listener: thin I/O glue between WebSockets and the hub.

Sockets are served by the ``websockets`` library's asyncio server, on a port of their own beside the
node's HTTP server (README "Configuration": ``AMARO_WS_PORT``). It owns the connection from the
first byte, so the hub writes through documented calls only: asyncio's transport, whose flow
control the connection reports, and ``websockets``' own ``send`` while a socket is paused.

Order of checks, before anything is decoded: the request path, the ``Origin`` allow-list and the
node's accept rate (all three answered as HTTP before the upgrade), then the message size cap
(``max_size``: the library closes 1009) and authentication in the first frame (``hello``) through
the sans-I/O ``ServerSession``. After ``welcome`` every message goes to ``Hub.receive``; the hub's
connection (connection.py) does all the writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol, cast

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode as WsCloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

from protocol import codec
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.frames import Error, Hello
from protocol.session import ServerSession, error_frame

if TYPE_CHECKING:
    from realtime.hub import Hub

log = structlog.get_logger(__name__)

PATH = "/ws"
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")


class AccessTokens(Protocol):
    def user_of(self, token: str) -> str:
        """The user a valid access token names. Raises ``ProtocolError`` with ``TOKEN_INVALID`` or
        ``TOKEN_EXPIRED`` otherwise."""
        ...


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Browsers always send Origin; native clients usually do not. No Origin is allowed (no
    ambient credentials ride on a socket that authenticates in its first frame); a present Origin
    must be on the allow-list, or, with an empty list, be a loopback origin (development)."""
    if origin is None:
        return True
    if allowed:
        return origin in allowed or "*" in allowed
    return origin.startswith(("http://localhost", "http://127.0.0.1", "http://[::1]"))


class HubConnection(ServerConnection):
    """``websockets``' server connection, plus what the hub's coalescing writer needs: the
    transport it was given and whether that transport asked to pause (asyncio's protocol
    callbacks, which this class, being the asyncio protocol, receives)."""

    hub_transport: asyncio.Transport
    hub_paused: bool = False

    #: The ``error 101`` sent before the library's close 1009 (``_fail_with_error``).
    too_large_error: bytes = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.hub_transport = cast(asyncio.Transport, transport)
        # The library refuses an oversize frame itself (``max_size``, before reading it) and fails
        # the connection with 1009; SPEC §12 wants `error 101` first. Its protocol's ``fail`` is
        # the one place that decision passes through, so the error frame is queued there.
        protocol = self.protocol
        fail = protocol.fail

        def fail_with_error(code: int, reason: str = "") -> None:
            if code == WsCloseCode.MESSAGE_TOO_BIG and protocol.state is State.OPEN and self.too_large_error:
                with contextlib.suppress(Exception):
                    protocol.send_binary(self.too_large_error)
            fail(code, reason)

        protocol.fail = fail_with_error  # type: ignore[method-assign]

    def pause_writing(self) -> None:
        self.hub_paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        self.hub_paused = False
        super().resume_writing()


def frame_header(size: int) -> bytes:
    """RFC 6455 header of an unmasked, final binary frame of ``size`` bytes (server to client)."""
    if size < 126:
        return bytes((0x82, size))
    if size < 65536:
        return _HEAD16.pack(0x82, 126, size)
    return _HEAD64.pack(0x82, 127, size)


class SocketTransport:
    """``connection.Transport`` over a ``HubConnection``.

    ``try_write`` frames everything queued this tick and hands it to the transport in one write
    (coalescing; no await, no task), which is how one encoded event reaches thousands of sockets
    cheaply. While the transport is paused, or the close handshake has begun, it declines, and the
    hub's writer task uses ``send_many``: ``websockets``' ``send``, which waits for the socket."""

    __slots__ = ("ws",)

    def __init__(self, ws: HubConnection) -> None:
        self.ws = ws

    def try_write(self, frames: list[bytes]) -> bool:
        ws = self.ws
        if ws.hub_paused or ws.state is not State.OPEN:
            return False
        if len(frames) == 1:  # the common case of a broadcast: one frame this tick, one concatenation
            data = frames[0]
            ws.hub_transport.write(frame_header(len(data)) + data)
            return True
        parts: list[bytes] = []
        for data in frames:
            parts.append(frame_header(len(data)))
            parts.append(data)
        ws.hub_transport.write(b"".join(parts))
        return True

    async def send_many(self, frames: list[bytes]) -> None:
        for data in frames:
            await self.ws.send(data)

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            await self.ws.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection now. A close handshake waits for the peer to read what is
        buffered, which a stuck client never does; without this its socket would linger."""
        self.ws.hub_transport.abort()


async def _close_with(ws: HubConnection, close: CloseCode, error: Error) -> None:
    with contextlib.suppress(ConnectionClosed, OSError):
        await ws.send(codec.encode(error))
        await ws.close(int(close), error.message[:120])


class SocketServer:
    """The listener of one hub node."""

    def __init__(self, hub: Hub, tokens: AccessTokens) -> None:
        self.hub = hub
        self.tokens = tokens
        self.server: Server | None = None
        self._too_large = codec.encode(Error(code=ErrorCode.FRAME_TOO_LARGE,
                                             message=f"frame above {hub.config.max_frame} bytes"))

    async def listen(self, host: str, port: int) -> None:
        config = self.hub.config
        self.server = await serve(
            self._serve, host, port, create_connection=HubConnection, process_request=self._admit,
            compression=None,  # a small compressed message could inflate hugely; frames are small anyway
            max_size=config.max_frame,
            open_timeout=config.handshake_timeout_s,
            # Liveness is the protocol's own ping/pong (SPEC §3, §5.6: ``Hub.ping_quiet``), which
            # browsers can see; WebSocket-level pings are not used.
            ping_interval=None, ping_timeout=None,
            close_timeout=2.0, server_header=None,
        )

    @property
    def port(self) -> int:
        assert self.server is not None
        sockets = self.server.sockets
        return int(sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening; sockets still open are the hub's to close (drain)."""
        if self.server is not None:
            self.server.close(close_connections=False)
            await self.server.wait_closed()
            self.server = None

    def _admit(self, ws: ServerConnection, request: Request) -> Response | None:
        """Before the upgrade: the path, the Origin allow-list, then the node's accept rate (a
        refused client backs off and retries, maybe elsewhere)."""
        if request.path.partition("?")[0] != PATH:
            return ws.respond(HTTPStatus.NOT_FOUND, "no such endpoint: sockets live at /ws\n")
        if not origin_allowed(request.headers.get("Origin"), self.hub.config.allowed_origins):
            return ws.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
        if not self.hub.accept_allowed():
            response = ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "busy or draining: retry later\n")
            response.headers["Retry-After"] = "1"
            return response
        return None

    async def _handshake(self, ws: HubConnection, session: ServerSession, conn_id: str) -> str | None:
        """Run hello/welcome on ``session``. Returns the authenticated user id, or None after closing."""
        config = self.hub.config
        ws.too_large_error = self._too_large
        try:
            data = await asyncio.wait_for(ws.recv(), config.handshake_timeout_s)
            if isinstance(data, str):
                raise ProtocolError("frames are binary msgpack messages, not text", ErrorCode.BAD_FRAME)
            frame = session.receive_data(data)
            assert isinstance(frame, Hello)  # the only frame AWAIT_HELLO accepts
            user = self.tokens.user_of(frame.token)
            # SPEC §5.3: nothing but `hello` before `welcome`. A frame already received now (the
            # library's queue of data frames) was sent without waiting for it.
            if len(ws.recv_messages.frames):
                raise ProtocolError("a frame before welcome: wait for welcome", ErrorCode.NOT_AUTHENTICATED)
            if self.hub.draining:
                raise ProtocolError("node is draining, connect to another", ErrorCode.DRAINING)
        except TimeoutError:
            await _close_with(ws, CloseCode.HANDSHAKE_TIMEOUT,
                              Error(code=ErrorCode.NOT_AUTHENTICATED, message="no hello in time"))
            return None
        except ProtocolError as exc:
            failure = session.fail(exc)
            await _close_with(ws, failure.close or CloseCode.BAD_HANDSHAKE, failure.error)
            return None
        welcome = session.accept(user=user, session=conn_id, node=config.node_id,
                                 ping_interval_ms=int(config.ping_interval_s * 1000))
        await ws.send(codec.encode(welcome))
        return user

    async def _serve(self, connection: ServerConnection) -> None:
        ws = cast(HubConnection, connection)
        hub = self.hub
        conn_id = uuid.uuid4().hex
        session = ServerSession(max_frame=hub.config.max_frame)
        try:
            user = await self._handshake(ws, session, conn_id)
        except ConnectionClosed:
            return
        if user is None:
            return
        conn = await hub.connect(SocketTransport(ws), session, conn_id, user)
        del session  # an idle socket keeps this frame alive: keep it small
        recv = ws.recv
        try:
            # Runs until the peer goes: closing or aborting the socket from the hub side ends it too.
            while True:
                data = await recv()
                if isinstance(data, str):  # a text message: answer, keep serving
                    error = error_frame(ProtocolError("frames are binary msgpack messages, not text",
                                                      ErrorCode.BAD_FRAME))
                    conn.push(codec.encode(error), Error.TYPE)
                    continue
                await hub.receive(conn, data)
        except (ConnectionClosed, OSError):
            return
        finally:
            await hub.disconnected(conn)
