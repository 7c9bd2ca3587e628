"""The msgpack codec of the wire protocol: frames to bytes and back, with strict validation.

``encode`` trusts its input (frames built by our own code) and is built for speed: the hub encodes
a broadcast once and writes the same bytes to thousands of sockets. ``decode_client`` and
``decode_server`` trust nothing: whatever bytes arrive, they return a valid frame of the allowed
direction or raise a ``ProtocolError`` subclass carrying a stable ``ErrorCode`` (and the request
``id`` when it could be read). No other exception escapes them.

Decoding, in order:

1. size cap (``FrameTooLarge``) before a single byte is parsed;
2. msgpack with hard limits, no ext types, str keys only, no duplicate keys (``BAD_FRAME``);
3. a map whose ``t`` is a str (``BAD_FRAME``), a known type (``UNKNOWN_TYPE``) of the allowed
   direction (``WRONG_DIRECTION``);
4. every field: present when required, of its exact type, within its limits; no unknown keys except
   in ``hello`` (``INVALID_FIELD``, ``MESSAGE_TOO_LARGE`` for an over-long chat body).

The validators are derived once at import from the dataclass annotations of ``protocol.frames``,
then narrowed per field name (``ch`` is a channel name, ``id`` a uint32 ...) by ``_FIELD_RULES``.
SPEC.md documents every limit enforced here.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, Final

import msgpack

from protocol import frames as F
from protocol.errors import ErrorCode, FrameTooLarge, MalformedFrame, ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME",
    "MAX_DEPTH",
    "decode_client",
    "decode_server",
    "encode",
]

DEFAULT_MAX_FRAME: Final = 64 * 1024
#: Deepest nesting of arrays and maps allowed inside a ``data`` value (the value itself is depth 1).
MAX_DEPTH: Final = 16
#: Caps on containers anywhere in a frame, applied by the msgpack parser itself.
MAX_ARRAY_LEN: Final = 4096
MAX_MAP_LEN: Final = 1024

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
UINT32_MAX: Final = 2**32 - 1

CHANNEL_RE: Final = re.compile(r"(room|user|post|online):[A-Za-z0-9_-]{1,64}")
ROOM_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
PRESENCE_STATUSES: Final = ("online", "away")
MAX_CHAT_BODY: Final = 4000

Validator = Callable[[Any], Any]
"""Takes a decoded msgpack value, returns the field value (lists become tuples) or raises."""


def _bad(message: str, code: ErrorCode = ErrorCode.INVALID_FIELD) -> MalformedFrame:
    return MalformedFrame(message, code)


# --------------------------------------------------------------------------------------------------
# Validators
# --------------------------------------------------------------------------------------------------


def _int(lo: int = INT64_MIN, hi: int = INT64_MAX) -> Validator:
    def check(v: Any) -> int:
        # ``type(v) is int`` refuses bool (a subclass of int) and float.
        if type(v) is not int:
            raise _bad(f"expected an integer, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise _bad(f"integer {v} outside [{lo}, {hi}]")
        return v

    return check


def _str(
    lo: int = 0,
    hi: int = 256,
    *,
    pattern: re.Pattern[str] | None = None,
    choices: tuple[str, ...] | None = None,
    allow_empty: bool = False,
) -> Validator:
    def check(v: Any) -> str:
        if type(v) is not str:
            raise _bad(f"expected a string, got {type(v).__name__}")
        if allow_empty and v == "":
            return v
        if not lo <= len(v) <= hi:
            raise _bad(f"string length {len(v)} outside [{lo}, {hi}]")
        if pattern is not None and pattern.fullmatch(v) is None:
            raise _bad(f"{v[:80]!r} does not match {pattern.pattern}")
        if choices is not None and v not in choices:
            raise _bad(f"{v[:80]!r} is not one of {', '.join(choices)}")
        return v

    return check


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise _bad(f"expected a boolean, got {type(v).__name__}")
    return v


def _tuple(item: Validator, lo: int = 0, hi: int = 1000) -> Validator:
    def check(v: Any) -> tuple[Any, ...]:
        if type(v) is not list:
            raise _bad(f"expected an array, got {type(v).__name__}")
        if not lo <= len(v) <= hi:
            raise _bad(f"array length {len(v)} outside [{lo}, {hi}]")
        return tuple([item(x) for x in v])

    return check


def _dict(key: Validator, value: Validator, hi: int = 256) -> Validator:
    def check(v: Any) -> dict[str, Any]:
        if type(v) is not dict:
            raise _bad(f"expected a map, got {type(v).__name__}")
        if len(v) > hi:
            raise _bad(f"map of {len(v)} entries, at most {hi}")
        return {key(k): value(x) for k, x in v.items()}

    return check


_SCALARS: Final = (type(None), bool, float, str, bytes)


def _check_any(v: Any, depth: int) -> None:
    t = type(v)
    if t in _SCALARS:
        return
    if t is int:
        if not INT64_MIN <= v <= INT64_MAX:
            raise _bad("integer outside int64")
        return
    if depth >= MAX_DEPTH:
        raise _bad(f"value nested deeper than {MAX_DEPTH}")
    if t is list:
        for x in v:
            _check_any(x, depth + 1)
        return
    if t is dict:
        # Keys are already str: _pairs refuses anything else while parsing.
        for x in v.values():
            _check_any(x, depth + 1)
        return
    raise _bad(f"unsupported value of type {t.__name__}")  # pragma: no cover - msgpack yields no other


def _any(v: Any) -> Any:
    _check_any(v, 0)
    return v


def _any_map(v: Any) -> dict[str, Any]:
    if type(v) is not dict:
        raise _bad(f"expected a map, got {type(v).__name__}")
    _check_any(v, 0)
    return v


# Field rules by name, then by (frame type, field name). Everything not listed gets the default
# derived from its annotation. A str field whose default is "" also accepts "" (meaning "none").
_ID = _int(0, UINT32_MAX)
_REQUEST_ID = _int(1, UINT32_MAX)  # a client request id is never 0: 0 means "answers no request"
_USER = _str(1, 64)
_SHORT_ID = _str(1, 64)

_FIELD_RULES: Final[dict[str, Validator]] = {
    "id": _ID,
    "ch": _str(pattern=CHANNEL_RE),
    "room": _str(pattern=ROOM_RE),
    "epoch": _str(1, 64),
    "offset": _int(0, INT64_MAX),
    "mid": _SHORT_ID,
    "cmid": _SHORT_ID,
    "key": _SHORT_ID,
    "reply_to": _SHORT_ID,
    "emoji": _str(1, 16),
    "target_kind": _str(choices=F.TARGET_KINDS),
    "target_id": _SHORT_ID,
    "phase": _str(choices=F.MEDIA_PHASES),
    "status": _str(choices=PRESENCE_STATUSES),
    "versions": _tuple(_int(1, 65535), 1, 16),
    "version": _int(1, 65535),
    "token": _str(0, 4096),
    "client": _str(0, 128),
    "session": _str(1, 128),
    "node": _str(1, 128),
    "user": _USER,
    "sender": _USER,
    "users": _tuple(_USER, 0, 1000),
    "count": _int(0, INT64_MAX),
    "counts": _dict(_str(1, 16), _int(0, INT64_MAX), 64),
    "upload": _SHORT_ID,
    "post": _SHORT_ID,
    "before": _int(-1, INT64_MAX),
    "limit": _int(1, 100),
    "ts": _int(0, INT64_MAX),
    "ping_interval_ms": _int(1, 3_600_000),
    "reconnect_after_ms": _int(0, 3_600_000),
    "max_frame": _int(1024, 2**31 - 1),
    "message": _str(0, 1024),
    "reason": _str(0, 256),
    "messages": _tuple(lambda v: _nested_chat_message(v), 0, 200),
}

_DURABLE_OFFSET = _int(1, INT64_MAX)  # the first durable event of a stream has offset 1
_CLASS_RULES: Final[dict[tuple[type[F.Frame], str], Validator]] = {
    (F.Subscribe, "offset"): _int(-1, INT64_MAX),
    (F.Ack, "offset"): _int(-1, INT64_MAX),
    (F.Event, "offset"): _DURABLE_OFFSET,
    (F.ChatMessage, "offset"): _DURABLE_OFFSET,
    (F.FeedUpdate, "offset"): _DURABLE_OFFSET,
    (F.MediaEvent, "offset"): _DURABLE_OFFSET,
    (F.ChatAck, "offset"): _DURABLE_OFFSET,
    (F.ChatReceipt, "kind"): _str(choices=F.RECEIPT_KINDS),
    (F.ReceiptNotice, "kind"): _str(choices=F.RECEIPT_KINDS),
    (F.FeedUpdate, "kind"): _str(1, 64),
    (F.Error, "code"): _int(0, 65535),  # unknown codes are accepted: new ones may appear in v1
    (F.Disconnect, "code"): _int(1000, 4999),
}


def _chat_body(v: Any) -> str:
    if type(v) is not str:
        raise _bad(f"expected a string, got {type(v).__name__}")
    if len(v) > MAX_CHAT_BODY:
        raise _bad(f"chat body of {len(v)} characters, at most {MAX_CHAT_BODY}", ErrorCode.MESSAGE_TOO_LARGE)
    if not v.strip():
        raise _bad("chat body is empty")
    return v


_FIELD_RULES["body"] = _chat_body


def _from_annotation(tp: Any) -> Validator:
    """The default validator of a field type as written in frames.py."""
    if tp is int:
        return _int()
    if tp is str:
        return _str()
    if tp is bool:
        return _bool
    if tp is Any:
        return _any
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple(_from_annotation(args[0]))
    if origin is dict and len(args) == 2 and args[0] is str:
        value = _from_annotation(args[1])
        return _any_map if args[1] is Any else _dict(_str(1, 64), value)
    raise TypeError(f"no validator for field type {tp!r}")  # a new frames.py type needs one here


# --------------------------------------------------------------------------------------------------
# Per-class specs, built once at import
# --------------------------------------------------------------------------------------------------

_NO_DEFAULT: Final[Any] = object()


@dataclass(frozen=True, slots=True)
class _Spec:
    cls: type[F.Frame]
    type: str
    #: (name, default or _NO_DEFAULT) in declaration order, for encode.
    encode_fields: tuple[tuple[str, Any], ...]
    validators: dict[str, Validator]
    required: frozenset[str]
    strict_keys: bool
    #: fields holding a tuple of frames (encoded as an array of maps).
    nested: tuple[str, ...]


def _spec(cls: type[F.Frame]) -> _Spec:
    hints = typing.get_type_hints(cls)
    encode_fields: list[tuple[str, Any]] = []
    validators: dict[str, Validator] = {}
    required: set[str] = set()
    for f in fields(cls):
        if f.default is not MISSING:
            default: Any = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            default = _NO_DEFAULT
            required.add(f.name)
        encode_fields.append((f.name, default))
        check = _CLASS_RULES.get((cls, f.name)) or _FIELD_RULES.get(f.name) or _from_annotation(hints[f.name])
        if f.name == "id" and default is _NO_DEFAULT and cls in F.CLIENT_FRAMES:
            check = _REQUEST_ID
        if default == "" and type(default) is str:
            check = _allow_empty(check)
        validators[f.name] = check
    # ``hello`` is decoded before a version is negotiated, so a newer client may offer extra keys
    # there; everywhere else an unknown key is an error (see SPEC.md, "Versioning").
    nested = tuple(name for name, tp in hints.items() if _holds_frames(tp))
    return _Spec(cls, cls.TYPE, tuple(encode_fields), validators, frozenset(required), cls is not F.Hello, nested)


def _holds_frames(tp: Any) -> bool:
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and bool(args) and isinstance(args[0], type) and issubclass(args[0], F.Frame)


def _allow_empty(check: Validator) -> Validator:
    def allow(v: Any) -> Any:
        return v if v == "" and type(v) is str else check(v)

    return allow


_ALL_FRAMES: Final = tuple(dict.fromkeys(F.CLIENT_FRAMES + F.SERVER_FRAMES))
_SPECS: Final[dict[type[F.Frame], _Spec]] = {cls: _spec(cls) for cls in _ALL_FRAMES}
_BY_TYPE: Final[dict[str, _Spec]] = {s.type: s for s in _SPECS.values()}
_CLIENT: Final[dict[str, _Spec]] = {cls.TYPE: _SPECS[cls] for cls in F.CLIENT_FRAMES}
_SERVER: Final[dict[str, _Spec]] = {cls.TYPE: _SPECS[cls] for cls in F.SERVER_FRAMES}


def _check_pairs(frame: F.Frame) -> None:
    """Cross-field rules: the ones a single field cannot say."""
    if isinstance(frame, F.Subscribe) and (frame.epoch == "") != (frame.offset == -1):
        raise _bad("sub: epoch and offset must be given together")
    if isinstance(frame, F.ChatMessage) and frame.ch != "room:" + frame.room:
        raise _bad("chat.msg: ch must be room:<room>")


# --------------------------------------------------------------------------------------------------
# Encode
# --------------------------------------------------------------------------------------------------


def _as_map(frame: F.Frame) -> dict[str, Any]:
    spec = _SPECS[type(frame)]
    out: dict[str, Any] = {"t": spec.type}
    for name, default in spec.encode_fields:
        value = getattr(frame, name)
        if default is _NO_DEFAULT or value != default:
            out[name] = value
    for name in spec.nested:  # ChatPage.messages: frames inside a frame, as maps with their own "t"
        if name in out:
            out[name] = [_as_map(item) for item in out[name]]
    return out


# One packer, reused: no Python callback runs inside ``pack`` (nested frames are converted above),
# so a call never releases the GIL halfway and sharing it between threads is safe.
def as_map(frame: F.Frame) -> dict[str, Any]:
    """``frame`` as the plain map its encoding carries (``t`` first, defaults left out): what a
    JSON API returns when it shows a frame, e.g. a room's last message."""
    return _as_map(frame)


