"""SPEC §5.3-5.5 and §12-13, error by error, with plain msgpack maps (no protocol package) where
the handshake is concerned: an oversize frame gets `error 101` before the close `1009`; a frame
sent before `welcome` is a handshake error (`105`, `4000`); a read receipt is broadcast with the
offset as stored (never past the room's last one); ids the server never issues are `301`, ids it
could have issued but the user may not use (or that name nothing) are `300`."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgpack
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from amaro_client.wire import frame_bytes
from feed.rooms import create_room
from protocol import frames as F
from protocol.errors import ErrorCode
from tests.conftest import RunningNode
from tests.realtime.conftest import make_user
from tests.realtime.wsclient import Client, token_for

OP_BINARY = 2


async def recv_map(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = msgpack.unpackb(await ws.recv(decode=False))
    return frame


async def close_code(ws: ClientConnection) -> int:
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await ws.recv()
    assert info.value.rcvd is not None
    return info.value.rcvd.code


async def test_oversize_frame_gets_error_101_then_close_1009(running_node: RunningNode, db: asyncpg.Pool) -> None:
    hello = {"t": "hello", "versions": [1], "token": token_for(await make_user(db))}
    big = msgpack.packb({"t": "ping", "id": 1, "pad": "x" * 70_000})
    async with websockets.connect(running_node.ws_url, max_size=None) as ws:
        await ws.send(msgpack.packb(hello))
        assert (await recv_map(ws))["t"] == "welcome"
        await ws.send(big)
        error = await recv_map(ws)
        assert error["t"] == "error" and error["code"] == 101
        assert await close_code(ws) == 1009
    async with websockets.connect(running_node.ws_url, max_size=None) as ws:  # as the first frame too
        await ws.send(big)
        error = await recv_map(ws)
        assert error["t"] == "error" and error["code"] == 101
        assert await close_code(ws) == 1009


async def test_a_frame_before_welcome_is_a_handshake_error(running_node: RunningNode, db: asyncpg.Pool) -> None:
    user = await make_user(db)
    hello = msgpack.packb({"t": "hello", "versions": [1], "token": token_for(user)})
    sub = msgpack.packb({"t": "sub", "id": 1, "ch": f"user:{user}"})
    async with websockets.connect(running_node.ws_url) as ws:
        # hello and sub in one write: the sub did not wait for welcome.
        ws.transport.write(frame_bytes(OP_BINARY, hello) + frame_bytes(OP_BINARY, sub))
        error = await recv_map(ws)
        assert error["t"] == "error" and error["code"] == 105, error
        assert await close_code(ws) == 4000


async def test_receipt_is_broadcast_with_the_stored_offset(running_node: RunningNode, db: asyncpg.Pool) -> None:
    a, b = await make_user(db), await make_user(db)
    room = await create_room(db, a, [b])
    ca, cb = await Client.connect(running_node.ws_url, a), await Client.connect(running_node.ws_url, b)
    await cb.subscribe(f"room:{room}")
    await ca.chat(room, "m1", "one")
    last = await ca.chat(room, "m2", "two")
    await ca.send(F.ChatReceipt(room=room, offset=2**63 - 1, kind="read"))
    notice = await cb.expect(F.ReceiptNotice)
    assert (notice.user, notice.kind, notice.offset) == (a, "read", last.offset)
    await ca.close()
    await cb.close()


async def test_ids_not_issued_are_301_and_ids_not_usable_are_300(running_node: RunningNode,
                                                                  db: asyncpg.Pool) -> None:
    me = await Client.connect(running_node.ws_url, await make_user(db))
    nowhere = str(uuid.uuid4())
    for ch, code in ((f"room:{nowhere}", ErrorCode.PERMISSION_DENIED),
                     (f"post:{nowhere}", ErrorCode.PERMISSION_DENIED),
                     (f"user:{nowhere}", ErrorCode.PERMISSION_DENIED),
                     ("room:lobby", ErrorCode.CHANNEL_NOT_FOUND),
                     (f"room:{nowhere.upper()}", ErrorCode.CHANNEL_NOT_FOUND),
                     ("online:FRIENDS", ErrorCode.CHANNEL_NOT_FOUND)):
        answer = await me.request(F.Subscribe(id=me.next_id(), ch=ch))
        assert isinstance(answer, F.Error) and answer.code == code, (ch, answer)
    for room, code in ((nowhere, ErrorCode.PERMISSION_DENIED), ("lobby", ErrorCode.CHANNEL_NOT_FOUND)):
        sent = await me.request(F.ChatSend(id=me.next_id(), room=room, cmid="c", body="hi"))
        assert isinstance(sent, F.Error) and sent.code == code, (room, sent)
        page = await me.request(F.ChatHistory(id=me.next_id(), room=room))
        assert isinstance(page, F.Error) and page.code == code, (room, page)
    await me.close()
