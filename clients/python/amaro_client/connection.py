"""One authenticated socket speaking the platform's frames: ``hello``, ``welcome``, then frames
both ways, exactly as SPEC.md describes them and nothing more (no reconnect, no resume: ``Client``
adds those).

Frames from the server go to ``on_frame`` if given (a load generator tallies them there, at no
cost per frame beyond decoding), otherwise to a bounded queue that ``recv`` reads. Tests use this
class to speak the protocol frame by frame, including frames a well-behaved client never sends.

    conn = await Connection.open("ws://127.0.0.1:8001/ws", token)
    conn.send(F.Ping(id=1))
    pong = await conn.recv()
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from typing import TypeVar

from amaro_client.wire import Wire
from protocol import codec
from protocol import frames as F
from protocol.errors import ProtocolError

T = TypeVar("T", bound=F.Frame)
HELLO_VERSIONS = F.SUPPORTED_VERSIONS


class Refused(ConnectionError):
    """The server answered ``hello`` with an ``error`` frame (and closed)."""

    def __init__(self, error: F.Error, close_code: int | None) -> None:
        super().__init__(f"refused: {error.code} {error.message}")
        self.error = error
        self.close_code = close_code


class Connection:
    def __init__(self, *, on_frame: Callable[[F.Frame], None] | None = None, max_frame: int = 1 << 20,
                 queue_size: int = 100_000) -> None:
        self.wire: Wire | None = None
        self.welcome: F.Welcome | None = None
        self.max_frame = max_frame
        self.on_frame = on_frame
        self.on_undecodable: Callable[[bytes, ProtocolError], None] | None = None
        self.on_text: Callable[[str], None] | None = None
        self.frames: asyncio.Queue[F.Frame] = asyncio.Queue(queue_size)
        self._first: asyncio.Future[F.Frame] = asyncio.get_running_loop().create_future()
        self._next_id = 0

    @classmethod
    async def open(cls, url: str, token: str | None, *, client_name: str = "amaro-python",
                   on_frame: Callable[[F.Frame], None] | None = None, max_frame: int = 1 << 20,
                   timeout_s: float = 10.0, headers: Mapping[str, str] | None = None,
                   versions: tuple[int, ...] = HELLO_VERSIONS, sock: socket.socket | None = None) -> Connection:
        """Connect, send ``hello`` with ``token`` and wait for ``welcome``. Raises ``Refused`` when
        the server answers with an error, ``wire.HandshakeError`` when it refuses the upgrade.
        ``token=None`` sends no ``hello`` (a test of what the server does without one)."""
        conn = cls(on_frame=on_frame, max_frame=max_frame)
        conn.wire = await Wire.connect(url, on_message=conn._message, on_close=conn._closed, max_size=max_frame,
                                       headers=headers, timeout_s=timeout_s, sock=sock)
        if token is None:
            return conn
        conn.send(F.Hello(token=token, versions=versions, client=client_name))
        try:
            first = await asyncio.wait_for(asyncio.shield(conn._first), timeout_s)
        except BaseException:
            conn.wire.abort()
            raise
        if isinstance(first, F.Error):
            await asyncio.wait_for(asyncio.shield(conn.wire.closed), timeout_s)
            raise Refused(first, conn.wire.close_code)
        if not isinstance(first, F.Welcome):
            conn.wire.abort()
            raise ConnectionError(f"expected welcome, got {first!r}")
        conn.welcome = first
        return conn

    # -- receiving ------------------------------------------------------------------------------

    def _message(self, data: bytes, text: bool) -> None:
        if text:
            if self.on_text is not None:
                self.on_text(data.decode("utf-8", "replace"))
            return
        try:
            frame = codec.decode_server(data, self.max_frame)
        except ProtocolError as exc:
            if self.on_undecodable is not None:
                self.on_undecodable(data, exc)
            return
        if not self._first.done():
            self._first.set_result(frame)
            if not isinstance(frame, F.Welcome):
                return
        if self.on_frame is not None:
            self.on_frame(frame)
        elif self.frames.full():
            self.frames.get_nowait()  # nobody reads: keep the newest
            self.frames.put_nowait(frame)
        else:
            self.frames.put_nowait(frame)

    def _closed(self, code: int, reason: str) -> None:
        if not self._first.done():
            self._first.set_exception(ConnectionError(f"closed before welcome: {code} {reason}"))

    async def recv(self, timeout_s: float | None = 10.0) -> F.Frame:
        """The next frame (queue mode). Raises ``TimeoutError``, or ``ConnectionError`` once the
        socket is closed and nothing is left to read."""
        if not self.frames.empty():
            return self.frames.get_nowait()
        assert self.wire is not None
        getter: asyncio.Future[F.Frame] = asyncio.ensure_future(self.frames.get())
        closed: asyncio.Future[F.Frame] = asyncio.get_running_loop().create_future()
        self.wire.closed.add_done_callback(lambda _: closed.done() or closed.cancel())
        try:
            done, _ = await asyncio.wait([getter, closed], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done and not getter.cancelled():
            return getter.result()
        if not self.frames.empty():
            return self.frames.get_nowait()
        if self.wire.closed.done():
            raise ConnectionError(f"closed: {self.wire.close_code} {self.wire.close_reason}")
        raise TimeoutError(f"no frame within {timeout_s}s")

    # -- sending ---------------------------------------------------------------------------------

    def next_id(self) -> int:
        self._next_id = self._next_id % (2**32 - 1) + 1
        return self._next_id

    def send(self, frame: F.Frame) -> None:
        assert self.wire is not None
        self.wire.send(codec.encode(frame))

    def send_bytes(self, data: bytes) -> None:
        """One binary message with any content: for tests of what the server refuses."""
        assert self.wire is not None
        self.wire.send(data)

    # -- closing ---------------------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        return None if self.wire is None else self.wire.close_code

    @property
    def closed(self) -> asyncio.Future[None]:
        assert self.wire is not None
        return self.wire.closed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.wire is not None:
            await self.wire.close(code, reason)
