"""A lean pipelining Redis connection for the hub's hot paths (publish, route, inbox, leases).

Every chat send costs a hub a few Redis round trips. Through redis-py each one also pays for a
pool checkout with its condition and events, the retry wrapper, a Python command packer and a
parse call per reply, which together cost the event loop several times the CPU of the system
calls themselves (BENCHMARKS.md, "Redis client CPU per round trip"). This connection keeps the
system calls and drops the rest: commands are packed by hiredis in C, written in one
``transport.write``, and the replies, parsed by hiredis as they arrive, resolve one future per
pipeline, in order (Redis answers in order, so one connection carries any number of concurrent
pipelines).

What it is not: a general client. No pool, no pub/sub, no RESP3, no cluster redirects. Everything
else keeps using redis-py (``amaro.infra.connect.open_redis``); this takes its address, credentials and
database from such a client (``RespConnection.like``).

Failures. An error reply is a ``redis.exceptions.ResponseError`` (``NoScriptError`` for
``NOSCRIPT``), returned in place by ``pipeline`` and raised by ``call``. A lost connection fails
every waiting call with ``redis.exceptions.ConnectionError``; the next call connects again. A
caller that gives up (cancelled, timed out) leaves its replies to be read and dropped, except on a
``blocking`` connection (``XREAD BLOCK``), which is closed instead so the next read is not queued
behind the abandoned one. A server that stops answering fails each call after ``timeout_s`` (10 s,
the socket timeout the redis-py clients use) and closes the connection; a blocking connection has no timeout
of its own (its callers bound each read by the block time).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError

Arg = str | bytes | int | float
Command = Sequence[Arg]

CONNECT_TIMEOUT_S = 5.0
REPLY_TIMEOUT_S = 10.0


def _reply_error(message: str) -> Exception:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


class _Waiter:
    __slots__ = ("future", "left", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], count: int) -> None:
        self.future = future
        self.left = count
        self.replies: list[Any] = []


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(protocolError=InvalidResponse, replyError=_reply_error)
        self.waiters: deque[_Waiter] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        reader, waiters = self.reader, self.waiters
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                if not waiters:
                    raise InvalidResponse("a reply nobody asked for")
                waiter = waiters[0]
                waiter.replies.append(reply)
                waiter.left -= 1
                if waiter.left == 0:
                    waiters.popleft()
                    if not waiter.future.done():
                        waiter.future.set_result(waiter.replies)
        except InvalidResponse as exc:  # the stream is out of step: nothing later can be trusted
            self.fail(RedisConnectionError(f"Redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Redis connection lost: {exc}" if exc else "Redis connection closed"))

    def fail(self, error: BaseException) -> None:
        if self.lost is None:
            self.lost = error
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


class RespConnection:
    """One Redis connection, connected on first use and again after a loss."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 6379, path: str | None = None, db: int = 0,
                 username: str | None = None, password: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 blocking: bool = False, timeout_s: float | None = REPLY_TIMEOUT_S) -> None:
        self._address = (host, port, path, ssl_context)
        self._setup: list[tuple[Arg, ...]] = []
        if password is not None:
            self._setup.append(("AUTH", username, password) if username else ("AUTH", password))
        if db:
            self._setup.append(("SELECT", db))
        self.blocking = blocking
        self.timeout_s = None if blocking else timeout_s
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def like(cls, client: aioredis.Redis, *, blocking: bool = False) -> RespConnection:
        """A connection to the server, database and account of a redis-py client."""
        pool = client.connection_pool
        kw = pool.connection_kwargs
        context: ssl.SSLContext | None = None
        if issubclass(pool.connection_class, aioredis.SSLConnection):
            context = ssl.create_default_context(cafile=kw.get("ssl_ca_certs"))
            if kw.get("ssl_certfile"):
                context.load_cert_chain(kw["ssl_certfile"], kw.get("ssl_keyfile"), kw.get("ssl_password"))
            if kw.get("ssl_check_hostname") is False:
                context.check_hostname = False
            if kw.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        return cls(host=kw.get("host", "127.0.0.1"), port=int(kw.get("port", 6379)), path=kw.get("path"),
                   db=int(kw.get("db", 0) or 0), username=kw.get("username"), password=kw.get("password"),
                   ssl_context=context, blocking=blocking)

    async def _connected(self) -> _Protocol:
        proto = self._proto
        if proto is not None and proto.lost is None:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            proto = self._proto
            if proto is not None and proto.lost is None:
                return proto
            loop = asyncio.get_running_loop()
            host, port, path, context = self._address
            fresh: _Protocol | None = None
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    if path is not None:
                        _, fresh = await loop.create_unix_connection(_Protocol, path)
                    else:
                        _, fresh = await loop.create_connection(_Protocol, host, port, ssl=context)
                    if self._setup:
                        for reply in await self._send(fresh, self._setup):
                            if isinstance(reply, Exception):
                                raise reply
            except BaseException as exc:
                if fresh is not None:  # half set up (refused, timed out, cancelled): never reused
                    fresh.fail(RedisConnectionError("the connection setup did not finish"))
                if isinstance(exc, (OSError, TimeoutError)):
                    raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
                raise
            self._proto = fresh
            return fresh

    async def _send(self, proto: _Protocol, commands: Sequence[Command]) -> list[Any]:
        if proto.lost is not None:
            raise proto.lost
        assert proto.transport is not None
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        proto.waiters.append(_Waiter(future, len(commands)))
        proto.transport.write(b"".join([hiredis.pack_command(tuple(cmd)) for cmd in commands]))  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(self.timeout_s):
                return await future
        except TimeoutError:
            proto.fail(RedisConnectionError(f"Redis did not answer in {self.timeout_s} s"))
            raise
        except asyncio.CancelledError:
            if self.blocking:  # its reply may be seconds away: later reads must not queue behind it
                proto.fail(RedisConnectionError("an abandoned blocking read closed the connection"))
            raise

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one write; their replies in order, error replies in place."""
        if not commands:
            return []
        return await self._send(await self._connected(), commands)

    async def call(self, *command: Arg) -> Any:
        """One command; an error reply is raised."""
        (reply,) = await self._send(await self._connected(), (command,))
        if isinstance(reply, Exception):
            raise reply
        return reply

    def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None:
            proto.fail(RedisConnectionError("closed"))


def evalsha_command(sha: str, keys: Sequence[Arg], args: Sequence[Arg]) -> list[Arg]:
    return ["EVALSHA", sha, len(keys), *keys, *args]


async def run_script(conn: RespConnection, script: AsyncScript, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
    """``EVALSHA`` of a script registered with redis-py, loading it on ``NOSCRIPT`` (after a Redis
    restart or flush)."""
    (reply,) = await run_scripts(conn, script, ((keys, args),))
    return reply


def raising(replies: list[Any]) -> list[Any]:
    """``replies`` of a pipeline, or its first error reply raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def run_scripts(conn: RespConnection, script: AsyncScript,
                      calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]]) -> list[Any]:
    """``EVALSHA`` once per ``(keys, args)`` in one pipeline; replies in order. On ``NOSCRIPT`` the
    script is loaded and the calls that missed it run again (a call that got ``NOSCRIPT`` did
    nothing). Any other error reply is raised, after the whole pipeline has run."""
    commands = [evalsha_command(script.sha, k, a) for k, a in calls]
    replies = await conn.pipeline(commands)
    missed = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missed:
        source = script.script
        await conn.call("SCRIPT", "LOAD", bytes(source) if isinstance(source, memoryview) else source)
        for i, reply in zip(missed, await conn.pipeline([commands[i] for i in missed]), strict=True):
            replies[i] = reply
    return raising(replies)
