"""A small test client: real WebSocket (the ``websockets`` library), frames through protocol.codec."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection

from feed.tokens import TokenSigner
from protocol import codec
from protocol import frames as F
from tests.conftest import TEST_TOKEN_SECRET

T = TypeVar("T", bound=F.Frame)
SIGNER = TokenSigner(TEST_TOKEN_SECRET.encode(), ttl_s=3600)


def token_for(user: str) -> str:
    return SIGNER.issue(user, "test-session")


class Client:
    def __init__(self, ws: ClientConnection, user: str, welcome: F.Welcome) -> None:
        self.ws = ws
        self.user = user
        self.welcome = welcome
        self.seen: list[F.Frame] = []  # every frame received, in order
        self._next = 0

    @classmethod
    async def connect(cls, url: str, user: str, **kwargs: Any) -> Client:
        ws = await websockets.connect(url, max_size=None, **kwargs)
        await ws.send(codec.encode(F.Hello(token=token_for(user))))
        welcome = codec.decode_server(await asyncio.wait_for(ws.recv(decode=False), 10), 1 << 20)
        assert isinstance(welcome, F.Welcome), welcome
        return cls(ws, user, welcome)

    def next_id(self) -> int:
        self._next += 1
        return self._next

    async def send(self, frame: F.Frame) -> None:
        await self.ws.send(codec.encode(frame))

    async def recv(self, timeout: float = 10.0) -> F.Frame:
        data = await asyncio.wait_for(self.ws.recv(decode=False), timeout)
        frame = codec.decode_server(data, 1 << 20)
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
                                 and not isinstance(f, F.PresenceSnapshot), timeout)

    async def chat(self, room: str, cmid: str, body: str) -> F.ChatAck:
        answer = await self.request(F.ChatSend(id=self.next_id(), room=room, cmid=cmid, body=body))
        assert isinstance(answer, F.ChatAck), answer
        return answer

    async def close(self) -> None:
        await self.ws.close()