_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack


def encode(frame: F.Frame) -> bytes:
    """Encode one frame as a msgpack map (``t`` first, then fields in declaration order, fields
    equal to their default omitted). Does not validate: encode frames you built, decode the rest.

    Raises ``KeyError`` for an object that is not a protocol frame and ``TypeError`` for a value
    msgpack cannot carry (e.g. a set inside ``data``). Safe to call from any thread.
    """
    result: bytes = _packb(_as_map(frame))
    return result


# --------------------------------------------------------------------------------------------------
# Decode
# --------------------------------------------------------------------------------------------------


def _pairs(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _bad("duplicate map key", ErrorCode.BAD_FRAME)
    for k in out:
        if type(k) is not str:
            raise _bad("map keys must be strings", ErrorCode.BAD_FRAME)
    return out


def _no_ext(code: int, data: bytes) -> Any:
    raise _bad("msgpack ext types are not allowed", ErrorCode.BAD_FRAME)


def _unpack(data: bytes, max_size: int) -> Any:
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_pairs,
            ext_hook=_no_ext,
            max_str_len=max_size,
            max_bin_len=max_size,
            max_array_len=MAX_ARRAY_LEN,
            max_map_len=MAX_MAP_LEN,
            max_ext_len=0,
        )
    except ProtocolError:
        raise
    except Exception as exc:  # every msgpack failure (ExtraData, FormatError, StackError, UTF-8 ...)
        raise MalformedFrame(f"not a msgpack value: {type(exc).__name__}") from None


