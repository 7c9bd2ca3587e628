"""Whatever a client sends, the node answers with an error or serves it, never an internal error."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from typing import Any

import asyncpg
import msgpack

from feed.rooms import create_room
from protocol import frames as F
from protocol.errors import ErrorCode
from tests.conftest import RunningNode
from tests.realtime.conftest import make_post, make_user
from tests.realtime.wsclient import Client


def random_value(rng: random.Random, ids: list[str]) -> Any:
    return rng.choice([
        "", "x" * rng.randint(1, 80), rng.choice(ids), str(uuid.uuid4()), -1, 0, 2**40, -(2**40), True, None,
        1.5, [1, 2], {"a": 1}, b"\x00\xff", "room:" + rng.choice(ids), "post:" + rng.choice(ids),
        "online:" + rng.choice(ids), "user:" + rng.choice(ids), "🔥", "../../etc/passwd",
    ])


def typed_value(rng: random.Random, name: str, annotation: str, ids: list[str]) -> Any:
    by_name: dict[str, list[Any]] = {
        "ch": [f"{k}:{i}" for k in ("room", "post", "user", "online") for i in ids],
        "room": ids,
        "target_kind": ["post", "message", "comment"],
        "target_id": ids,
        "kind": ["read", "delivered", "seen"],
        "status": ["online", "away"],
        "emoji": ["🔥", "❤", "x" * 40],
        "cmid": ["c1", "c2", "c3"],
        "key": ["k1", "k2"],
        "body": ["hi", "hello " * 50],
        "versions": [[1], [2]],
    }
    if name in by_name and rng.random() < 0.9:
        return rng.choice(by_name[name])
    if annotation == "int":
        return rng.choice([-1, 0, 1, 3, 50, 2**31, rng.randint(1, 10**6)])
    if annotation == "bool":
        return rng.random() < 0.5
    if annotation == "str":
        kind = rng.choice(["room", "post", "user", "online"])
        return rng.choice([
            f"{kind}:{rng.choice(ids)}", rng.choice(ids), "🔥", "read", "delivered", "message", "post",
            "hello " * rng.randint(1, 5), str(uuid.uuid4()),
        ])
    return random_value(rng, ids)


async def test_random_frames_never_cause_internal_errors(running_node: RunningNode, db: asyncpg.Pool) -> None:
    rng = random.Random(1234)
    me, friend = await make_user(db), await make_user(db)
    room = await create_room(db, me, [friend])
    post = await make_post(db, friend)
    ids = [me, friend, room, post, "nope"]
    client = await Client.connect(running_node.ws_url, me)
    await client.subscribe(f"room:{room}")
    types = [cls for cls in F.CLIENT_FRAMES if cls is not F.Hello]
    sent = 0
    for i in range(240):
        cls = rng.choice(types)
        frame: dict[str, Any] = {"t": cls.TYPE}
        for spec in dataclasses.fields(cls):
            name = spec.name
            if rng.random() < 0.1:
                continue  # missing field
            if rng.random() < 0.15:
                frame[name] = random_value(rng, ids)  # wrong type, probably
            else:
                frame[name] = typed_value(rng, name, str(spec.type), ids)
        if "id" in frame and rng.random() < 0.7:
            frame["id"] = i + 1
        await client.send_bytes(msgpack.packb(frame))
        sent += 1
        if i % 40 == 39:  # stay under the frame rate limit (50/s, burst 100)
            await client.send(F.Ping(id=10_000 + i))
            await client.expect(F.Pong, lambda p, i=i: p.id == 10_000 + i)  # type: ignore[misc]
            await asyncio.sleep(0.8)
    await client.send(F.Ping(id=99_999))
    await client.expect(F.Pong, lambda p: p.id == 99_999)
    internal = [f for f in client.seen if isinstance(f, F.Error) and f.code in (ErrorCode.INTERNAL,)]
    assert not internal, internal[:5]
    assert sent == 240
    await client.close()
