"""One client socket on a node: its outbox, its writes and how it is closed.

``Connection`` is transport-free: it writes through a ``Transport`` (ws.py wraps the WebSocket), so
the hub runs the same with any socket layer and tests can drive it with a fake one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from protocol import codec
from protocol import frames as F
from protocol.errors import CloseCode, ProtocolError
from protocol.session import ServerSession
from realtime.config import HubConfig
from realtime.limits import FloodGuard, TokenBucket
from realtime.metrics import DISCONNECTS, OUTBOX_BYTES, OUTBOX_FRAMES, drops, frames_out
from realtime.outbox import Outbox, Verdict

log = structlog.get_logger(__name__)

CLOSE_WAIT_S = 1.0
_flushes = 0  # flush counter for metric sampling


class Transport(Protocol):
    """One socket. ``try_write`` writes frames now (one WebSocket message each, one system call
    for all of them) when the socket can take them, else returns False and the hub falls back to
    ``send_many``, which waits for the socket to drain."""

    def try_write(self, frames: list[bytes]) -> bool: ...

    async def send_many(self, frames: list[bytes]) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None: ...


class Owner(Protocol):
    """What a connection needs from the hub that holds it."""

    config: HubConfig

    def flush_soon(self, conn: Connection) -> None:
        """Flush ``conn`` at the end of this loop tick, with every other connection that queued."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the hub owns."""
        ...


@dataclass(eq=False, slots=True)
class Subscription:
    conn: Connection
    channel: str
    presence: bool
    offset: int = 0  # last durable offset queued to the client
    buffer: list[tuple[int, bytes]] | None = field(default_factory=list)  # None once live
    #: ``online:friends`` only: the ``online:<friend>`` channels whose presence it relays (hub.py).
    relays: set[str] | None = None


