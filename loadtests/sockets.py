"""A load generator's socket: the SDK's ``Wire`` carrying frames as plain msgpack maps.

Frames stay maps rather than the SDK's frame objects: a generator holds thousands of sockets on
the same two cores as the hubs it measures, so it must spend less per frame than they do. Answers
are matched to requests by ``id`` (a callback or an awaited future); the hub's protocol pings are
answered here; every other frame goes to ``on_frame`` with its arrival time, so a tally costs no
task or queue per frame.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgpack

from amaro_client import Wire

Frame = dict[str, Any]
OnFrame = Callable[[Frame, int], None]  # (frame, arrival time in ns since the epoch)


def settle(future: asyncio.Future[Frame]) -> Callable[[Frame], None]:
    """An answer callback that completes ``future`` (once)."""

    def answer(frame: Frame) -> None:
        if not future.done():
            future.set_result(frame)

    return answer


class Socket:
    def __init__(self, on_frame: OnFrame | None = None) -> None:
        self.on_frame = on_frame
        self.wire: Wire | None = None
        self._answers: dict[int, Callable[[Frame], None]] = {}
        self._next_id = 0
        self._welcome: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, url: str, token: str, *, on_frame: OnFrame | None = None, timeout_s: float = 30.0,
                   max_size: int = 1 << 20) -> Socket:
        """Connect, send ``hello`` and wait for ``welcome``; ``ConnectionError`` if refused."""
        sock = cls(on_frame)
        sock.wire = await Wire.connect(url, on_message=sock._message, on_close=sock._closed, max_size=max_size,
                                       timeout_s=timeout_s)
        sock.send({"t": "hello", "versions": [1], "token": token})
        try:
            first = await asyncio.wait_for(asyncio.shield(sock._welcome), timeout_s)
        except BaseException:
            sock.wire.abort()
            raise
        if first.get("t") != "welcome":
            sock.wire.abort()
            raise ConnectionError(f"handshake refused: {first}")
        return sock

    def _message(self, data: bytes, text: bool) -> None:
        now_ns = time.time_ns()
        frame = msgpack.unpackb(data)
        if not self._welcome.done():
            self._welcome.set_result(frame)
            return
        rid = frame.get("id", 0)
        if frame.get("t") == "ping":  # the hub pings quiet sockets and closes those that never answer
            self.send({"t": "pong", "id": rid})
            return
        if rid:
            answer = self._answers.pop(rid, None)
            if answer is not None:
                answer(frame)
                return
        if self.on_frame is not None:
            self.on_frame(frame, now_ns)

    def _closed(self, code: int, reason: str) -> None:
        if not self._welcome.done():
            self._welcome.set_exception(ConnectionError(f"closed during the handshake: {code} {reason}"))
        for answer in list(self._answers.values()):
            answer({"t": "error", "code": 501, "message": f"socket closed: {code}"})
        self._answers.clear()

    @property
    def is_open(self) -> bool:
        return self.wire is not None and self.wire.open

    def send(self, frame: Frame) -> None:
        assert self.wire is not None
        self.wire.send(msgpack.packb(frame))

    def request(self, frame: Frame, answer: Callable[[Frame], None]) -> int:
        """Send ``frame`` with a fresh ``id``; ``answer`` gets the frame that answers it (an
        ``error`` frame with code 501 if the socket closes first)."""
        self._next_id += 1
        frame["id"] = self._next_id
        self._answers[self._next_id] = answer
        self.send(frame)
        return self._next_id

    async def ask(self, frame: Frame, wait_s: float = 30.0) -> Frame:
        """``request``, awaited."""
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.request(frame, settle(future))
        return await asyncio.wait_for(future, wait_s)

    async def close(self) -> None:
        if self.wire is not None:
            await self.wire.close()
