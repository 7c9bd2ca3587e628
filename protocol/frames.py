"""Frames of the Amaro wire protocol, version 1.

Every WebSocket binary message carries exactly one frame: a msgpack map whose key ``"t"`` names the
frame type and whose other keys are the fields below, spelled exactly as the dataclass fields.
Fields whose value equals the default may be omitted on the wire. SPEC.md is the normative text;
this module is its executable form.

Direction matters: a client may only send the frames in ``CLIENT_FRAMES``, a server only those in
``SERVER_FRAMES`` (``ping``/``pong`` travel both ways). Decoding a frame in the wrong direction is a
protocol error, which is how a client is kept from forging server events such as ``chat.msg``.

Durable events (``chat.msg``, ``feed``, ``media``, ``event``) carry the channel position
``(epoch, offset)`` and a globally unique message id ``mid``; clients drop duplicates by ``mid`` and
resume with the last ``(epoch, offset)`` they saw per channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

#: Channel names look like ``room:<id>``, ``user:<id>``, ``post:<id>``, ``online:<id>``.
CHANNEL_KINDS: tuple[str, ...] = ("room", "user", "post", "online")

MediaPhase = Literal["received", "progress", "good_enough", "upgraded", "failed"]
MEDIA_PHASES: tuple[str, ...] = ("received", "progress", "good_enough", "upgraded", "failed")
ReceiptKind = Literal["delivered", "read"]
RECEIPT_KINDS: tuple[str, ...] = ("delivered", "read")
TargetKind = Literal["post", "message"]
TARGET_KINDS: tuple[str, ...] = ("post", "message")


@dataclass(frozen=True, slots=True)
class Frame:
    """Base of every frame. ``TYPE`` is the value of the ``t`` key on the wire."""

    TYPE: ClassVar[str] = ""


# --------------------------------------------------------------------------------------------------
# Both directions
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping(Frame):
    """Liveness probe. The peer answers with a ``Pong`` carrying the same ``id``."""

    TYPE: ClassVar[str] = "ping"
    id: int = 0


@dataclass(frozen=True, slots=True)
class Pong(Frame):
    TYPE: ClassVar[str] = "pong"
    id: int = 0


# --------------------------------------------------------------------------------------------------
# Client to server
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello(Frame):
    """First frame of every connection: version negotiation and authentication.

    ``versions`` lists the protocol versions the client speaks; the server picks the highest it
    shares. ``token`` is an access token from ``POST /api/v1/auth/login`` or ``/refresh``.
    """

    TYPE: ClassVar[str] = "hello"
    versions: tuple[int, ...] = (PROTOCOL_VERSION,)
    token: str = ""
    client: str = ""


@dataclass(frozen=True, slots=True)
class Subscribe(Frame):
    """Join a channel. With ``epoch``/``offset`` set, the server first sends every durable event
    after ``offset`` (recovery), or answers ``recovered=False`` when it cannot send the whole gap."""

    TYPE: ClassVar[str] = "sub"
    id: int
    ch: str
    epoch: str = ""
    offset: int = -1
    presence: bool = False


@dataclass(frozen=True, slots=True)
class Unsubscribe(Frame):
    TYPE: ClassVar[str] = "unsub"
    id: int
    ch: str


@dataclass(frozen=True, slots=True)
class Publish(Frame):
    """Publish an application event to a channel. ``key`` is the idempotency key: a retried
    publish with the same key is acknowledged again with the original position, never stored twice."""

    TYPE: ClassVar[str] = "pub"
    id: int
    ch: str
    key: str
    data: Any = None


@dataclass(frozen=True, slots=True)
class Typing(Frame):
    """Typing indicator. Ephemeral: at most once, never stored, throttled by the server."""

    TYPE: ClassVar[str] = "typing"
    ch: str
    active: bool = True


@dataclass(frozen=True, slots=True)
class PresenceHeartbeat(Frame):
    """Tell the server this session is still active (``status`` ``online`` or ``away``)."""

    TYPE: ClassVar[str] = "presence.hb"
    status: str = "online"


@dataclass(frozen=True, slots=True)
class PresenceQuery(Frame):
    """Ask for a presence snapshot of a subscribed channel."""

    TYPE: ClassVar[str] = "presence.get"
    id: int
    ch: str


@dataclass(frozen=True, slots=True)
class React(Frame):
    """Set (``on=True``) or clear one reaction of kind ``emoji`` on a post or chat message.
    Idempotent: setting twice counts once."""

    TYPE: ClassVar[str] = "react"
    id: int
    target_kind: str
    target_id: str
    emoji: str
    on: bool = True


@dataclass(frozen=True, slots=True)
class ChatSend(Frame):
    """Send a chat message. ``cmid`` is the client message id: retrying with the same ``cmid``
    returns the original ``chat.ack`` and never creates a second message."""

    TYPE: ClassVar[str] = "chat.send"
    id: int
    room: str
    cmid: str
    body: str
    reply_to: str = ""


@dataclass(frozen=True, slots=True)
class ChatHistory(Frame):
    """Request a page of room history, newest first, strictly before ``before`` (or the newest
    when ``before`` is -1)."""

    TYPE: ClassVar[str] = "chat.history"
    id: int
    room: str
    before: int = -1
    limit: int = 50


@dataclass(frozen=True, slots=True)
class ChatReceipt(Frame):
    """Mark every message of ``room`` up to ``offset`` as delivered or read by this user."""

    TYPE: ClassVar[str] = "chat.receipt"
    room: str
    offset: int
    kind: str = "read"


# --------------------------------------------------------------------------------------------------
# Server to client
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Welcome(Frame):
    """Answer to a valid ``hello``."""

    TYPE: ClassVar[str] = "welcome"
    version: int
    session: str
    user: str
    node: str
    ping_interval_ms: int
    max_frame: int


@dataclass(frozen=True, slots=True)
class Subscribed(Frame):
    """Answer to ``sub``. ``epoch``/``offset`` are the channel's position when the subscription
    took effect. ``recovered`` is True when every missed event was (or is about to be) sent, False
    when the gap was older than the retained window: the client must refetch history."""

    TYPE: ClassVar[str] = "sub.ok"
    id: int
    ch: str
    epoch: str
    offset: int
    recovered: bool = True


@dataclass(frozen=True, slots=True)
class Unsubscribed(Frame):
    TYPE: ClassVar[str] = "unsub.ok"
    id: int
    ch: str


@dataclass(frozen=True, slots=True)
class Ack(Frame):
    """Acknowledges a ``pub`` or ``react``: the event is durable at ``offset`` of ``ch``."""

    TYPE: ClassVar[str] = "ack"
    id: int
    ch: str = ""
    offset: int = -1
    mid: str = ""


@dataclass(frozen=True, slots=True)
class Event(Frame):
    """A durable application event published with ``pub``."""

    TYPE: ClassVar[str] = "event"
    ch: str
    epoch: str
    offset: int
    mid: str
    sender: str
    data: Any = None
    ts: int = 0


@dataclass(frozen=True, slots=True)
class ChatMessage(Frame):
    """A durable chat message on channel ``room:<room>``."""

    TYPE: ClassVar[str] = "chat.msg"
    ch: str
    epoch: str
    offset: int
    mid: str
    room: str
    sender: str
    cmid: str
    body: str
    reply_to: str = ""
    ts: int = 0


@dataclass(frozen=True, slots=True)
class ChatAck(Frame):
    """Answer to ``chat.send``: the message is stored at ``offset`` of its room."""

    TYPE: ClassVar[str] = "chat.ack"
    id: int
    room: str
    cmid: str
    mid: str
    offset: int
    ts: int


@dataclass(frozen=True, slots=True)
class ChatPage(Frame):
    """Answer to ``chat.history``: messages newest first; ``more`` tells whether older exist."""

    TYPE: ClassVar[str] = "chat.page"
    id: int
    room: str
    messages: tuple[ChatMessage, ...] = ()
    more: bool = False


@dataclass(frozen=True, slots=True)
class ReceiptNotice(Frame):
    """``user`` has delivered or read ``room`` up to ``offset``. Latest value wins."""

    TYPE: ClassVar[str] = "chat.receipt.ev"
    ch: str
    room: str
    user: str
    offset: int
    kind: str


@dataclass(frozen=True, slots=True)
class PresenceSnapshot(Frame):
    """Who is in ``ch`` now. Big channels send ``count`` with a truncated ``users`` list."""

    TYPE: ClassVar[str] = "presence.snap"
    ch: str
    users: tuple[str, ...] = ()
    count: int = 0
    truncated: bool = False
    id: int = 0


@dataclass(frozen=True, slots=True)
class PresenceJoin(Frame):
    TYPE: ClassVar[str] = "presence.join"
    ch: str
    user: str


@dataclass(frozen=True, slots=True)
class PresenceLeave(Frame):
    TYPE: ClassVar[str] = "presence.leave"
    ch: str
    user: str


@dataclass(frozen=True, slots=True)
class TypingNotice(Frame):
    TYPE: ClassVar[str] = "typing.ev"
    ch: str
    user: str
    active: bool = True


@dataclass(frozen=True, slots=True)
class ReactionCounts(Frame):
    """Current reaction counts of a target, coalesced: latest value wins."""

    TYPE: ClassVar[str] = "react.counts"
    ch: str
    target_kind: str
    target_id: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeedUpdate(Frame):
    """A durable feed event on a personal channel (``post.created``, ``post.updated`` ...)."""

    TYPE: ClassVar[str] = "feed"
    ch: str
    epoch: str
    offset: int
    mid: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    ts: int = 0


@dataclass(frozen=True, slots=True)
class MediaEvent(Frame):
    """A durable media pipeline event on the uploader's personal channel."""

    TYPE: ClassVar[str] = "media"
    ch: str
    epoch: str
    offset: int
    mid: str
    upload: str
    phase: str
    post: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    ts: int = 0


