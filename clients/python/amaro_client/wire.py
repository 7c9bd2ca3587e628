"""One WebSocket connection, client side (RFC 6455), for the Amaro Than socket.

The platform's frames are small binary messages, many per second per socket; a load generator
holds thousands of sockets in one process. So this layer is an ``asyncio.Protocol`` that parses
frames as bytes arrive and hands each complete message to a callback: no task, queue or future per
message. What it implements of RFC 6455 is what a client needs: the opening handshake (the
server's ``Sec-WebSocket-Accept`` is checked), masked frames out, fragmented messages in, ping and
pong, the closing handshake with its code and reason, and a cap on message size. Extensions are
never negotiated. Masking uses the ``websockets`` library's C helper when present.

    wire = await Wire.connect("ws://127.0.0.1:8001/ws", on_message=handle)
    wire.send(payload)            # one binary message
    await wire.close()
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
from collections.abc import Callable, Mapping
from typing import cast
from urllib.parse import urlsplit

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the pure-Python fallback of the same library
    from websockets.utils import apply_mask

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEAD = 16 * 1024
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
NO_STATUS = 1005  # "no status code": a close frame without one
ABNORMAL = 1006  # the connection ended without a close frame


class HandshakeError(ConnectionError):
    """The server refused the upgrade (``status``, e.g. 403 or 503, and its ``retry_after_s``) or
    answered something that is not a WebSocket handshake."""

    def __init__(self, message: str, status: int = 0, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()  # noqa: S324 - RFC 6455


def frame_bytes(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """One frame as a client sends it (masked). ``mask=False`` and ``fin=False`` exist for tests of
    servers' refusals."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    bit = 0x80 if mask else 0
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, bit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