class Connection:
    """One authenticated socket on this node.

    Writing: frames queued during one loop tick are flushed together at the end of the tick (one
    hub callback flushes every connection that queued something), synchronously when the socket is
    writable (no task per idle connection). Only a socket under
    backpressure gets a writer task, which waits for it to drain; meanwhile the outbox absorbs, up
    to its bound."""

    __slots__ = ("__weakref__", "_log", "_scheduled", "_writer", "_written", "bucket", "closing",
                 "drain_after_ms", "flood", "heard", "hub", "id", "outbox", "pinged", "presence_channels",
                 "session", "spoke", "subs", "transport", "unanswered", "user")

    def __init__(self, hub: Owner, transport: Transport, session: ServerSession, conn_id: str, user: str) -> None:
        config = hub.config
        self.hub = hub
        self.transport = transport
        self.session = session
        self.id = conn_id
        self.user = user
        self.outbox = Outbox(config.outbox_bytes)
        self.subs: dict[str, Subscription] = {}
        self.presence_channels: set[str] = set()
        self.bucket = TokenBucket(config.frame_rate, config.frame_burst, time.monotonic())
        self.flood = FloodGuard(config.flood_limit)
        self.closing = False
        #: The ``reconnect_after_ms`` this socket's ``drain`` gave; its ``disconnect(4010)`` repeats it.
        self.drain_after_ms = 0
        # Liveness (SPEC §5.6, ``Hub.ping_quiet``): a frame heard from the client since the last
        # ping round, anything but a ping queued to it since then, whether that round pinged it,
        # and how many pings in a row went unanswered.
        self.heard = True  # its hello
        self.spoke = False  # the welcome went before this connection existed
        self.pinged = False
        self.unanswered = 0
        self._log: Any = None
        self._scheduled = False
        self._writer: asyncio.Task[None] | None = None
        self._written: asyncio.Event | None = None  # created by ``writable`` when someone waits

    @property
    def log(self) -> Any:
        if self._log is None:  # bound lazily: most connections never log
            self._log = log.bind(conn=self.id, user_id=self.user)
        return self._log

    def push(self, data: bytes, kind: str, *, ephemeral: bool = False) -> bool:
        """Queue encoded bytes. Never blocks; a client that cannot keep up is disconnected.
        Returns True when queued (``kind`` is counted by the caller for broadcasts)."""
        verdict = self.outbox.push(data, ephemeral=ephemeral)
        if verdict is Verdict.QUEUED:
            self.spoke = True
            if not self._scheduled and self._writer is None:
                self._scheduled = True
                self.hub.flush_soon(self)
            return True
        if verdict is Verdict.DROPPED:
            if not self.closing:
                drops("outbox_ephemeral").inc()
        else:
            drops("slow_consumer").inc()
            self.hub.spawn(self.close(CloseCode.SLOW_CONSUMER, "slow consumer: outbox full", slow=True))
        return False

    def send(self, frame: F.Frame) -> None:
        """Queue a reply or notice after the session checked it may be sent now."""
        try:
            self.session.send(frame)
        except ProtocolError:
            return  # e.g. an answer after the socket closed
        if self.push(codec.encode(frame), frame.TYPE, ephemeral=isinstance(frame, F.TypingNotice)):
            frames_out(frame.TYPE).inc()

    def flush(self) -> None:
        """Write what is queued (the hub calls this once per loop tick for every connection that
        queued something)."""
        self._scheduled = False
        if self._writer is not None:
            return  # the writer task takes what is queued when the socket drains
        frames = self.outbox.take()
        if not frames:
            return
        global _flushes
        _flushes += 1
        if not _flushes & 15:  # a 1-in-16 sample: two histogram observations would weigh on every flush
            OUTBOX_FRAMES.observe(len(frames))
            OUTBOX_BYTES.observe(sum(map(len, frames)))
        try:
            if self.transport.try_write(frames):
                if self._written is not None:
                    self._written.set()
                return
        except Exception as exc:
            self._write_failed(exc)
            return
        self._writer = asyncio.create_task(self._write_loop(frames), name=f"writer-{self.id}")

    async def _write_loop(self, frames: list[bytes]) -> None:
        try:
            while frames:
                await self.transport.send_many(frames)
                if self._written is not None:
                    self._written.set()
                frames = self.outbox.take()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away mid-write
            self._write_failed(exc)
        finally:
            self._writer = None

    def _write_failed(self, exc: BaseException) -> None:
        if not self.closing:
            self.log.debug("write_failed", error=type(exc).__name__)
        self.outbox.clear()
        self.outbox.closed = True

    async def writable(self, limit: int, timeout_s: float) -> bool:
        """Wait until at most ``limit`` bytes are queued (the writer caught up). False on timeout
        or when the connection is closing. Used to pace large replays instead of overflowing."""
        deadline = time.monotonic() + timeout_s
        if self._written is None:
            self._written = asyncio.Event()
        while self.outbox.bytes > limit and not self.closing:
            self._written.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._written.wait(), left)
            except TimeoutError:
                return False
        return not self.closing

    async def close(self, code: CloseCode, reason: str, *, reconnect: bool = True, slow: bool = False,
                    reconnect_after_ms: int = 0) -> None:
        """Send ``disconnect`` (with a resume hint when ``reconnect``) and close with ``code``.
        Bounded: a client that does not read is cut off after about ``2 * CLOSE_WAIT_S``."""
        if self.closing:
            return
        self.closing = True
        DISCONNECTS.labels(code.name.lower()).inc()
        self.log.info("disconnect", code=int(code), reason=reason)
        if slow:
            self.outbox.clear()  # what is queued is lost anyway; the client resumes from its offsets
        frame = F.Disconnect(code=int(code), reason=reason, reconnect=reconnect,
                             reconnect_after_ms=reconnect_after_ms)
        try:
            self.session.disconnect(code, reason, reconnect=reconnect, reconnect_after_ms=reconnect_after_ms)
        except ProtocolError:
            pass
        self.outbox.closed = False
        self.outbox.push(codec.encode(frame))
        self.outbox.closed = True
        self.flush()
        writer = self._writer
        if writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(writer), CLOSE_WAIT_S)
            except (TimeoutError, Exception):
                writer.cancel()
        try:
            await asyncio.wait_for(self.transport.close(int(code), reason[:120]), CLOSE_WAIT_S)
            if slow:
                # The close frame sits behind unread data: give the peer a moment, then cut it off.
                await asyncio.sleep(CLOSE_WAIT_S)
                self.transport.abort()
        except Exception as exc:
            self.log.debug("close_failed", error=type(exc).__name__)
            self.transport.abort()

    def stop_writer(self) -> None:
        self.outbox.closed = True
        if self._writer is not None:
            self._writer.cancel()
