"""The socket handshake as a stranger's client sees it: plain msgpack maps, written from SPEC.md only
(no import of the protocol package), against a real node."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import msgpack
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from feed.tokens import TokenSigner
from tests.conftest import TEST_TOKEN_SECRET, RunningNode


async def signup(node: RunningNode) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=node.http_url) as http:
        name = f"spec{secrets.token_hex(4)}"
        created = await http.post("/api/v1/auth/signup", json={"username": name, "password": "a-long-passphrase-1"})
        assert created.status_code == 201
        logged = await http.post("/api/v1/auth/login", json={"username": name, "password": "a-long-passphrase-1"})
        assert logged.status_code == 200
        body: dict[str, Any] = logged.json()
        return body


async def recv(ws: ClientConnection) -> dict[str, Any]:
    data = await ws.recv(decode=False)
    frame: dict[str, Any] = msgpack.unpackb(data)
    return frame


async def expect_close(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await ws.recv()
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


async def test_spec_client_signs_up_authenticates_and_pings(running_node: RunningNode) -> None:
    grant = await signup(running_node)
    async with websockets.connect(running_node.ws_url) as ws:
        hello = {"t": "hello", "versions": [1], "token": grant["access_token"], "client": "spec/1"}
        await ws.send(msgpack.packb(hello))
        welcome = await recv(ws)
        assert welcome["t"] == "welcome" and welcome["version"] == 1
        assert welcome["user"] == grant["user"]["id"]
        assert welcome["max_frame"] == 65536
        await ws.send(msgpack.packb({"t": "ping", "id": 42}))
        assert await recv(ws) == {"t": "pong", "id": 42}


async def test_bad_frames_get_error_frames_and_the_socket_keeps_serving(running_node: RunningNode) -> None:
    grant = await signup(running_node)
    async with websockets.connect(running_node.ws_url) as ws:
        await ws.send(msgpack.packb({"t": "hello", "versions": [1], "token": grant["access_token"]}))
        assert (await recv(ws))["t"] == "welcome"
        cases = [
            (b"\xc1", 100),  # not msgpack
            (msgpack.packb([1, 2]), 100),  # not a map
            (msgpack.packb({"t": "teleport", "id": 1}), 102),  # unknown type
            (msgpack.packb({"t": "ping", "id": "x"}), 103),  # ill-typed field
            (msgpack.packb({"t": "chat.msg", "ch": "room:a"}), 107),  # a server frame from a client
            (msgpack.packb({"t": "hello", "versions": [1], "token": grant["access_token"]}), 106),
        ]
        for data, code in cases:
            await ws.send(data)
            error = await recv(ws)
            assert error["t"] == "error" and error["code"] == code, (data, error)
        await ws.send("text is not a frame")
        assert (await recv(ws))["code"] == 100
        await ws.send(msgpack.packb({"t": "ping", "id": 1}))
        assert await recv(ws) == {"t": "pong", "id": 1}


async def test_oversize_frame_closes_with_message_too_big(running_node: RunningNode) -> None:
    grant = await signup(running_node)
    async with websockets.connect(running_node.ws_url, max_size=None) as ws:
        await ws.send(msgpack.packb({"t": "hello", "versions": [1], "token": grant["access_token"]}))
        assert (await recv(ws))["t"] == "welcome"
        await ws.send(msgpack.packb({"t": "ping", "id": 1, "pad": "x" * 70_000}))
        code, _ = await expect_close(ws)
        assert code == 1009


@pytest.mark.parametrize(
    ("hello", "close_code", "error_code"),
    [
        ({"t": "hello", "versions": [1], "token": "at1.not.valid"}, 4001, 200),
        ({"t": "hello", "versions": [99], "token": "x"}, 4003, 104),
        ({"t": "ping", "id": 1}, 4000, 105),
        ({"t": "hello"}, 4001, 200),
    ],
)
async def test_broken_handshakes_close_with_stable_codes(running_node: RunningNode, hello: dict[str, Any],
                                                         close_code: int, error_code: int) -> None:
    async with websockets.connect(running_node.ws_url) as ws:
        await ws.send(msgpack.packb(hello))
        error = await recv(ws)
        assert error["t"] == "error" and error["code"] == error_code
        code, _ = await expect_close(ws)
        assert code == close_code


async def test_expired_token_closes_with_token_expired(running_node: RunningNode) -> None:
    signer = TokenSigner(TEST_TOKEN_SECRET.encode(), ttl_s=60)
    token = signer.issue("00000000-0000-0000-0000-000000000001", "s", now=time.time() - 120)
    async with websockets.connect(running_node.ws_url) as ws:
        await ws.send(msgpack.packb({"t": "hello", "versions": [1], "token": token}))
        assert (await recv(ws))["code"] == 201
        assert (await expect_close(ws))[0] == 4002


async def test_foreign_origin_is_refused(running_node: RunningNode) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(running_node.ws_url, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert info.value.response.status_code == 403


async def test_token_in_url_is_not_a_credential(running_node: RunningNode) -> None:
    grant = await signup(running_node)
    async with websockets.connect(f"{running_node.ws_url}?token={grant['access_token']}") as ws:
        await ws.send(msgpack.packb({"t": "ping", "id": 1}))
        assert (await recv(ws))["code"] == 105
        assert (await expect_close(ws))[0] == 4000
