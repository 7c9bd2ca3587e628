"""The SDK's WebSocket layer against a scripted server on loopback: the handshake is checked,
fragments are joined, pings answered, close codes kept, oversize messages refused."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from amaro_client.wire import HandshakeError, Wire, accept_key

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[None]]


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    head = bytes((first, n)) if n < 126 else struct.pack("!BBH", first, 126, n)
    return head + payload


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    size = b1 & 0x7F
    if size == 126:
        size = struct.unpack("!H", await reader.readexactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", await reader.readexactly(8))[0]
    assert b1 & 0x80, "client frames are masked"
    mask = await reader.readexactly(4)
    data = await reader.readexactly(size)
    return b0 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(data))


async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, accept: str | None = None) -> str:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
               if line.lower().startswith("sec-websocket-key"))
    writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Accept: {accept or accept_key(key)}\r\n\r\n").encode())
    return head


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[str]:
    done: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await script(reader, writer, "")
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        server.close()
        for task in done:
            task.cancel()
        await server.wait_closed()


async def test_fragments_are_joined_pings_answered_and_the_close_code_kept() -> None:
    got: list[tuple[bytes, bool]] = []
    pong: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> None:
        await handshake(reader, writer)
        writer.write(server_frame(0x2, b"hel", fin=False) + server_frame(0x0, b"lo", fin=False)
                     + server_frame(0x9, b"are you there")  # a ping between fragments
                     + server_frame(0x0, b"!") + server_frame(0x1, b"szia"))
        opcode, payload = await read_client_frame(reader)
        pong.set_result(payload if opcode == 0xA else b"not a pong")
        opcode, payload = await read_client_frame(reader)
        assert (opcode, payload) == (0x2, b"from the client")
        writer.write(server_frame(0x8, (4010).to_bytes(2, "big") + b"node draining"))
        opcode, payload = await read_client_frame(reader)
        assert opcode == 0x8 and payload[:2] == (4010).to_bytes(2, "big")

    async with scripted(script) as url:
        wire = await Wire.connect(url, on_message=lambda data, text: got.append((data, text)))
        assert await asyncio.wait_for(pong, 5) == b"are you there"
        wire.send(b"from the client")
        await asyncio.wait_for(wire.closed, 5)
    assert got == [(b"hello!", False), (b"szia", True)]
    assert (wire.close_code, wire.close_reason) == (4010, "node draining")
    with pytest.raises(ConnectionError):
        wire.send(b"too late")


async def test_a_wrong_accept_key_is_refused() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> None:
        await handshake(reader, writer, accept="not-the-right-key=")
        await reader.read()

    async with scripted(script) as url:
        with pytest.raises(HandshakeError, match="Sec-WebSocket-Accept"):
            await Wire.connect(url, on_message=lambda data, text: None)


async def test_a_refused_upgrade_carries_its_status_and_retry_after() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with scripted(script) as url:
        with pytest.raises(HandshakeError) as refused:
            await Wire.connect(url, on_message=lambda data, text: None)
    assert (refused.value.status, refused.value.retry_after_s) == (503, 3.0)


async def test_an_oversize_message_closes_with_1009_and_is_never_delivered() -> None:
    got: list[bytes] = []
    closing: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> None:
        await handshake(reader, writer)
        writer.write(server_frame(0x2, b"x" * 200))
        closing.set_result(await read_client_frame(reader))

    async with scripted(script) as url:
        wire = await Wire.connect(url, on_message=lambda data, text: got.append(data), max_size=100)
        opcode, payload = await asyncio.wait_for(closing, 5)
        await asyncio.wait_for(wire.closed, 5)
    assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, 1009)
    assert got == [] and wire.close_code == 1009


async def test_a_masked_server_frame_is_a_protocol_error() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> None:
        await handshake(reader, writer)
        writer.write(bytes((0x82, 0x80 | 1)) + b"\x00\x00\x00\x00" + b"x")
        await reader.read()

    async with scripted(script) as url:
        wire = await Wire.connect(url, on_message=lambda data, text: None)
        await asyncio.wait_for(wire.closed, 5)
    assert wire.close_code == 1002


async def test_a_silent_server_gives_a_timeout_not_a_hang() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> None:
        await reader.read()

    async with scripted(script) as url:
        with pytest.raises(TimeoutError):
            await Wire.connect(url, on_message=lambda data, text: None, timeout_s=0.3)
