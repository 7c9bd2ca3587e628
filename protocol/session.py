"""Sans-I/O sessions: what a connection may do, as data, with no socket in sight.

``ServerSession`` is the hub's view of one connection. The hub feeds it what arrived
(``receive_data``) and tells it what it is about to send (``send``); the session answers with
frames or refuses with a ``ProtocolError`` whose code reaches the client. Token checks,
authorization and storage stay in the hub: the session only knows the rules of the protocol.

Everything that affects the state machine lives in ``CLIENT_TRANSITIONS`` and
``SERVER_TRANSITIONS`` (the h11 way)::

    AWAIT_HELLO --hello--> AUTHENTICATING --welcome--> OPEN --drain--> DRAINING
    any state --disconnect, fatal error, handshake timeout, socket closed--> CLOSED

``AUTHENTICATING`` is the time between a ``hello`` and the hub's verdict on its token: the client
must wait for ``welcome`` before sending anything else.

``ClientSession`` is the other end: it remembers the position ``(epoch, offset)`` of every channel,
drops duplicate durable events, and rebuilds the subscriptions with resume positions after a
reconnect.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final, NamedTuple, TypeVar

from protocol import frames as F
from protocol.codec import DEFAULT_MAX_FRAME, decode_client, decode_server
from protocol.errors import CloseCode, ErrorCode, InvalidTransition, ProtocolError

__all__ = [
    "CLIENT_TRANSITIONS",
    "HELLO_TIMEOUT_S",
    "MAX_SUBSCRIPTIONS",
    "SERVER_TRANSITIONS",
    "ClientSession",
    "Failure",
    "Position",
    "ServerSession",
    "State",
    "close_code_for",
    "error_frame",
    "negotiate_version",
]

#: Seconds a new connection has to send ``hello``; the hub closes with ``HANDSHAKE_TIMEOUT`` after.
HELLO_TIMEOUT_S: Final = 10.0
MAX_SUBSCRIPTIONS: Final = 128

_F = TypeVar("_F", bound=F.Frame)

#: ``sub`` refusals that retrying will not change; other errors (rate limits, draining) may pass later.
_REFUSED_FOR_GOOD: Final = frozenset({ErrorCode.PERMISSION_DENIED, ErrorCode.CHANNEL_NOT_FOUND})


class State(Enum):
    AWAIT_HELLO = "await_hello"
    AUTHENTICATING = "authenticating"
    OPEN = "open"
    DRAINING = "draining"
    CLOSED = "closed"


class Position(NamedTuple):
    """Where a subscriber stands in a channel stream. ``offset`` is the last durable event seen."""

    epoch: str
    offset: int


_OPEN_FRAMES: Final = tuple(cls for cls in F.CLIENT_FRAMES if cls is not F.Hello)

#: Client frames each state accepts, and the state they lead to. A frame missing here is refused.
CLIENT_TRANSITIONS: Final[dict[State, dict[type[F.Frame], State]]] = {
    State.AWAIT_HELLO: {F.Hello: State.AUTHENTICATING},
    State.AUTHENTICATING: {},
    State.OPEN: {cls: State.OPEN for cls in _OPEN_FRAMES},
    # A draining node still serves what it holds but takes no new subscription.
    State.DRAINING: {cls: State.DRAINING for cls in _OPEN_FRAMES if cls is not F.Subscribe},
    State.CLOSED: {},
}

_ANY_SERVER: Final = tuple(cls for cls in F.SERVER_FRAMES if cls not in (F.Welcome, F.Drain, F.Disconnect))

#: Server frames each state lets the hub send, and the state they lead to.
SERVER_TRANSITIONS: Final[dict[State, dict[type[F.Frame], State]]] = {
    State.AWAIT_HELLO: {F.Error: State.AWAIT_HELLO, F.Disconnect: State.CLOSED},
    State.AUTHENTICATING: {F.Welcome: State.OPEN, F.Error: State.AUTHENTICATING, F.Disconnect: State.CLOSED},
    State.OPEN: {
        **{cls: State.OPEN for cls in _ANY_SERVER},
        F.Drain: State.DRAINING,
        F.Disconnect: State.CLOSED,
    },
    State.DRAINING: {**{cls: State.DRAINING for cls in _ANY_SERVER}, F.Disconnect: State.CLOSED},
    State.CLOSED: {},
}

#: Errors that end the connection once the session is open (before it, every error does).
_FATAL_WHEN_OPEN: Final[dict[ErrorCode, CloseCode]] = {
    # A bad frame once open costs its sender an ``error`` and nothing else (the hub's flood guard
    # disconnects a client that keeps sending refused frames); only an oversize frame, which the
    # WebSocket layer cannot skip, and a dead token end the connection.
    ErrorCode.FRAME_TOO_LARGE: CloseCode.MESSAGE_TOO_BIG,
    ErrorCode.TOKEN_INVALID: CloseCode.UNAUTHORIZED,
    ErrorCode.TOKEN_EXPIRED: CloseCode.TOKEN_EXPIRED,
}

_HANDSHAKE_CLOSE: Final[dict[ErrorCode, CloseCode]] = {
    ErrorCode.FRAME_TOO_LARGE: CloseCode.MESSAGE_TOO_BIG,
    ErrorCode.UNSUPPORTED_VERSION: CloseCode.UNSUPPORTED_VERSION,
    ErrorCode.TOKEN_INVALID: CloseCode.UNAUTHORIZED,
    ErrorCode.TOKEN_EXPIRED: CloseCode.TOKEN_EXPIRED,
    ErrorCode.INTERNAL: CloseCode.INTERNAL_ERROR,
    ErrorCode.UNAVAILABLE: CloseCode.GOING_AWAY,
    ErrorCode.DRAINING: CloseCode.DRAINING,
}


def negotiate_version(client_versions: Iterable[int], supported: Iterable[int] = F.SUPPORTED_VERSIONS) -> int:
    """The highest version both sides speak, or ``ProtocolError(UNSUPPORTED_VERSION)``."""
    common = set(client_versions).intersection(supported)
    if not common:
        raise ProtocolError("no protocol version in common", ErrorCode.UNSUPPORTED_VERSION)
    return max(common)


def error_frame(exc: ProtocolError, ch: str = "") -> F.Error:
    """The ``error`` frame telling the client about ``exc`` (echoing its request id)."""
    return F.Error(code=int(exc.code), message=exc.message[:1024], id=exc.request_id, ch=ch)


def close_code_for(exc: ProtocolError, state: State) -> CloseCode | None:
    """The close code when ``exc`` must end a connection in ``state``, None when an error frame
    is answer enough. Every error before ``welcome`` is fatal."""
    if state in (State.AWAIT_HELLO, State.AUTHENTICATING):
        return _HANDSHAKE_CLOSE.get(exc.code, CloseCode.BAD_HANDSHAKE)
    if state is State.CLOSED:
        return None
    return _FATAL_WHEN_OPEN.get(exc.code)


@dataclass(frozen=True, slots=True)
class Failure:
    """What to send after an error: the ``error`` frame, then close with ``close`` unless None."""

    error: F.Error
    close: CloseCode | None


class ServerSession:
    """Protocol state of one client connection, server side. Not thread-safe; one per socket.

    Typical glue::

        try:
            frame = session.receive_data(message)
        except ProtocolError as exc:
            failure = session.fail(exc)   # send failure.error, close with failure.close if set
        ...
        session.send(frame_out)           # before writing any frame to the socket
    """

    def __init__(
        self,
        *,
        max_subscriptions: int = MAX_SUBSCRIPTIONS,
        max_frame: int = DEFAULT_MAX_FRAME,
        supported_versions: tuple[int, ...] = F.SUPPORTED_VERSIONS,
    ) -> None:
        self.state = State.AWAIT_HELLO
        self.max_subscriptions = max_subscriptions
        self.max_frame = max_frame
        self.supported_versions = supported_versions
        self.version = 0
        self.user = ""
        self._active: dict[str, Position] = {}
        self._pending: dict[str, int] = {}  # channel -> id of the sub awaiting the hub's answer

    # -- inspection -------------------------------------------------------------------------------

    @property
    def subscriptions(self) -> Mapping[str, Position]:
        """Active subscriptions with the position of the last durable event sent on each."""
        return self._active

    @property
    def pending(self) -> Mapping[str, int]:
        """Subscriptions received but not yet answered, channel -> request id."""
        return self._pending

    def is_subscribed(self, ch: str) -> bool:
        return ch in self._active

    # -- client to server ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> F.Frame:
        """Decode one WebSocket message and apply it (see ``receive_frame``)."""
        if self.state is State.CLOSED:
            raise InvalidTransition("session is closed", ErrorCode.UNAVAILABLE)
        return self.receive_frame(decode_client(data, self.max_frame))

    def receive_frame(self, frame: F.Frame) -> F.Frame:
        """Check that ``frame`` is allowed now, update the bookkeeping, return it for the hub to act
        on. On ``hello`` the version is negotiated (``self.version``); the hub then checks the token
        and calls ``accept`` or ``fail``. Raises ``ProtocolError`` with the request id, and changes
        nothing, when the frame is refused."""
        request_id = getattr(frame, "id", 0)
        try:
            return self._receive(frame)
        except ProtocolError as exc:
            exc.request_id = request_id if type(request_id) is int else 0
            raise

    def _receive(self, frame: F.Frame) -> F.Frame:
        cls = type(frame)
        next_state = CLIENT_TRANSITIONS[self.state].get(cls)
        if next_state is None:
            raise self._refusal(cls)
        if isinstance(frame, F.Hello):
            self.version = negotiate_version(frame.versions, self.supported_versions)
        elif isinstance(frame, F.Subscribe):
            self._check_new_subscription(frame.ch)
            self._pending[frame.ch] = frame.id
        elif isinstance(frame, F.Unsubscribe):
            if frame.ch not in self._active and frame.ch not in self._pending:
                raise ProtocolError(f"not subscribed to {frame.ch}", ErrorCode.NOT_SUBSCRIBED)
            self._active.pop(frame.ch, None)
            self._pending.pop(frame.ch, None)
        elif isinstance(frame, F.Publish | F.Typing | F.PresenceQuery):
            # Publishing, typing and presence need the channel; chat.send and react do not (the
            # hub authorizes them against the room or target itself).
            if frame.ch not in self._active:
                raise ProtocolError(f"not subscribed to {frame.ch}", ErrorCode.NOT_SUBSCRIBED)
        self.state = next_state
        return frame

    def _refusal(self, cls: type[F.Frame]) -> ProtocolError:
        name = cls.TYPE
        if self.state is State.AWAIT_HELLO:
            return InvalidTransition(f"{name} before hello", ErrorCode.NOT_AUTHENTICATED)
        if self.state is State.AUTHENTICATING:
            if cls is F.Hello:
                return InvalidTransition("second hello", ErrorCode.ALREADY_AUTHENTICATED)
            return InvalidTransition(f"{name} before welcome", ErrorCode.NOT_AUTHENTICATED)
        if self.state is State.CLOSED:
            return InvalidTransition("session is closed", ErrorCode.UNAVAILABLE)
        if cls is F.Hello:
            return InvalidTransition("second hello", ErrorCode.ALREADY_AUTHENTICATED)
        if self.state is State.DRAINING:
            return InvalidTransition(f"{name} refused: node is draining", ErrorCode.DRAINING)
        return InvalidTransition(f"{name} not allowed in {self.state.value}", ErrorCode.BAD_FRAME)

    def _check_new_subscription(self, ch: str) -> None:
        if ch in self._active or ch in self._pending:
            raise ProtocolError(f"already subscribed to {ch}", ErrorCode.ALREADY_SUBSCRIBED)
        if len(self._active) + len(self._pending) >= self.max_subscriptions:
            raise ProtocolError(f"at most {self.max_subscriptions} subscriptions", ErrorCode.TOO_MANY_SUBSCRIPTIONS)

    # -- server to client ---------------------------------------------------------------------------

    def send(self, frame: F.Frame) -> F.Frame:
        """Check that the hub may send ``frame`` now and record what it means: ``sub.ok`` makes a
        subscription active, a durable event moves the channel position, an ``error`` answering a
        pending ``sub`` drops it, ``drain`` and ``disconnect`` move the state. Returns ``frame``.

        Raises ``InvalidTransition`` on a hub bug (e.g. an event before ``welcome``); a durable
        event for a channel this session is not subscribed to is refused with ``NOT_SUBSCRIBED``."""
        cls = type(frame)
        next_state = SERVER_TRANSITIONS[self.state].get(cls)
        if next_state is None:
            raise InvalidTransition(f"cannot send {cls.TYPE} in {self.state.value}", ErrorCode.INTERNAL)
        if isinstance(frame, F.Event | F.ChatMessage | F.FeedUpdate | F.MediaEvent):
            if frame.ch not in self._active:
                raise InvalidTransition(f"event for {frame.ch}, not subscribed", ErrorCode.NOT_SUBSCRIBED)
            self._active[frame.ch] = Position(frame.epoch, frame.offset)
        elif isinstance(frame, F.Subscribed):
            if self._pending.pop(frame.ch, None) is None:
                raise InvalidTransition(f"sub.ok for {frame.ch}, nothing pending", ErrorCode.INTERNAL)
            self._active[frame.ch] = Position(frame.epoch, frame.offset)
        elif isinstance(frame, F.Unsubscribed):
            self._active.pop(frame.ch, None)  # also the server-initiated kind (id 0)
            self._pending.pop(frame.ch, None)
        elif isinstance(frame, F.Error) and frame.id:
            for ch, rid in self._pending.items():
                if rid == frame.id:
                    del self._pending[ch]
                    break
        self.state = next_state
        return frame

    def accept(self, *, user: str, session: str, node: str, ping_interval_ms: int) -> F.Welcome:
        """The hub verified the ``hello`` token: open the session and return the ``welcome``."""
        welcome = F.Welcome(
            version=self.version,
            session=session,
            user=user,
            node=node,
            ping_interval_ms=ping_interval_ms,
            max_frame=self.max_frame,
        )
        self.send(welcome)
        self.user = user
        return welcome

    def subscribed(self, sub: F.Subscribe, *, epoch: str, offset: int, recovered: bool = True) -> F.Subscribed:
        """The hub authorized ``sub``: activate it at ``(epoch, offset)`` and return the ``sub.ok``."""
        return self._send_as(F.Subscribed(id=sub.id, ch=sub.ch, epoch=epoch, offset=offset, recovered=recovered))

    def drain(self, reconnect_after_ms: int, reason: str = "shutdown") -> F.Drain:
        return self._send_as(F.Drain(reconnect_after_ms=reconnect_after_ms, reason=reason))

    def disconnect(
        self, code: CloseCode, reason: str, *, reconnect: bool = True, reconnect_after_ms: int = 0
    ) -> F.Disconnect:
        """The last frame before closing the socket with ``code``; the session is CLOSED after it."""
        frame = F.Disconnect(code=int(code), reason=reason, reconnect=reconnect, reconnect_after_ms=reconnect_after_ms)
        if self.state is not State.CLOSED:
            self.send(frame)
        return frame

    def fail(self, exc: ProtocolError) -> Failure:
        """Turn an error (from decoding, ``receive_frame`` or the hub) into what to send. When the
        error is fatal the session moves to CLOSED: send the ``error``, then close with
        ``Failure.close``."""
        close = close_code_for(exc, self.state)
        error = error_frame(exc)
        if self.state is not State.CLOSED:
            self.send(error)
        if close is not None:
            self.state = State.CLOSED
        return Failure(error, close)

    def timed_out(self) -> Failure:
        """No ``hello`` (or no verdict on it) within ``HELLO_TIMEOUT_S``: what to send, then close."""
        if self.state not in (State.AWAIT_HELLO, State.AUTHENTICATING):
            raise InvalidTransition(f"no handshake to time out in {self.state.value}", ErrorCode.INTERNAL)
        error = self.send(F.Error(code=ErrorCode.NOT_AUTHENTICATED, message="no hello in time"))
        assert isinstance(error, F.Error)
        self.state = State.CLOSED
        return Failure(error, CloseCode.HANDSHAKE_TIMEOUT)

    def close(self) -> None:
        """The socket is gone (either side closed it)."""
        self.state = State.CLOSED

    def _send_as(self, frame: _F) -> _F:
        self.send(frame)
        return frame


class ClientSession:
    """Protocol state of one logical client across reconnects: request ids, wanted channels with
    their positions, and duplicate suppression for durable events (by ``mid`` and by offset).

    The application calls ``subscribe`` to join, feeds every frame it receives to ``receive``
    (which returns None for a duplicate to drop), and after a reconnect sends ``hello`` then the
    frames of ``resubscribe()``. Channels in ``stale`` lost events the server could not replay:
    refetch their history, then call ``clear_stale``.
    """

    def __init__(self, *, dedupe_size: int = 4096, versions: tuple[int, ...] = F.SUPPORTED_VERSIONS) -> None:
        self.versions = versions
        self.dedupe_size = dedupe_size
        self.positions: dict[str, Position] = {}
        self.wanted: dict[str, bool] = {}  # channel -> presence flag
        self.stale: set[str] = set()
        self._subs_in_flight: dict[int, tuple[str, Position | None]] = {}  # sub id -> (channel, position sent)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._next_id = 0
        self.max_frame = DEFAULT_MAX_FRAME

    def next_id(self) -> int:
        """A fresh request id, 1..2**32-1, wrapping around."""
        self._next_id = self._next_id % 0xFFFFFFFF + 1
        return self._next_id

    def hello(self, token: str, client: str = "") -> F.Hello:
        return F.Hello(versions=self.versions, token=token, client=client)

    def subscribe(self, ch: str, *, presence: bool = False) -> F.Subscribe:
        """Want ``ch`` from now on; the ``sub`` resumes from the known position, if any."""
        self.wanted[ch] = presence
        pos = self.positions.get(ch)
        rid = self.next_id()
        self._subs_in_flight[rid] = (ch, pos)
        if pos is None:
            return F.Subscribe(id=rid, ch=ch, presence=presence)
        return F.Subscribe(id=rid, ch=ch, epoch=pos.epoch, offset=pos.offset, presence=presence)

    def unsubscribe(self, ch: str) -> F.Unsubscribe:
        self._forget(ch)
        return F.Unsubscribe(id=self.next_id(), ch=ch)

    def resubscribe(self) -> list[F.Subscribe]:
        """After a reconnect (and ``welcome``): one ``sub`` per wanted channel, with positions."""
        self._subs_in_flight.clear()
        return [self.subscribe(ch, presence=presence) for ch, presence in list(self.wanted.items())]

    def clear_stale(self, ch: str) -> None:
        self.stale.discard(ch)

    def receive_data(self, data: bytes) -> F.Frame | None:
        """Decode one server message (capped at the ``max_frame`` of ``welcome``) and ``receive`` it."""
        return self.receive(decode_server(data, self.max_frame))

    def receive(self, frame: F.Frame) -> F.Frame | None:
        """Update positions from ``frame``; return it, or None when it is a duplicate to drop."""
        if isinstance(frame, F.Event | F.ChatMessage | F.FeedUpdate | F.MediaEvent):
            return frame if self._accept_durable(frame.ch, frame.epoch, frame.offset, frame.mid) else None
        if isinstance(frame, F.Welcome):
            self.max_frame = frame.max_frame
        elif isinstance(frame, F.Subscribed):
            _, sent = self._subs_in_flight.pop(frame.id, (frame.ch, None))
            new = Position(frame.epoch, frame.offset)
            if sent is None:
                self.positions[frame.ch] = new
            elif not frame.recovered or frame.epoch != sent.epoch:
                # The gap is gone (too old, or the stream was lost): start over at the server's
                # position and let the application refetch history.
                self.positions[frame.ch] = new
                self.stale.add(frame.ch)
            # recovered=True: the missed events follow and move the position one by one.
        elif isinstance(frame, F.Unsubscribed):
            self._forget(frame.ch)  # our unsub answered, or the server ended it (left the room)
        elif isinstance(frame, F.Error) and frame.id in self._subs_in_flight:
            ch, _ = self._subs_in_flight.pop(frame.id)
            if frame.code in _REFUSED_FOR_GOOD:
                self._forget(ch)  # do not ask again on every reconnect
        return frame

    def _forget(self, ch: str) -> None:
        self.wanted.pop(ch, None)
        self.positions.pop(ch, None)
        self.stale.discard(ch)

    def _accept_durable(self, ch: str, epoch: str, offset: int, mid: str) -> bool:
        if mid in self._seen:
            self._seen.move_to_end(mid)
            return False
        pos = self.positions.get(ch)
        if pos is not None and pos.epoch == epoch and offset <= pos.offset:
            return False
        if pos is not None and pos.epoch != epoch:
            self.stale.add(ch)  # the stream was lost while we listened: history may have holes
        self.positions[ch] = Position(epoch, offset)
        self._seen[mid] = None
        if len(self._seen) > self.dedupe_size:
            self._seen.popitem(last=False)
        return True

    def seen(self, mid: str) -> bool:
        return mid in self._seen
