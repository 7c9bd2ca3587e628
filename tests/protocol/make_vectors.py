"""Generate protocol/vectors.json: ``python -m tests.protocol.make_vectors``.

The committed file is the contract other implementations (the JS client, a Go load tester ...)
test against; ``test_vectors.py`` checks the codec against the committed file and never rewrites it.
Regenerate only when the protocol changes on purpose, and review the diff.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import msgpack

from protocol import frames as F
from protocol.codec import DEFAULT_MAX_FRAME, encode
from protocol.errors import ErrorCode

from .samples import MSG, SAMPLES

VECTORS_PATH = Path(__file__).resolve().parents[2] / "protocol" / "vectors.json"
FRAME_TYPES = {cls.TYPE: cls for cls in F.CLIENT_FRAMES + F.SERVER_FRAMES}


def to_json(frame: F.Frame) -> dict[str, Any]:
    """Every field (defaults included) plus ``t``; tuples as lists, nested frames as maps."""
    out: dict[str, Any] = {"t": frame.TYPE}
    for f in fields(frame):
        out[f.name] = _json_value(getattr(frame, f.name))
    return out


def _json_value(v: Any) -> Any:
    if isinstance(v, F.Frame):
        return to_json(v)
    if isinstance(v, tuple | list):
        return [_json_value(x) for x in v]
    return v


def from_json(obj: dict[str, Any]) -> F.Frame:
    """The inverse of ``to_json`` (what a test needs to compare a decoded frame with a vector)."""
    cls = FRAME_TYPES[obj["t"]]
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in obj:
            continue
        value = obj[f.name]
        if f.name == "messages":
            value = tuple(from_json(m) for m in value)
        elif f.name in ("versions", "users"):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _valid() -> list[tuple[str, str, F.Frame]]:
    out: list[tuple[str, str, F.Frame]] = []
    for cls, frame in SAMPLES.items():
        if cls in F.CLIENT_FRAMES:
            out.append((cls.TYPE, "client", frame))
        if cls in F.SERVER_FRAMES:
            out.append((cls.TYPE, "server", frame))
    out += [
        ("hello with defaults only", "client", F.Hello()),
        ("hello offering v1 and v2", "client", F.Hello(versions=(1, 2), token="tok")),
        ("sub without a position", "client", F.Subscribe(id=10, ch="user:u_17")),
        ("typing stopped", "client", F.Typing(ch="room:lobby", active=False)),
        ("react off", "client", F.React(id=11, target_kind="message", target_id="01JD6Y8M3Q", emoji="❤", on=False)),
        ("pub with nested data", "client", F.Publish(id=12, ch="room:x", key="k", data=[1, -2, 2.5, None, {"a": []}])),
        ("chat.history newest page", "client", F.ChatHistory(id=13, room="lobby")),
        ("sub.ok not recovered", "server", F.Subscribed(id=1, ch="room:lobby", epoch="e8", offset=0, recovered=False)),
        ("empty chat.page", "server", F.ChatPage(id=8, room="lobby")),
        ("chat.msg minimal", "server", F.ChatMessage("room:a", "e", 1, "m", "a", "u", "c", "b")),
        ("ack for a react without position", "server", F.Ack(id=5)),
        ("big room presence, truncated", "server", F.PresenceSnapshot(ch="online:all", count=12000, truncated=True)),
        ("error answering no request", "server", F.Error(code=ErrorCode.RATE_LIMITED, message="slow down")),
        ("disconnect without reconnect", "server", F.Disconnect(code=4001, reason="token revoked", reconnect=False)),
        # Issue 21: the cases the server got wrong, as they travel now.
        ("ping from the server on a quiet socket", "server", F.Ping(id=3)),
        ("error 400 answering an over-budget request with its id", "server",
         F.Error(code=ErrorCode.RATE_LIMITED, message="slow down: frame refused unread", id=7)),
        ("error 101 before the close 1009", "server",
         F.Error(code=ErrorCode.FRAME_TOO_LARGE, message="frame above 65536 bytes")),
        ("error 105 for a frame before welcome", "server",
         F.Error(code=ErrorCode.NOT_AUTHENTICATED, message="a frame before welcome: wait for welcome")),
        ("drain, during which chat keeps working", "server", F.Drain(reconnect_after_ms=1800)),
        ("disconnect 4010 repeating the drain's reconnect_after_ms", "server",
         F.Disconnect(code=4010, reason="node draining", reconnect_after_ms=1800)),
        ("pub on a room channel", "client",
         F.Publish(id=14, ch="room:0b7e7a52-2f3a-4c8e-9d5b-6f0c1d2e3a4b", key="k1", data={"x": 1})),
        ("event on a room channel, at the room's offset", "server",
         F.Event(ch="room:0b7e7a52-2f3a-4c8e-9d5b-6f0c1d2e3a4b", epoch="e8", offset=43, mid="m43", sender="u17",
                 data={"x": 1})),
        ("chat.receipt.ev with the stored offset", "server",
         F.ReceiptNotice(ch="room:0b7e7a52-2f3a-4c8e-9d5b-6f0c1d2e3a4b", room="0b7e7a52-2f3a-4c8e-9d5b-6f0c1d2e3a4b",
                         user="u17", offset=42, kind="read")),
    ]
    return out


def _m(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj)
    return data


def _deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


SUB = {"t": "sub", "id": 21, "ch": "room:lobby"}
SEND = {"t": "chat.send", "id": 22, "room": "lobby", "cmid": "c-9", "body": "hi"}
C, S = "client", "server"
BAD, TOO_LARGE, UNKNOWN, INVALID, WRONG = (
    ErrorCode.BAD_FRAME,
    ErrorCode.FRAME_TOO_LARGE,
    ErrorCode.UNKNOWN_TYPE,
    ErrorCode.INVALID_FIELD,
    ErrorCode.WRONG_DIRECTION,
)


def _invalid() -> list[tuple[str, str, bytes, ErrorCode, int]]:
    msg = msgpack.unpackb(encode(MSG))
    oversize = _m({"t": "pub", "id": 1, "ch": "room:a", "key": "k", "data": "x" * DEFAULT_MAX_FRAME})
    return [
        ("oversize frame (64 KiB + a few bytes)", C, oversize, TOO_LARGE, 0),
        ("empty message", C, b"", BAD, 0),
        ("not msgpack (0xc1 is never used)", C, b"\xc1", BAD, 0),
        ("not a map", C, _m(["sub", 1, "room:lobby"]), BAD, 0),
        ("map without t", C, _m({"id": 1}), BAD, 1),
        ("t is not a string", C, _m({"t": 1}), BAD, 0),
        ("unknown type", C, _m({"t": "sub.all", "id": 9}), UNKNOWN, 9),
        ("server frame sent by a client", C, encode(MSG), WRONG, 0),
        ("client frame sent by a server", S, encode(F.Subscribe(id=4, ch="room:a")), WRONG, 4),
        ("missing field", C, _m({"t": "sub", "id": 23}), INVALID, 23),
        ("wrong type: channel is an int", C, _m({**SUB, "ch": 5}), INVALID, 21),
        ("bad channel kind", C, _m({**SUB, "ch": "chan:lobby"}), INVALID, 21),
        ("bad channel name characters", C, _m({**SUB, "ch": "room:lob by"}), INVALID, 21),
        ("bool as int", C, _m({**SUB, "id": True}), INVALID, 0),
        ("float as int", C, _m({**SUB, "id": 21.0}), INVALID, 0),
        ("request id 0", C, _m({**SUB, "id": 0}), INVALID, 0),
        ("request id above uint32", C, _m({**SUB, "id": 2**32}), INVALID, 0),
        ("offset beyond int64", C, _m({**SUB, "epoch": "e", "offset": 2**64 - 1}), INVALID, 21),
        ("epoch without offset", C, _m({**SUB, "epoch": "e"}), INVALID, 21),
        ("int as bool", C, _m({**SUB, "presence": 1}), INVALID, 21),
        ("unknown field", C, _m({**SUB, "since": 3}), INVALID, 21),
        ("duplicate key", C, b"\x82\xa1t\xa4ping\xa1t\xa4ping", BAD, 0),
        ("non-string key", C, b"\x82\xa1t\xa4ping\x01\x02", BAD, 0),
        ("ext type", C, _m({"t": "ping", "id": msgpack.ExtType(5, b"x")}), BAD, 0),
        ("msgpack timestamp", C, _m({"t": "ping", "id": msgpack.Timestamp(0)}), BAD, 0),
        ("data nested 17 deep", C, _m({"t": "pub", "id": 24, "ch": "room:a", "key": "k", "data": _deep(17)}),
         INVALID, 24),
        ("trailing bytes", C, _m({"t": "ping"}) + b"\xc0", BAD, 0),
        ("truncated", C, _m({"t": "ping", "id": 1})[:-1], BAD, 0),
        ("invalid UTF-8", C, b"\x81\xa1t\xa2\xff\xfe", BAD, 0),
        ("empty chat body", C, _m({**SEND, "body": ""}), INVALID, 22),
        ("whitespace-only chat body", C, _m({**SEND, "body": " \n "}), INVALID, 22),
        ("chat body over 4000 characters", C, _m({**SEND, "body": "x" * 4001}), ErrorCode.MESSAGE_TOO_LARGE, 22),
        ("room given as a channel", C, _m({**SEND, "room": "room:lobby"}), INVALID, 22),
        ("emoji over 16 characters", C, _m({"t": "react", "id": 25, "target_kind": "post", "target_id": "p",
                                            "emoji": "x" * 17}), INVALID, 25),
        ("bad target kind", C, _m({"t": "react", "id": 26, "target_kind": "user", "target_id": "p", "emoji": "x"}),
         INVALID, 26),
        ("bad receipt kind", C, _m({"t": "chat.receipt", "room": "lobby", "offset": 1, "kind": "seen"}), INVALID, 0),
        ("hello without versions", C, _m({"t": "hello", "versions": [], "token": "x"}), INVALID, 0),
        ("bad media phase", S, _m({**msgpack.unpackb(encode(SAMPLES[F.MediaEvent])), "phase": "done"}), INVALID, 0),
        ("chat.msg channel does not match room", S, _m({**msg, "ch": "room:other"}), INVALID, 0),
        ("durable offset 0", S, _m({**msg, "offset": 0}), INVALID, 0),
        ("chat.page holding an event", S, _m({"t": "chat.page", "id": 8, "room": "lobby",
                                              "messages": [{**msg, "t": "event"}]}), INVALID, 8),
    ]  # fmt: skip


def build() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = []
    for name, direction, frame in _valid():
        vectors.append({"name": name, "direction": direction, "hex": encode(frame).hex(), "frame": to_json(frame)})
    for name, direction, data, code, request_id in _invalid():
        vectors.append(
            {"name": name, "direction": direction, "hex": data.hex(), "error": int(code), "request_id": request_id}
        )
    return vectors


def main() -> None:
    text = json.dumps(build(), ensure_ascii=False, indent=1) + "\n"
    VECTORS_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {VECTORS_PATH}")


if __name__ == "__main__":
    main()