def peek_request_id(data: bytes, max_keys: int = 16) -> int:
    """The request ``id`` of an encoded client frame, read without decoding the frame: its top-level
    map is walked key by key (values other than ``id`` skipped unread, at most ``max_keys`` keys);
    0 when there is none or the bytes are not such a map. For answering a frame refused before it
    is decoded (rate limits, SPEC §11) with its own id, at a bounded cost."""
    try:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(data), 1), max_ext_len=0,
                                    max_array_len=MAX_ARRAY_LEN, max_map_len=MAX_MAP_LEN)
        unpacker.feed(data)
        for _ in range(min(unpacker.read_map_header(), max_keys)):
            key = unpacker.unpack()
            if key == "id":
                rid = unpacker.unpack()
                return rid if type(rid) is int and 0 < rid <= UINT32_MAX else 0
            unpacker.skip()
    except Exception:  # not a map, truncated, a non-scalar key ...: no id to answer with
        return 0
    return 0


def _request_id(obj: dict[str, Any]) -> int:
    rid = obj.get("id")
    return rid if type(rid) is int and 0 < rid <= UINT32_MAX else 0


def _build(spec: _Spec, obj: dict[str, Any]) -> F.Frame:
    kwargs: dict[str, Any] = {}
    validators = spec.validators
    for name, value in obj.items():
        if name == "t":
            continue
        check = validators.get(name)
        if check is None:
            if spec.strict_keys:
                raise _bad(f"{spec.type}: unknown field {name[:64]!r}")
            continue
        try:
            kwargs[name] = check(value)
        except MalformedFrame as exc:
            raise MalformedFrame(f"{spec.type}.{name}: {exc.message}", exc.code) from None
    missing = spec.required.difference(kwargs)
    if missing:
        raise _bad(f"{spec.type}: missing field {', '.join(sorted(missing))}")
    frame = spec.cls(**kwargs)
    _check_pairs(frame)
    return frame


