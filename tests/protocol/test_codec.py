"""The codec: round trips, every validation rule, and "only ProtocolError ever escapes"."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import frames as F
from protocol.codec import DEFAULT_MAX_FRAME, decode_client, decode_server, encode
from protocol.errors import ErrorCode, FrameTooLarge, MalformedFrame, ProtocolError

from .samples import MSG, SAMPLES
from .strategies import ALL_FRAMES, any_value, client_frames, frames_of, server_frames

pack = msgpack.packb
CLIENT_ONLY = [cls for cls in F.CLIENT_FRAMES if cls not in F.SERVER_FRAMES]
SERVER_ONLY = [cls for cls in F.SERVER_FRAMES if cls not in F.CLIENT_FRAMES]


def decode_any(data: bytes) -> F.Frame:
    cls_name = msgpack.unpackb(data)["t"]
    if cls_name in {c.TYPE for c in F.CLIENT_FRAMES}:
        return decode_client(data)
    return decode_server(data)


def raw(frame: F.Frame) -> dict[str, Any]:
    result: dict[str, Any] = msgpack.unpackb(encode(frame))
    return result


def code_of(data: bytes, decoder: Any = decode_client) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        decoder(data)
    return info.value.code


# --------------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------------


def test_encode_puts_t_first_and_omits_defaults() -> None:
    assert list(raw(F.Typing(ch="room:a"))) == ["t", "ch"]
    assert raw(F.Typing(ch="room:a", active=False)) == {"t": "typing", "ch": "room:a", "active": False}
    assert raw(F.Ping()) == {"t": "ping"}
    assert raw(F.Ack(id=3)) == {"t": "ack", "id": 3}


def test_encode_nests_chat_messages_as_maps_with_their_type() -> None:
    page = raw(F.ChatPage(id=1, room="lobby", messages=(MSG,)))
    assert page["messages"][0]["t"] == "chat.msg"
    assert page["messages"][0]["body"] == MSG.body


def test_encode_refuses_what_is_not_a_frame() -> None:
    with pytest.raises(KeyError):
        encode(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", ALL_FRAMES, ids=lambda c: c.TYPE)
def test_every_sample_round_trips(cls: type[F.Frame]) -> None:
    frame = SAMPLES[cls]
    assert decode_any(encode(frame)) == frame


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_FRAMES, ids=lambda c: c.TYPE)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_valid_frame_round_trips(cls: type[F.Frame], data: st.DataObject) -> None:
    frame = data.draw(frames_of(cls))
    wire = encode(frame)
    decoded = decode_client(wire) if cls in F.CLIENT_FRAMES else decode_server(wire)
    assert decoded == frame
    assert encode(decoded) == wire


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    for decoder in (decode_client, decode_server):
        try:
            decoder(data)
        except ProtocolError:
            pass


TYPES = st.sampled_from([cls.TYPE for cls in ALL_FRAMES] + ["nope", ""])
NAMES = st.sampled_from(sorted({n for cls in ALL_FRAMES for n in cls.__dataclass_fields__} | {"t", "x"}))


@st.composite
def frame_like_maps(draw: st.DrawFn) -> dict[str, Any]:
    """Maps that look like frames: a known type and field names with arbitrary values."""
    out: dict[str, Any] = {"t": draw(TYPES)}
    for name in draw(st.lists(NAMES, max_size=8)):
        out[name] = draw(any_value | st.integers() | st.lists(any_value, max_size=3))
    return out


@settings(max_examples=400, deadline=None)
@given(frame_like_maps() | any_value)
def test_arbitrary_msgpack_values_raise_only_protocol_errors(value: Any) -> None:
    try:
        data = pack(value)
    except (OverflowError, ValueError):  # ints msgpack itself cannot carry
        return
    for decoder in (decode_client, decode_server):
        try:
            frame = decoder(data)
        except ProtocolError:
            continue
        assert isinstance(frame, F.Frame)


@settings(max_examples=300, deadline=None)
@given(client_frames | server_frames, st.data())
def test_mutated_valid_frames_raise_only_protocol_errors(frame: F.Frame, data: st.DataObject) -> None:
    wire = bytearray(encode(frame))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        i = data.draw(st.integers(0, max(len(wire) - 1, 0)))
        if op == "flip" and wire:
            wire[i] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            wire.insert(i, data.draw(st.integers(0, 255)))
        elif op == "delete" and wire:
            del wire[i]
        else:
            del wire[i:]
    for decoder in (decode_client, decode_server):
        try:
            decoder(bytes(wire))
        except ProtocolError:
            pass


@settings(max_examples=200, deadline=None)
@given(client_frames | server_frames, st.data())
def test_replaced_field_values_raise_only_protocol_errors(frame: F.Frame, data: st.DataObject) -> None:
    m = raw(frame)
    names = sorted(m)
    name = data.draw(st.sampled_from(names))
    m[name] = data.draw(any_value | st.integers(-(2**63), 2**64 - 1))
    for decoder in (decode_client, decode_server):
        try:
            decoder(pack(m))
        except ProtocolError:
            pass


# --------------------------------------------------------------------------------------------------
# Frame level
# --------------------------------------------------------------------------------------------------


def test_size_cap_is_checked_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed an oversize frame")

    monkeypatch.setattr(msgpack, "unpackb", no_parse)
    with pytest.raises(FrameTooLarge) as info:
        decode_client(b"\xc1" * (DEFAULT_MAX_FRAME + 1))
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE


def test_size_cap_is_exact_and_configurable() -> None:
    ok = encode(F.Publish(id=1, ch="room:a", key="k", data="x" * 100))
    assert decode_client(ok, max_size=len(ok)) is not None
    assert code_of(ok, lambda d: decode_client(d, max_size=len(ok) - 1)) == ErrorCode.FRAME_TOO_LARGE


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.BAD_FRAME),
        (b"\xc1", ErrorCode.BAD_FRAME),  # never-used msgpack byte
        (pack([1, 2]), ErrorCode.BAD_FRAME),
        (pack("ping"), ErrorCode.BAD_FRAME),
        (pack({"id": 1}), ErrorCode.BAD_FRAME),  # no t
        (pack({"t": 1}), ErrorCode.BAD_FRAME),
        (pack({"t": "nope"}), ErrorCode.UNKNOWN_TYPE),
        (pack({"t": "welcome"}), ErrorCode.WRONG_DIRECTION),
        (pack({"t": "ping"}) + b"\xc0", ErrorCode.BAD_FRAME),  # trailing bytes
        (pack({"t": "ping"})[:-1], ErrorCode.BAD_FRAME),  # truncated
        (b"\x82\xa1t\xa4ping\xa1t\xa4ping", ErrorCode.BAD_FRAME),  # duplicate key
        (b"\x82\xa1t\xa4ping\x01\x02", ErrorCode.BAD_FRAME),  # int key
        (b"\x81\xc4\x01t\xa4ping", ErrorCode.BAD_FRAME),  # bin key
        (b"\x81\xa1t\xa2\xff\xfe", ErrorCode.BAD_FRAME),  # invalid UTF-8
        (pack({"t": "ping", "id": msgpack.ExtType(1, b"")}), ErrorCode.BAD_FRAME),
        (pack({"t": "ping", "id": msgpack.Timestamp(1)}), ErrorCode.BAD_FRAME),
        (b"\x91" * 5000, ErrorCode.BAD_FRAME),  # nested past msgpack's own stack
        (b"\xdd\xff\xff\xff\xff", ErrorCode.BAD_FRAME),  # array header claiming 4G items
    ],
)
def test_frame_level_errors(data: bytes, code: ErrorCode) -> None:
    assert code_of(data) == code


def test_wrong_direction_both_ways() -> None:
    for cls in SERVER_ONLY:
        assert code_of(encode(SAMPLES[cls]), decode_client) == ErrorCode.WRONG_DIRECTION
    for cls in CLIENT_ONLY:
        assert code_of(encode(SAMPLES[cls]), decode_server) == ErrorCode.WRONG_DIRECTION
    for cls in (F.Ping, F.Pong):
        assert decode_client(encode(SAMPLES[cls])) == decode_server(encode(SAMPLES[cls]))


def test_errors_carry_the_request_id_when_readable() -> None:
    with pytest.raises(MalformedFrame) as info:
        decode_client(pack({"t": "sub", "id": 77, "ch": "nope"}))
    assert (info.value.code, info.value.request_id) == (ErrorCode.INVALID_FIELD, 77)
    with pytest.raises(MalformedFrame) as info:
        decode_client(pack({"t": "what", "id": 78}))
    assert (info.value.code, info.value.request_id) == (ErrorCode.UNKNOWN_TYPE, 78)
    with pytest.raises(MalformedFrame) as info:
        decode_client(pack({"t": "sub", "id": True, "ch": "room:a"}))
    assert info.value.request_id == 0


# --------------------------------------------------------------------------------------------------
# Field level
# --------------------------------------------------------------------------------------------------

SUB = {"t": "sub", "id": 1, "ch": "room:a"}
SEND = {"t": "chat.send", "id": 1, "room": "a", "cmid": "c", "body": "hi"}


def with_(base: dict[str, Any], **changes: Any) -> bytes:
    m = {**base, **changes}
    data: bytes = pack({k: v for k, v in m.items() if v is not ...})
    return data


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (with_(SUB, id=True), ErrorCode.INVALID_FIELD),  # bool is not an int
        (with_(SUB, id=1.0), ErrorCode.INVALID_FIELD),
        (with_(SUB, id=0), ErrorCode.INVALID_FIELD),  # request ids start at 1
        (with_(SUB, id=2**32), ErrorCode.INVALID_FIELD),
        (with_(SUB, id=-1), ErrorCode.INVALID_FIELD),
        (with_(SUB, id=...), ErrorCode.INVALID_FIELD),  # missing
        (with_(SUB, ch="room:"), ErrorCode.INVALID_FIELD),
        (with_(SUB, ch="lobby"), ErrorCode.INVALID_FIELD),
        (with_(SUB, ch="chan:a"), ErrorCode.INVALID_FIELD),
        (with_(SUB, ch="room:a b"), ErrorCode.INVALID_FIELD),
        (with_(SUB, ch="room:a\n"), ErrorCode.INVALID_FIELD),
        (with_(SUB, ch="room:" + "a" * 65), ErrorCode.INVALID_FIELD),
        (with_(SUB, ch=b"room:a"), ErrorCode.INVALID_FIELD),
        (with_(SUB, epoch="e1"), ErrorCode.INVALID_FIELD),  # epoch without offset
        (with_(SUB, offset=3), ErrorCode.INVALID_FIELD),  # offset without epoch
        (with_(SUB, epoch="e", offset=-2), ErrorCode.INVALID_FIELD),
        (with_(SUB, epoch="e", offset=2**63), ErrorCode.INVALID_FIELD),  # beyond int64
        (with_(SUB, presence=1), ErrorCode.INVALID_FIELD),  # int is not a bool
        (with_(SUB, extra=1), ErrorCode.INVALID_FIELD),  # unknown key
        (with_(SEND, body=""), ErrorCode.INVALID_FIELD),
        (with_(SEND, body=" \n\t "), ErrorCode.INVALID_FIELD),
        (with_(SEND, body="x" * 4001), ErrorCode.MESSAGE_TOO_LARGE),
        (with_(SEND, cmid=""), ErrorCode.INVALID_FIELD),
        (with_(SEND, cmid="c" * 65), ErrorCode.INVALID_FIELD),
        (with_(SEND, room="room:a"), ErrorCode.INVALID_FIELD),  # a room id, not a channel
        (pack({"t": "react", "id": 1, "target_kind": "user", "target_id": "x", "emoji": "x"}), 103),
        (pack({"t": "react", "id": 1, "target_kind": "post", "target_id": "x", "emoji": "x" * 17}), 103),
        (pack({"t": "react", "id": 1, "target_kind": "post", "target_id": "x", "emoji": ""}), 103),
        (pack({"t": "chat.receipt", "room": "a", "offset": 1, "kind": "seen"}), 103),
        (pack({"t": "presence.hb", "status": "busy"}), 103),
        (pack({"t": "hello", "versions": []}), 103),
        (pack({"t": "hello", "versions": [0]}), 103),
        (pack({"t": "hello", "versions": 1}), 103),
        (pack({"t": "chat.history", "id": 1, "room": "a", "limit": 101}), 103),
        (pack({"t": "pub", "id": 1, "ch": "room:a", "key": "k", "data": {"a": 2**64 - 1}}), 103),
    ],
)
def test_field_errors(data: bytes, code: int) -> None:
    assert code_of(data) == code


def nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_data_nesting_is_capped_at_16() -> None:
    ok = F.Publish(id=1, ch="room:a", key="k", data=nest(16))
    assert decode_client(encode(ok)) == ok
    assert code_of(with_(SUB | {"t": "pub", "key": "k"}, data=nest(17))) == ErrorCode.INVALID_FIELD
    deep_map: Any = 1
    for _ in range(17):
        deep_map = {"k": deep_map}
    assert code_of(with_(SUB | {"t": "pub", "key": "k"}, data=deep_map)) == ErrorCode.INVALID_FIELD


def test_chat_body_limit_is_in_characters_not_bytes() -> None:
    frame = F.ChatSend(id=1, room="a", cmid="c", body="ő" * 4000)
    assert decode_client(encode(frame)) == frame


def test_hello_ignores_unknown_keys_for_forward_compatibility() -> None:
    frame = decode_client(pack({"t": "hello", "versions": [1, 2], "token": "x", "caps": {"zstd": True}}))
    assert frame == F.Hello(versions=(1, 2), token="x")


def test_nested_chat_messages_are_validated() -> None:
    page = raw(F.ChatPage(id=1, room="lobby", messages=(MSG,)))
    page["messages"][0]["body"] = ""
    assert code_of(pack(page), decode_server) == ErrorCode.INVALID_FIELD
    page["messages"][0] = {**raw(MSG), "t": "event"}
    assert code_of(pack(page), decode_server) == ErrorCode.INVALID_FIELD
    mismatched = {**raw(MSG), "ch": "room:other"}
    assert code_of(pack(mismatched), decode_server) == ErrorCode.INVALID_FIELD


def test_durable_offsets_start_at_one() -> None:
    assert code_of(pack({**raw(MSG), "offset": 0}), decode_server) == ErrorCode.INVALID_FIELD
    sub_ok = F.Subscribed(id=1, ch="room:a", epoch="e", offset=0)  # an empty stream is at 0
    assert decode_server(encode(sub_ok)) == sub_ok


def test_optional_strings_accept_empty_and_validate_otherwise() -> None:
    assert decode_server(encode(F.Error(code=500, message="x", ch=""))) == F.Error(code=500, message="x")
    assert code_of(pack({"t": "error", "code": 500, "message": "x", "ch": "bad"}), decode_server) == 103


def test_typed_tuples_and_maps() -> None:
    snap = F.PresenceSnapshot(ch="room:a", users=("u1", "u2"), count=2)
    assert decode_server(encode(snap)) == snap
    assert code_of(pack({**raw(snap), "users": ["u1", 2]}), decode_server) == ErrorCode.INVALID_FIELD
    counts = raw(SAMPLES[F.ReactionCounts])
    assert code_of(pack({**counts, "counts": {"x": -1}}), decode_server) == ErrorCode.INVALID_FIELD
    assert code_of(pack({**counts, "counts": {"x": True}}), decode_server) == ErrorCode.INVALID_FIELD
    feed = raw(SAMPLES[F.FeedUpdate])
    assert code_of(pack({**feed, "data": [1]}), decode_server) == ErrorCode.INVALID_FIELD


def test_encode_refuses_values_msgpack_cannot_carry() -> None:
    with pytest.raises(TypeError):
        encode(F.Publish(id=1, ch="room:a", key="k", data={1, 2}))


def test_encode_is_deterministic_across_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    page = SAMPLES[F.ChatPage]
    expected = encode(page)
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda _: encode(page), range(2000))) == {expected}


def _wrong_values(annotation: str) -> list[Any]:
    """Values of the wrong msgpack type for a field annotated ``annotation`` (as written in frames.py)."""
    if annotation == "int":
        return [True, 1.0, "1", None, [1]]
    if annotation == "str":
        return [1, b"x", None, ["x"], True]
    if annotation == "bool":
        return [1, 0, "true", None]
    if annotation.startswith("tuple"):
        return ["x", 1, {"a": 1}, None]
    if annotation.startswith("dict"):
        return [[1], "x", 1, None]
    return []  # Any: every msgpack value is the right type


FIELD_CASES = [
    (cls, f.name, bad) for cls in ALL_FRAMES for f in dataclasses.fields(cls) for bad in _wrong_values(str(f.type))
]


@pytest.mark.parametrize(("cls", "name", "bad"), FIELD_CASES, ids=lambda x: getattr(x, "TYPE", repr(x)))
def test_every_field_refuses_values_of_the_wrong_type(cls: type[F.Frame], name: str, bad: Any) -> None:
    m = raw(SAMPLES[cls])
    m[name] = bad
    decoder = decode_client if cls in F.CLIENT_FRAMES else decode_server
    with pytest.raises(MalformedFrame) as info:
        decoder(pack(m))
    assert info.value.code == ErrorCode.INVALID_FIELD
    assert name in info.value.message
