"""Hypothesis strategies for valid frames, written from SPEC.md (not from the codec's tables), so
that a codec rule stricter or looser than the spec shows up as a failing property."""

from __future__ import annotations

import string
from dataclasses import MISSING, fields
from typing import Any

from hypothesis import strategies as st

from protocol import frames as F

IDENT_ALPHABET = string.ascii_letters + string.digits + "_-"
UINT32 = 2**32 - 1
INT64 = 2**63 - 1

ident = st.text(alphabet=IDENT_ALPHABET, min_size=1, max_size=64)
channel = st.builds(lambda kind, name: f"{kind}:{name}", st.sampled_from(F.CHANNEL_KINDS), ident)


def text(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(min_size=lo, max_size=hi)


def optional(s: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.just("") | s


def depth(v: Any) -> int:
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    return 0


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), INT64)
    | st.floats(allow_nan=False)
    | text(0, 20)
    | st.binary(max_size=20)
)
any_value = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text(0, 8), inner, max_size=4),
    max_leaves=12,
).filter(lambda v: depth(v) <= 16)
any_map = st.dictionaries(text(0, 8), any_value, max_size=4)

chat_body = text(1, 4000).filter(lambda s: s.strip() != "")

FIELD: dict[str, st.SearchStrategy[Any]] = {
    "id": st.integers(0, UINT32),
    "ch": channel,
    "room": ident,
    "epoch": text(1, 64),
    "offset": st.integers(0, INT64),
    "mid": text(1, 64),
    "cmid": text(1, 64),
    "key": text(1, 64),
    "reply_to": optional(text(1, 64)),
    "body": chat_body,
    "emoji": text(1, 16),
    "target_kind": st.sampled_from(F.TARGET_KINDS),
    "target_id": text(1, 64),
    "phase": st.sampled_from(F.MEDIA_PHASES),
    "status": st.sampled_from(("online", "away")),
    "versions": st.lists(st.integers(1, 65535), min_size=1, max_size=16).map(tuple),
    "version": st.integers(1, 65535),
    "token": text(0, 300),
    "client": text(0, 128),
    "session": text(1, 128),
    "node": text(1, 128),
    "user": text(1, 64),
    "sender": text(1, 64),
    "users": st.lists(text(1, 64), max_size=20).map(tuple),
    "count": st.integers(0, INT64),
    "counts": st.dictionaries(text(1, 16), st.integers(0, INT64), max_size=10),
    "upload": text(1, 64),
    "post": optional(text(1, 64)),
    "before": st.integers(-1, INT64),
    "limit": st.integers(1, 100),
    "ts": st.integers(0, INT64),
    "ping_interval_ms": st.integers(1, 3_600_000),
    "reconnect_after_ms": st.integers(0, 3_600_000),
    "max_frame": st.integers(1024, 2**31 - 1),
    "message": text(0, 300),
    "reason": text(0, 256),
    "code": st.integers(0, 65535),
    "data": any_value,
    "active": st.booleans(),
    "presence": st.booleans(),
    "on": st.booleans(),
    "recovered": st.booleans(),
    "more": st.booleans(),
    "truncated": st.booleans(),
    "reconnect": st.booleans(),
}

DURABLE_OFFSET = st.integers(1, INT64)
CLASS_FIELD: dict[tuple[type[F.Frame], str], st.SearchStrategy[Any]] = {
    (F.Ack, "ch"): optional(channel),
    (F.Ack, "mid"): optional(text(1, 64)),
    (F.Ack, "offset"): st.integers(-1, INT64),
    (F.Error, "ch"): optional(channel),
    (F.Disconnect, "code"): st.integers(1000, 4999),
    (F.Event, "offset"): DURABLE_OFFSET,
    (F.ChatMessage, "offset"): DURABLE_OFFSET,
    (F.FeedUpdate, "offset"): DURABLE_OFFSET,
    (F.MediaEvent, "offset"): DURABLE_OFFSET,
    (F.ChatAck, "offset"): DURABLE_OFFSET,
    (F.ChatReceipt, "kind"): st.sampled_from(F.RECEIPT_KINDS),
    (F.ReceiptNotice, "kind"): st.sampled_from(F.RECEIPT_KINDS),
    (F.FeedUpdate, "kind"): text(1, 64),
    (F.FeedUpdate, "data"): any_map,
    (F.MediaEvent, "data"): any_map,
}

# Client requests carry a non-zero id: 0 means "answers no request".
REQUESTS = tuple(
    cls
    for cls in F.CLIENT_FRAMES
    if any(f.name == "id" and f.default is MISSING and f.default_factory is MISSING for f in fields(cls))
)


def _field_strategy(cls: type[F.Frame], name: str) -> st.SearchStrategy[Any]:
    if name == "id" and cls in REQUESTS:
        return st.integers(1, UINT32)
    return CLASS_FIELD[(cls, name)] if (cls, name) in CLASS_FIELD else FIELD[name]


def _generic(cls: type[F.Frame]) -> st.SearchStrategy[F.Frame]:
    return st.builds(cls, **{f.name: _field_strategy(cls, f.name) for f in fields(cls)})


@st.composite
def _subscribe(draw: st.DrawFn) -> F.Subscribe:
    position = draw(st.none() | st.tuples(text(1, 64), st.integers(0, INT64)))
    epoch, offset = position if position else ("", -1)
    return F.Subscribe(
        id=draw(st.integers(1, UINT32)),
        ch=draw(channel),
        epoch=epoch,
        offset=offset,
        presence=draw(st.booleans()),
    )


@st.composite
def chat_message(draw: st.DrawFn, body: st.SearchStrategy[str] = chat_body) -> F.ChatMessage:
    room = draw(ident)
    return F.ChatMessage(
        ch=f"room:{room}",
        epoch=draw(text(1, 64)),
        offset=draw(DURABLE_OFFSET),
        mid=draw(text(1, 64)),
        room=room,
        sender=draw(text(1, 64)),
        cmid=draw(text(1, 64)),
        body=draw(body),
        reply_to=draw(optional(text(1, 64))),
        ts=draw(st.integers(0, INT64)),
    )


_chat_page = st.builds(
    F.ChatPage,
    id=st.integers(0, UINT32),
    room=ident,
    messages=st.lists(chat_message(text(1, 200).filter(lambda s: s.strip() != "")), max_size=3).map(tuple),
    more=st.booleans(),
)

SPECIAL: dict[type[F.Frame], st.SearchStrategy[F.Frame]] = {
    F.Subscribe: _subscribe(),
    F.ChatMessage: chat_message(),
    F.ChatPage: _chat_page,
}

ALL_FRAMES: tuple[type[F.Frame], ...] = tuple(dict.fromkeys(F.CLIENT_FRAMES + F.SERVER_FRAMES))


def frames_of(cls: type[F.Frame]) -> st.SearchStrategy[F.Frame]:
    return SPECIAL[cls] if cls in SPECIAL else _generic(cls)


client_frames = st.one_of([frames_of(cls) for cls in F.CLIENT_FRAMES])
server_frames = st.one_of([frames_of(cls) for cls in F.SERVER_FRAMES])