class Wire(asyncio.Protocol):
    """A connected WebSocket. ``on_message(data, text)`` gets each complete message (``text`` is
    True for a text message, whose ``data`` is its UTF-8 bytes); ``on_close(code, reason)`` is
    called once when the connection ends, however it ends."""

    def __init__(self, host: str, path: str, *, on_message: Callable[[bytes, bool], None],
                 on_close: Callable[[int, str], None] | None = None, max_size: int = 1 << 20,
                 headers: Mapping[str, str] | None = None) -> None:
        self.host, self.path = host, path
        self.on_message = on_message
        self.on_close = on_close
        self.max_size = max_size
        self.headers = dict(headers or {})
        self.transport: asyncio.Transport | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._key = base64.b64encode(os.urandom(16)).decode()
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._close_sent = False
        self._writable = asyncio.Event()
        self._writable.set()

    @classmethod
    async def connect(cls, url: str, *, on_message: Callable[[bytes, bool], None],
                      on_close: Callable[[int, str], None] | None = None, max_size: int = 1 << 20,
                      headers: Mapping[str, str] | None = None, timeout_s: float = 10.0,
                      sock: socket.socket | None = None) -> Wire:
        """Open a TCP connection to ``url`` (``ws://``), or use the connected ``sock``, and complete
        the handshake."""
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"a WebSocket URL is ws:// or wss://, got {url!r}")
        secure = parts.scheme == "wss"
        port = parts.port or (443 if secure else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        loop = asyncio.get_running_loop()
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"

        def factory() -> Wire:
            return cls(host, path, on_message=on_message, on_close=on_close, max_size=max_size, headers=headers)

        async with asyncio.timeout(timeout_s):
            if sock is not None:
                _, wire = await loop.create_connection(factory, sock=sock, ssl=secure or None,
                                                       server_hostname=parts.hostname if secure else None)
            else:
                _, wire = await loop.create_connection(factory, parts.hostname, port, ssl=secure or None)
            await wire.opened
        return wire

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {self._key}", "Sec-WebSocket-Version: 13",
                 *(f"{k}: {v}" for k, v in self.headers.items())]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("the connection closed during the handshake"))
        self._finish(ABNORMAL if self.close_code is None else self.close_code, self.close_reason)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    self._refuse(HandshakeError("the handshake response is too long"))
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[:end + 4]
            problem = self._check_handshake(head)
            if problem is not None:
                self._refuse(problem)
                return
            self._upgraded = True
            self.opened.set_result(None)
        self._parse()

    # -- frames in --------------------------------------------------------------------------------

    def _check_handshake(self, head: str) -> HandshakeError | None:
        status_line, _, rest = head.partition("\r\n")
        fields = {}
        for line in rest.split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
        if status != 101:
            retry = fields.get("retry-after", "")
            return HandshakeError(f"upgrade refused: {status_line!r}", status,
                                  float(retry) if retry.isdigit() else None)
        if fields.get("sec-websocket-accept") != accept_key(self._key):
            return HandshakeError("the server's Sec-WebSocket-Accept does not match the key", status)
        if fields.get("sec-websocket-extensions"):
            return HandshakeError("the server negotiated an extension this client did not offer", status)
        return None

    def _refuse(self, error: HandshakeError) -> None:
        if not self.opened.done():
            self.opened.set_exception(error)
        self.abort()

    def _parse(self) -> None:
        buf = self._buf
        pos, n = 0, len(buf)
        while n - pos >= 2 and self.transport is not None:
            b0, b1 = buf[pos], buf[pos + 1]
            size, head = b1 & 0x7F, 2
            if size == 126:
                if n - pos < 4:
                    break
                size, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif size == 127:
                if n - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if b1 & 0x80 or b0 & 0x70:
                self._fail(1002, "masked or extended frame from the server")
                return
            if size > self.max_size:
                self._fail(1009, "message too big")
                return
            if n - pos < head + size:
                break
            payload = bytes(buf[pos + head:pos + head + size])
            pos += head + size
            self._frame(bool(b0 & 0x80), b0 & 0x0F, payload)
        if pos:
            del buf[:pos]

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode == OP_BINARY or opcode == OP_TEXT:
            if self._fragments:
                self._fail(1002, "a new message began inside a fragmented one")
                return
            if fin:
                self._deliver(payload, opcode == OP_TEXT)
            else:
                self._fragments, self._fragment_text = [payload], opcode == OP_TEXT
        elif opcode == OP_CONT:
            if not self._fragments:
                self._fail(1002, "a continuation frame outside a message")
                return
            self._fragments.append(payload)
            if sum(map(len, self._fragments)) > self.max_size:
                self._fail(1009, "message too big")
            elif fin:
                data, self._fragments = b"".join(self._fragments), []
                self._deliver(data, self._fragment_text)
        elif opcode == OP_PING:
            self._write(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else NO_STATUS
            self.close_code, self.close_reason = code, payload[2:].decode("utf-8", "replace")
            if not self._close_sent:
                self._write(OP_CLOSE, payload[:2])
                self._close_sent = True
            if self.transport is not None:
                self.transport.close()
        elif opcode != OP_PONG:
            self._fail(1002, f"unknown opcode {opcode}")

    def _deliver(self, data: bytes, text: bool) -> None:
        if self._close_sent:
            return  # the closing handshake began: what still arrives is not for the application
        self.on_message(data, text)

    def _fail(self, code: int, reason: str) -> None:
        """A protocol violation by the server: close with ``code`` and drop the connection."""
        self.close_code, self.close_reason = code, reason
        if not self._close_sent:
            self._write(OP_CLOSE, code.to_bytes(2, "big") + reason.encode()[:100])
            self._close_sent = True
        self.abort()

    def _finish(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if not self.closed.done():
            self.closed.set_result(None)
            if self.on_close is not None:
                self.on_close(self.close_code, self.close_reason)

    # -- frames out -------------------------------------------------------------------------------

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame_bytes(opcode, payload))

    @property
    def open(self) -> bool:
        return self._upgraded and not self._close_sent and self.transport is not None \
            and not self.transport.is_closing()

    def send(self, data: bytes) -> None:
        """Queue one binary message. Raises ``ConnectionError`` once the connection is closing."""
        if not self.open:
            raise ConnectionError("the connection is closed")
        assert self.transport is not None
        self.transport.write(frame_bytes(OP_BINARY, data))

    def send_text(self, text: str) -> None:
        if not self.open:
            raise ConnectionError("the connection is closed")
        assert self.transport is not None
        self.transport.write(frame_bytes(OP_TEXT, text.encode()))

    def send_frame(self, frame: bytes) -> None:
        """Write bytes as they are: for tests that send what a well-behaved client never would."""
        if self.transport is not None:
            self.transport.write(frame)

    def pause_reading(self) -> None:
        """Stop reading the socket: the server's data waits in the network (a client that reads
        nothing, as a test of the server's backpressure)."""
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    async def drain(self) -> None:
        """Wait until the transport takes more (flow control)."""
        await self._writable.wait()

    async def close(self, code: int = 1000, reason: str = "", *, timeout_s: float = 2.0) -> None:
        """The closing handshake: send a close frame, wait for the server's (bounded), then end."""
        if not self._close_sent and self.transport is not None and not self.transport.is_closing():
            self._write(OP_CLOSE, code.to_bytes(2, "big") + reason.encode()[:120])
            self._close_sent = True
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout_s)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection now."""
        if self.transport is not None:
            self.transport.abort()
