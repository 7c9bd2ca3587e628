"""Async Python client for the Amaro Than socket: one connection, automatic resume.

    room = (await Api(base_url, grant.access_token).open_direct_room(friend_id))["id"]
    client = Client("ws://127.0.0.1:8001/ws", token=grant.access_token)
    await client.connect()
    await client.subscribe(f"room:{room}")
    ack = await client.chat_send(room, "Sastipe!")
    async for frame in client.events():
        ...

The protocol state (request ids, per-channel positions, duplicate suppression) lives in
``protocol.session.ClientSession``; the socket is a ``Connection`` (connection.py, over the lean
``Wire``); this module is the I/O around them: it reconnects with jittered
exponential backoff, re-authenticates, resubscribes from the last offsets, and honours the
server's drain and disconnect hints. Durable events are delivered at least once by the server and
exactly once to the caller (duplicates dropped by ``mid``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from amaro_client.connection import Connection, Refused
from amaro_client.wire import HandshakeError
from protocol import frames as F
from protocol.errors import ErrorCode
from protocol.session import ClientSession

TokenSource = Callable[[], Awaitable[str]]


class ClientError(Exception):
    """The server answered a request with an ``error`` frame."""

    def __init__(self, frame: F.Error) -> None:
        super().__init__(f"{ErrorCode(frame.code).name if frame.code in ErrorCode._value2member_map_ else frame.code}: "
                         f"{frame.message}")
        self.frame = frame
        self.code = frame.code


class Client:
    def __init__(self, url: str, *, token: str | None = None, token_source: TokenSource | None = None,
                 client_name: str = "amaro-python/0.1", request_timeout_s: float = 10.0,
                 max_backoff_s: float = 30.0, event_queue_size: int = 10_000) -> None:
        if token is None and token_source is None:
            raise ValueError("give a token or a token_source")
        self.url = url
        self._token = token
        self._token_source = token_source
        self._name = client_name
        self._timeout = request_timeout_s
        self._max_backoff = max_backoff_s
        self.session = ClientSession()
        self.welcome: F.Welcome | None = None
        self._conn: Connection | None = None
        self._pending: dict[int, asyncio.Future[F.Frame]] = {}
        self._events: asyncio.Queue[F.Frame] = asyncio.Queue(event_queue_size)
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._reconnect_hint_s: float | None = None
        self.reconnects = 0

    # -- connection ---------------------------------------------------------------------------

    async def _current_token(self) -> str:
        if self._token_source is not None:
            return await self._token_source()
        assert self._token is not None
        return self._token

    async def _open(self) -> None:
        hello = self.session.hello(await self._current_token(), self._name)
        try:
            conn = await Connection.open(self.url, hello.token, client_name=self._name,
                                         max_frame=self.session.max_frame, timeout_s=self._timeout,
                                         versions=hello.versions)
        except Refused as exc:
            raise ClientError(exc.error) from None
        assert conn.welcome is not None
        self.session.receive(conn.welcome)
        self.welcome = conn.welcome
        self._conn = conn
        self._connected.set()
        for sub in self.session.resubscribe():
            conn.send(sub)

    async def connect(self) -> None:
        """Connect and authenticate; later disconnects are repaired in the background."""
        self._closing = False
        await self._open()
        self._reader = asyncio.create_task(self._run(), name="amaro-client-reader")

    async def close(self) -> None:
        self._closing = True
        if self._conn is not None:
            await self._conn.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._fail_pending(ConnectionError("client closed"))

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _fail_pending(self, exc: BaseException) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()

    async def _run(self) -> None:
        attempt = 0
        while True:
            conn = self._conn
            if conn is not None:
                try:
                    while True:
                        self._dispatch(await conn.recv(None))
                except ConnectionError:
                    pass
                attempt = 0
            self._conn = None
            self._connected.clear()
            self._fail_pending(ConnectionError("connection lost"))
            if self._closing:
                return
            delay = self._reconnect_hint_s
            if delay is None:
                # Full jitter: after an outage every client comes back spread over the window.
                delay = random.uniform(0, min(self._max_backoff, 0.25 * 2**attempt))
            self._reconnect_hint_s = None
            await asyncio.sleep(delay)
            attempt += 1
            try:
                await self._open()
                self.reconnects += 1
            except HandshakeError as exc:
                if exc.retry_after_s is not None:
                    self._reconnect_hint_s = exc.retry_after_s
                continue
            except (OSError, ConnectionError, TimeoutError, ClientError):
                continue

    def _dispatch(self, received: F.Frame) -> None:
        frame = self.session.receive(received)
        if frame is None:
            return  # duplicate durable event
        rid = getattr(frame, "id", 0)
        if rid and not isinstance(frame, F.Ping):
            future = self._pending.pop(rid, None)
            if future is not None and not future.done():
                future.set_result(frame)
                return
        if isinstance(frame, F.Ping):
            if self._conn is not None and self._conn.wire is not None and self._conn.wire.open:
                self._conn.send(F.Pong(id=frame.id))
            return
        if isinstance(frame, F.Drain):
            self._reconnect_hint_s = frame.reconnect_after_ms / 1000
        elif isinstance(frame, F.Disconnect) and frame.reconnect:
            self._reconnect_hint_s = frame.reconnect_after_ms / 1000
        if self._events.full():
            self._events.get_nowait()  # the application is not reading: keep the newest
        self._events.put_nowait(frame)

    # -- requests -----------------------------------------------------------------------------

    async def _send(self, frame: F.Frame) -> None:
        await asyncio.wait_for(self._connected.wait(), self._timeout)
        assert self._conn is not None
        self._conn.send(frame)

    async def request(self, frame: F.Frame) -> F.Frame:
        """Send a frame with an ``id`` and wait for the answer carrying that id."""
        rid: int = getattr(frame, "id")  # noqa: B009 - every request frame has an id
        future: asyncio.Future[F.Frame] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            await self._send(frame)
            answer = await asyncio.wait_for(future, self._timeout)
        finally:
            self._pending.pop(rid, None)
        if isinstance(answer, F.Error):
            raise ClientError(answer)
        return answer

    async def ping(self) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self.request(F.Ping(id=self.session.next_id()))
        return loop.time() - started

    async def subscribe(self, ch: str, *, presence: bool = False) -> F.Subscribed:
        answer = await self.request(self.session.subscribe(ch, presence=presence))
        assert isinstance(answer, F.Subscribed)
        return answer

    async def unsubscribe(self, ch: str) -> None:
        await self.request(self.session.unsubscribe(ch))

    async def publish(self, ch: str, data: Any, key: str | None = None) -> F.Ack:
        answer = await self.request(F.Publish(id=self.session.next_id(), ch=ch, key=key or uuid.uuid4().hex,
                                              data=data))
        assert isinstance(answer, F.Ack)
        return answer

    async def chat_send(self, room: str, body: str, *, cmid: str | None = None, reply_to: str = "") -> F.ChatAck:
        """Send a chat message; retrying with the same ``cmid`` never duplicates it."""
        frame = F.ChatSend(id=self.session.next_id(), room=room, cmid=cmid or uuid.uuid4().hex, body=body,
                           reply_to=reply_to)
        answer = await self.request(frame)
        assert isinstance(answer, F.ChatAck)
        return answer

    async def chat_history(self, room: str, *, before: int = -1, limit: int = 50) -> F.ChatPage:
        answer = await self.request(F.ChatHistory(id=self.session.next_id(), room=room, before=before, limit=limit))
        assert isinstance(answer, F.ChatPage)
        return answer

    async def react(self, target_kind: str, target_id: str, emoji: str, on: bool = True) -> F.Frame:
        return await self.request(F.React(id=self.session.next_id(), target_kind=target_kind,
                                          target_id=target_id, emoji=emoji, on=on))

    async def typing(self, ch: str, active: bool = True) -> None:
        await self._send(F.Typing(ch=ch, active=active))

    async def receipt(self, room: str, offset: int, kind: str = "read") -> None:
        await self._send(F.ChatReceipt(room=room, offset=offset, kind=kind))

    async def presence(self, ch: str) -> F.PresenceSnapshot:
        """Who is present on subscribed channel ``ch`` now."""
        answer = await self.request(F.PresenceQuery(id=self.session.next_id(), ch=ch))
        assert isinstance(answer, F.PresenceSnapshot)
        return answer

    async def set_status(self, status: str) -> None:
        """``online`` or ``away``: send it when it changes (liveness needs nothing)."""
        await self._send(F.PresenceHeartbeat(status=status))

    # -- events -------------------------------------------------------------------------------

    async def next_event(self, timeout_s: float | None = None) -> F.Frame:
        return await asyncio.wait_for(self._events.get(), timeout_s)

    async def events(self) -> AsyncIterator[F.Frame]:
        while True:
            yield await self._events.get()
