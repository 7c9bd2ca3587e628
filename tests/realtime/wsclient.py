"""A test's view of one socket: the SDK's ``Connection`` (the one WebSocket client of the project)
plus the conveniences tests want: every frame kept in ``seen``, ``expect`` a frame of a kind."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

from amaro_client import Connection
from feed.tokens import TokenSigner
from protocol import frames as F
from tests.conftest import TEST_TOKEN_SECRET

T = TypeVar("T", bound=F.Frame)
SIGNER = TokenSigner(TEST_TOKEN_SECRET.encode(), ttl_s=3600)


def token_for(user: str) -> str:
    return SIGNER.issue(user, "test-session")


class Client:
    def __init__(self, conn: Connection, user: str) -> None:
        self.conn = conn
        self.user = user
        assert conn.welcome is not None
        self.welcome: F.Welcome = conn.welcome
        self.seen: list[F.Frame] = []  # every frame received, in order

    @classmethod
    async def connect(cls, url: str, user: str, *, sock: socket.socket | None = None, **kwargs: Any) -> Client:
        return cls(await Connection.open(url, token_for(user), sock=sock, **kwargs), user)

    @property
    def close_code(self) -> int | None:
        return self.conn.close_code

    def next_id(self) -> int:
        return self.conn.next_id()

    async def send(self, frame: F.Frame) -> None:
        self.conn.send(frame)

    async def send_bytes(self, data: bytes) -> None:
        self.conn.send_bytes(data)

    async def recv(self, timeout: float = 10.0) -> F.Frame:
        """The next frame; ``ConnectionError`` once the socket closed and nothing is left."""
        frame = await self.conn.recv(timeout)
        self.seen.append(frame)
        return frame

    async def expect(self, kind: type[T], pred: Callable[[T], bool] = lambda f: True,
                     timeout: float = 10.0) -> T:
        """The next frame of ``kind`` matching ``pred`` (others are skipped, kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind.TYPE} in {timeout}s")
            frame = await self.recv(left)
            if isinstance(frame, kind) and pred(frame):
                return frame

    async def seen_or_expect(self, kind: type[T], pred: Callable[[T], bool] = lambda f: True,
                             timeout: float = 10.0) -> T:
        """A frame of ``kind`` matching ``pred`` received already (in ``seen``), else the next one."""
        for frame in self.seen:
            if isinstance(frame, kind) and pred(frame):
                return frame
        return await self.expect(kind, pred, timeout)

    async def sync(self) -> None:
        """Ping and wait for the pong: whatever the server queued for this socket before has arrived."""
        await self.send(F.Ping(id=self.next_id()))
        await self.expect(F.Pong)

    async def subscribe(self, ch: str, *, epoch: str = "", offset: int = -1, presence: bool = False) -> F.Subscribed:
        rid = self.next_id()
        await self.send(F.Subscribe(id=rid, ch=ch, epoch=epoch, offset=offset, presence=presence))
        frame = await self.expect(F.Frame, lambda f: getattr(f, "id", None) == rid
                                  and isinstance(f, F.Subscribed | F.Error))
        assert isinstance(frame, F.Subscribed), frame
        return frame

    async def request(self, frame: F.Frame, timeout: float = 10.0) -> F.Frame:
        """Send a frame with an ``id`` and return the answer carrying that id."""
        rid: int = getattr(frame, "id", 0)
        await self.send(frame)
        return await self.expect(F.Frame, lambda f: getattr(f, "id", None) == rid
                                 and not isinstance(f, F.PresenceSnapshot | F.Ping), timeout)

    async def chat(self, room: str, cmid: str, body: str) -> F.ChatAck:
        answer = await self.request(F.ChatSend(id=self.next_id(), room=room, cmid=cmid, body=body))
        assert isinstance(answer, F.ChatAck), answer
        return answer

    async def close(self) -> None:
        await self.conn.close()