def _nested_chat_message(v: Any) -> F.ChatMessage:
    if type(v) is not dict or v.get("t") != F.ChatMessage.TYPE:
        raise _bad("expected a chat.msg map")
    frame = _build(_SPECS[F.ChatMessage], v)
    assert isinstance(frame, F.ChatMessage)
    return frame


def _decode(data: bytes, max_size: int, allowed: dict[str, _Spec]) -> F.Frame:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedFrame(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise FrameTooLarge(f"frame of {len(data)} bytes, at most {max_size}")
    obj = _unpack(data, max_size)
    if type(obj) is not dict:
        raise MalformedFrame(f"frame must be a map, got {type(obj).__name__}")
    request_id = _request_id(obj)
    try:
        t = obj.get("t")
        if type(t) is not str:
            raise MalformedFrame("frame has no string key 't'")
        spec = allowed.get(t)
        if spec is None:
            if t in _BY_TYPE:
                raise MalformedFrame(f"frame type {t!r} not allowed this way", ErrorCode.WRONG_DIRECTION)
            raise MalformedFrame(f"unknown frame type {t[:64]!r}", ErrorCode.UNKNOWN_TYPE)
        return _build(spec, obj)
    except ProtocolError as exc:
        exc.request_id = request_id
        raise


def decode_client(data: bytes, max_size: int = DEFAULT_MAX_FRAME) -> F.Frame:
    """Decode one frame sent by a client (only ``CLIENT_FRAMES``). Raises ``ProtocolError`` only."""
    return _decode(data, max_size, _CLIENT)


def decode_server(data: bytes, max_size: int = DEFAULT_MAX_FRAME) -> F.Frame:
    """Decode one frame sent by a server (only ``SERVER_FRAMES``). Raises ``ProtocolError`` only."""
    return _decode(data, max_size, _SERVER)