@dataclass(frozen=True, slots=True)
class Drain(Frame):
    """The node is shutting down: reconnect (to any node) after ``reconnect_after_ms``."""

    TYPE: ClassVar[str] = "drain"
    reconnect_after_ms: int
    reason: str = "shutdown"


@dataclass(frozen=True, slots=True)
class Disconnect(Frame):
    """Sent right before the server closes the socket. When ``reconnect`` is True the client
    should reconnect after ``reconnect_after_ms`` and resume its subscriptions from its offsets."""

    TYPE: ClassVar[str] = "disconnect"
    code: int
    reason: str
    reconnect: bool = True
    reconnect_after_ms: int = 0


@dataclass(frozen=True, slots=True)
class Error(Frame):
    """An error answer. ``id`` echoes the request id when the error answers a request (0 if not);
    ``code`` is one of ``protocol.errors.ErrorCode``."""

    TYPE: ClassVar[str] = "error"
    code: int
    message: str
    id: int = 0
    ch: str = ""


CLIENT_FRAMES: tuple[type[Frame], ...] = (
    Ping,
    Pong,
    Hello,
    Subscribe,
    Unsubscribe,
    Publish,
    Typing,
    PresenceHeartbeat,
    PresenceQuery,
    React,
    ChatSend,
    ChatHistory,
    ChatReceipt,
)

SERVER_FRAMES: tuple[type[Frame], ...] = (
    Ping,
    Pong,
    Welcome,
    Subscribed,
    Unsubscribed,
    Ack,
    Event,
    ChatMessage,
    ChatAck,
    ChatPage,
    ReceiptNotice,
    PresenceSnapshot,
    PresenceJoin,
    PresenceLeave,
    TypingNotice,
    ReactionCounts,
    FeedUpdate,
    MediaEvent,
    Drain,
    Disconnect,
    Error,
)

#: Frames that carry a channel position and are stored for recovery.
DURABLE_FRAMES: tuple[type[Frame], ...] = (Event, ChatMessage, FeedUpdate, MediaEvent)
