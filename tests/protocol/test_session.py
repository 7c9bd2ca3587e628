"""Session state machines: the transition tables, subscription bookkeeping, errors to frames and
close codes, and the client's dedupe and resume. Bytes in, frames out, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import frames as F
from protocol.codec import encode
from protocol.errors import CloseCode, ErrorCode, InvalidTransition, ProtocolError
from protocol.session import (
    CLIENT_TRANSITIONS,
    SERVER_TRANSITIONS,
    ClientSession,
    Position,
    ServerSession,
    State,
    close_code_for,
    error_frame,
    negotiate_version,
)

from .samples import SAMPLES

SUB = F.Subscribe(id=1, ch="room:lobby")


def session_in(state: State, *, subscribed: tuple[str, ...] = ()) -> ServerSession:
    s = ServerSession(max_subscriptions=4)
    if state is State.AWAIT_HELLO:
        return s
    s.receive_data(encode(F.Hello(token="t")))
    if state is State.AUTHENTICATING:
        return s
    s.accept(user="u1", session="s1", node="n1", ping_interval_ms=25000)
    for i, ch in enumerate(subscribed, start=100):
        sub = s.receive_frame(F.Subscribe(id=i, ch=ch))
        assert isinstance(sub, F.Subscribe)
        s.subscribed(sub, epoch="e", offset=0)
    if state is State.DRAINING:
        s.drain(1000)
    if state is State.CLOSED:
        s.disconnect(CloseCode.NORMAL, "bye")
    assert s.state is state
    return s


def refusal(state: State, cls: type[F.Frame]) -> ErrorCode:
    if cls is F.Hello and state is not State.AWAIT_HELLO:
        return ErrorCode.UNAVAILABLE if state is State.CLOSED else ErrorCode.ALREADY_AUTHENTICATED
    return {
        State.AWAIT_HELLO: ErrorCode.NOT_AUTHENTICATED,
        State.AUTHENTICATING: ErrorCode.NOT_AUTHENTICATED,
        State.DRAINING: ErrorCode.DRAINING,
        State.CLOSED: ErrorCode.UNAVAILABLE,
    }[state]


# --------------------------------------------------------------------------------------------------
# The tables, cell by cell
# --------------------------------------------------------------------------------------------------


def test_tables_cover_every_state() -> None:
    assert set(CLIENT_TRANSITIONS) == set(State) == set(SERVER_TRANSITIONS)
    assert CLIENT_TRANSITIONS[State.CLOSED] == {} == SERVER_TRANSITIONS[State.CLOSED]
    for table in CLIENT_TRANSITIONS.values():
        assert set(table) <= set(F.CLIENT_FRAMES)
    for table in SERVER_TRANSITIONS.values():
        assert set(table) <= set(F.SERVER_FRAMES)


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
@pytest.mark.parametrize("cls", F.CLIENT_FRAMES, ids=lambda c: c.TYPE)
def test_every_client_frame_in_every_state(state: State, cls: type[F.Frame]) -> None:
    s = session_in(state, subscribed=("room:lobby", "post:p_9") if state in (State.OPEN, State.DRAINING) else ())
    frame = SAMPLES[cls]
    if cls is F.Subscribe:
        frame = F.Subscribe(id=1, ch="room:other")
    expected = CLIENT_TRANSITIONS[state].get(cls)
    if expected is None:
        with pytest.raises(ProtocolError) as info:
            s.receive_frame(frame)
        assert info.value.code == refusal(state, cls)
        assert info.value.request_id == getattr(frame, "id", 0)
        assert s.state is state
    else:
        assert s.receive_frame(frame) == frame
        assert s.state is expected


def test_only_hello_opens_and_only_after_welcome() -> None:
    s = ServerSession()
    with pytest.raises(InvalidTransition) as info:
        s.receive_frame(SUB)
    assert info.value.code == ErrorCode.NOT_AUTHENTICATED
    s.receive_frame(F.Hello(versions=(3, 1, 2), token="t"))
    assert (s.state, s.version) == (State.AUTHENTICATING, 1)
    with pytest.raises(InvalidTransition) as info:
        s.receive_frame(F.Hello(token="t"))
    assert info.value.code == ErrorCode.ALREADY_AUTHENTICATED
    welcome = s.accept(user="u1", session="s1", node="n1", ping_interval_ms=25000)
    assert (welcome.version, welcome.user, welcome.max_frame) == (1, "u1", 65536)
    assert s.state is State.OPEN
    with pytest.raises(InvalidTransition) as info:
        s.receive_frame(F.Hello(token="t"))
    assert info.value.code == ErrorCode.ALREADY_AUTHENTICATED


def test_unsupported_version_is_refused_and_fatal() -> None:
    s = ServerSession()
    with pytest.raises(ProtocolError) as info:
        s.receive_data(encode(F.Hello(versions=(2, 3), token="t")))
    assert info.value.code == ErrorCode.UNSUPPORTED_VERSION
    failure = s.fail(info.value)
    assert failure.error.code == ErrorCode.UNSUPPORTED_VERSION
    assert failure.close is CloseCode.UNSUPPORTED_VERSION
    assert s.state is State.CLOSED


def test_server_cannot_send_events_before_welcome_or_after_close() -> None:
    s = ServerSession()
    with pytest.raises(InvalidTransition):
        s.send(SAMPLES[F.TypingNotice])
    s.receive_frame(F.Hello(token="t"))
    with pytest.raises(InvalidTransition):
        s.send(SAMPLES[F.Drain])
    s.disconnect(CloseCode.UNAUTHORIZED, "bad token", reconnect=False)
    assert s.state is State.CLOSED
    with pytest.raises(InvalidTransition):
        s.send(F.Error(code=500, message="x"))
    with pytest.raises(InvalidTransition) as info:
        s.receive_data(encode(F.Ping()))
    assert info.value.code == ErrorCode.UNAVAILABLE


# --------------------------------------------------------------------------------------------------
# Subscriptions
# --------------------------------------------------------------------------------------------------


def test_subscription_lifecycle_and_positions() -> None:
    s = session_in(State.OPEN)
    sub = s.receive_frame(F.Subscribe(id=5, ch="room:a"))
    assert isinstance(sub, F.Subscribe)
    assert s.pending == {"room:a": 5} and not s.is_subscribed("room:a")
    with pytest.raises(ProtocolError) as info:  # not active until sub.ok
        s.receive_frame(F.Publish(id=6, ch="room:a", key="k"))
    assert info.value.code == ErrorCode.NOT_SUBSCRIBED
    ok = s.subscribed(sub, epoch="e1", offset=10)
    assert ok == F.Subscribed(id=5, ch="room:a", epoch="e1", offset=10)
    assert s.subscriptions == {"room:a": Position("e1", 10)} and not s.pending
    s.send(F.ChatMessage(ch="room:a", epoch="e1", offset=11, mid="m", room="a", sender="u", cmid="c", body="b"))
    assert s.subscriptions["room:a"] == Position("e1", 11)
    s.receive_frame(F.Publish(id=7, ch="room:a", key="k"))
    s.receive_frame(F.Typing(ch="room:a"))
    s.receive_frame(F.Unsubscribe(id=8, ch="room:a"))
    assert not s.subscriptions
    with pytest.raises(ProtocolError) as info:
        s.receive_frame(F.Unsubscribe(id=9, ch="room:a"))
    assert (info.value.code, info.value.request_id) == (ErrorCode.NOT_SUBSCRIBED, 9)


@pytest.mark.parametrize(
    "frame",
    [
        F.Publish(id=1, ch="room:x", key="k"),
        F.Typing(ch="room:x"),
        F.PresenceQuery(id=1, ch="room:x"),
        F.Unsubscribe(id=1, ch="room:x"),
    ],
    ids=lambda f: f.TYPE,
)
def test_channel_frames_need_a_subscription(frame: F.Frame) -> None:
    with pytest.raises(ProtocolError) as info:
        session_in(State.OPEN).receive_frame(frame)
    assert info.value.code == ErrorCode.NOT_SUBSCRIBED


def test_chat_and_reactions_need_no_subscription() -> None:
    s = session_in(State.OPEN)
    for cls in (F.ChatSend, F.ChatHistory, F.ChatReceipt, F.React):
        assert s.receive_frame(SAMPLES[cls]) == SAMPLES[cls]


def test_subscribing_twice_and_too_many() -> None:
    s = session_in(State.OPEN, subscribed=("room:a",))
    with pytest.raises(ProtocolError) as info:
        s.receive_frame(F.Subscribe(id=1, ch="room:a"))
    assert info.value.code == ErrorCode.ALREADY_SUBSCRIBED
    s.receive_frame(F.Subscribe(id=2, ch="room:b"))
    with pytest.raises(ProtocolError) as info:  # pending counts too
        s.receive_frame(F.Subscribe(id=3, ch="room:b"))
    assert info.value.code == ErrorCode.ALREADY_SUBSCRIBED
    s.receive_frame(F.Subscribe(id=4, ch="room:c"))
    s.receive_frame(F.Subscribe(id=5, ch="room:d"))
    with pytest.raises(ProtocolError) as info:
        s.receive_frame(F.Subscribe(id=6, ch="room:e"))
    assert (info.value.code, info.value.request_id) == (ErrorCode.TOO_MANY_SUBSCRIPTIONS, 6)


def test_refused_subscription_is_forgotten() -> None:
    s = session_in(State.OPEN)
    s.receive_frame(F.Subscribe(id=5, ch="room:a"))
    s.fail(ProtocolError("no", ErrorCode.PERMISSION_DENIED, request_id=5))
    assert not s.pending
    s.receive_frame(F.Subscribe(id=6, ch="room:a"))  # may try again


def test_events_only_for_active_subscriptions() -> None:
    s = session_in(State.OPEN)
    with pytest.raises(InvalidTransition) as info:
        s.send(SAMPLES[F.Event])
    assert info.value.code == ErrorCode.NOT_SUBSCRIBED
    with pytest.raises(InvalidTransition):
        s.send(F.Subscribed(id=1, ch="room:a", epoch="e", offset=0))  # nothing pending


def test_draining_refuses_new_subscriptions_but_serves_the_rest() -> None:
    s = session_in(State.DRAINING, subscribed=("room:lobby",))
    with pytest.raises(ProtocolError) as info:
        s.receive_frame(F.Subscribe(id=1, ch="room:new"))
    assert (info.value.code, s.fail(info.value).close) == (ErrorCode.DRAINING, None)
    s.receive_frame(F.Publish(id=2, ch="room:lobby", key="k"))
    s.send(SAMPLES[F.ChatMessage])
    assert s.subscriptions["room:lobby"] == Position("e7Kq", 42)


# --------------------------------------------------------------------------------------------------
# Errors: frames and close codes
# --------------------------------------------------------------------------------------------------


def test_error_frame_echoes_code_message_and_id() -> None:
    err = error_frame(ProtocolError("nope", ErrorCode.RATE_LIMITED, request_id=12), ch="room:a")
    assert err == F.Error(code=400, message="nope", id=12, ch="room:a")


@pytest.mark.parametrize(
    ("code", "close"),
    [
        (ErrorCode.UNSUPPORTED_VERSION, CloseCode.UNSUPPORTED_VERSION),
        (ErrorCode.TOKEN_INVALID, CloseCode.UNAUTHORIZED),
        (ErrorCode.TOKEN_EXPIRED, CloseCode.TOKEN_EXPIRED),
        (ErrorCode.FRAME_TOO_LARGE, CloseCode.MESSAGE_TOO_BIG),
        (ErrorCode.NOT_AUTHENTICATED, CloseCode.BAD_HANDSHAKE),
        (ErrorCode.INVALID_FIELD, CloseCode.BAD_HANDSHAKE),
        (ErrorCode.BAD_FRAME, CloseCode.BAD_HANDSHAKE),
    ],
)
def test_every_handshake_error_is_fatal(code: ErrorCode, close: CloseCode) -> None:
    for state in (State.AWAIT_HELLO, State.AUTHENTICATING):
        assert close_code_for(ProtocolError("x", code), state) is close


@pytest.mark.parametrize(
    ("code", "close"),
    [
        (ErrorCode.FRAME_TOO_LARGE, CloseCode.MESSAGE_TOO_BIG),
        (ErrorCode.TOKEN_EXPIRED, CloseCode.TOKEN_EXPIRED),
        (ErrorCode.BAD_FRAME, None),
        (ErrorCode.WRONG_DIRECTION, None),
        (ErrorCode.INVALID_FIELD, None),
        (ErrorCode.UNKNOWN_TYPE, None),
        (ErrorCode.NOT_SUBSCRIBED, None),
        (ErrorCode.RATE_LIMITED, None),
        (ErrorCode.MESSAGE_TOO_LARGE, None),
        (ErrorCode.ALREADY_AUTHENTICATED, None),
    ],
)
def test_errors_when_open(code: ErrorCode, close: CloseCode | None) -> None:
    s = session_in(State.OPEN)
    failure = s.fail(ProtocolError("x", code, request_id=3))
    assert failure.close is close
    assert failure.error.id == 3
    assert s.state is (State.OPEN if close is None else State.CLOSED)


def test_garbage_bytes_in_the_handshake_close_the_session() -> None:
    s = ServerSession()
    with pytest.raises(ProtocolError) as info:
        s.receive_data(b"\x00garbage")
    failure = s.fail(info.value)
    assert (failure.error.code, failure.close, s.state) == (100, CloseCode.BAD_HANDSHAKE, State.CLOSED)


def test_negotiate_version() -> None:
    assert negotiate_version([1]) == 1
    assert negotiate_version([1, 2, 3], supported=(1, 2)) == 2
    with pytest.raises(ProtocolError) as info:
        negotiate_version([2])
    assert info.value.code == ErrorCode.UNSUPPORTED_VERSION


# --------------------------------------------------------------------------------------------------
# ClientSession: dedupe and resume
# --------------------------------------------------------------------------------------------------


def msg(offset: int, mid: str | None = None, epoch: str = "e1", ch: str = "room:a") -> F.ChatMessage:
    return F.ChatMessage(
        ch=ch, epoch=epoch, offset=offset, mid=mid or f"m{offset}", room=ch[5:], sender="u", cmid="c", body="b"
    )


def test_client_drops_duplicates_by_mid_and_offset() -> None:
    c = ClientSession()
    sub = c.subscribe("room:a")
    assert (sub.epoch, sub.offset) == ("", -1)
    c.receive(F.Subscribed(id=sub.id, ch="room:a", epoch="e1", offset=0))
    assert c.receive(msg(1)) is not None
    assert c.receive(msg(1)) is None  # same mid
    assert c.receive(msg(1, mid="other")) is None  # same position
    assert c.receive(msg(3)) is not None  # gaps in offsets are allowed
    assert c.receive(msg(2, mid="late")) is None  # behind the position
    assert c.positions["room:a"] == Position("e1", 3)


def test_client_dedupe_memory_is_bounded() -> None:
    c = ClientSession(dedupe_size=3)
    for i in range(1, 6):
        c.receive(msg(i, ch=f"room:c{i}"))
    assert not c.seen("m1") and not c.seen("m2") and c.seen("m5")
    assert c.receive(msg(1, ch="room:other")) is not None  # forgotten mid, new channel


def test_client_resumes_after_reconnect() -> None:
    c = ClientSession()
    first = c.subscribe("room:a", presence=True)
    c.subscribe("user:u1")
    c.receive(F.Subscribed(id=first.id, ch="room:a", epoch="e1", offset=5))
    c.receive(msg(6))
    c.receive(msg(7))
    again = c.resubscribe()
    by_ch = {s.ch: s for s in again}
    assert set(by_ch) == {"room:a", "user:u1"}
    assert (by_ch["room:a"].epoch, by_ch["room:a"].offset, by_ch["room:a"].presence) == ("e1", 7, True)
    assert (by_ch["user:u1"].epoch, by_ch["user:u1"].offset) == ("", -1)
    assert len({s.id for s in again}) == 2 and first.id not in {s.id for s in again}
    # recovered: the position stays until the replayed events move it
    c.receive(F.Subscribed(id=by_ch["room:a"].id, ch="room:a", epoch="e1", offset=9))
    assert c.positions["room:a"] == Position("e1", 7)
    assert c.receive(msg(7)) is None
    assert c.receive(msg(8)) is not None and c.receive(msg(9)) is not None
    assert not c.stale


def test_client_marks_stale_when_the_gap_is_lost() -> None:
    c = ClientSession()
    c.receive(msg(7))  # a position, e.g. from a previous subscription
    c.wanted["room:a"] = False
    (sub,) = c.resubscribe()
    c.receive(F.Subscribed(id=sub.id, ch="room:a", epoch="e1", offset=500, recovered=False))
    assert c.stale == {"room:a"} and c.positions["room:a"] == Position("e1", 500)
    c.clear_stale("room:a")
    (sub,) = c.resubscribe()
    c.receive(F.Subscribed(id=sub.id, ch="room:a", epoch="e2", offset=0))  # the stream was lost
    assert c.stale == {"room:a"} and c.positions["room:a"] == Position("e2", 0)
    assert c.receive(msg(1, epoch="e2", mid="fresh")) is not None


def test_client_unsubscribe_forgets_the_channel() -> None:
    c = ClientSession()
    c.subscribe("room:a")
    c.receive(msg(1))
    unsub = c.unsubscribe("room:a")
    assert unsub.ch == "room:a" and c.resubscribe() == []


def test_client_request_ids_are_nonzero_and_wrap() -> None:
    c = ClientSession()
    c._next_id = 2**32 - 2
    assert [c.next_id() for _ in range(3)] == [2**32 - 1, 1, 2]


def test_client_receive_data_uses_welcome_max_frame() -> None:
    c = ClientSession()
    w = F.Welcome(version=1, session="s", user="u", node="n", ping_interval_ms=1000, max_frame=1024)
    assert c.receive_data(encode(w)) == w
    with pytest.raises(ProtocolError) as info:
        c.receive_data(encode(F.Event(ch="room:a", epoch="e", offset=1, mid="m", sender="u", data="x" * 2000)))
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 30), max_size=60))
def test_client_delivers_each_event_once_in_increasing_order(offsets: list[int]) -> None:
    """Any replay pattern (duplicates, re-sends, out-of-order retries) comes out deduplicated and
    strictly increasing."""
    c = ClientSession()
    delivered = [f.offset for o in offsets if (f := c.receive(msg(o))) is not None and isinstance(f, F.ChatMessage)]
    assert delivered == sorted(set(delivered))
    if offsets:
        assert delivered[0] == offsets[0]
        assert c.positions["room:a"].offset == max(delivered)


def test_handshake_timeout() -> None:
    for state in (State.AWAIT_HELLO, State.AUTHENTICATING):
        s = session_in(state)
        failure = s.timed_out()
        assert (failure.error.code, failure.close, s.state) == (105, CloseCode.HANDSHAKE_TIMEOUT, State.CLOSED)
    with pytest.raises(InvalidTransition):
        session_in(State.OPEN).timed_out()


def test_client_stops_wanting_channels_it_may_not_join() -> None:
    c = ClientSession()
    denied = c.subscribe("room:secret")
    limited = c.subscribe("room:busy")
    c.receive(F.Error(code=ErrorCode.PERMISSION_DENIED, message="no", id=denied.id))
    c.receive(F.Error(code=ErrorCode.RATE_LIMITED, message="later", id=limited.id))
    assert set(c.wanted) == {"room:busy"}
    kicked = c.subscribe("room:a")
    c.receive(F.Subscribed(id=kicked.id, ch="room:a", epoch="e", offset=0))
    c.receive(F.Unsubscribed(id=0, ch="room:a"))  # the server ended it
    assert "room:a" not in c.wanted and "room:a" not in c.positions
