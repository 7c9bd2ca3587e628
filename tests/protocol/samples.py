"""One readable, valid instance of every frame type (the vectors and the session tests use them)."""

from __future__ import annotations

from protocol import frames as F

MSG = F.ChatMessage(
    ch="room:lobby",
    epoch="e7Kq",
    offset=42,
    mid="01JD6Y8M3Q",
    room="lobby",
    sender="u_17",
    cmid="c-1",
    body="Sastipe! 👋",
    reply_to="01JD6Y7ZZZ",
    ts=1764072000000,
)

SAMPLES: dict[type[F.Frame], F.Frame] = {
    F.Ping: F.Ping(id=7),
    F.Pong: F.Pong(id=7),
    F.Hello: F.Hello(versions=(1,), token="eyJhbGciOi.x.y", client="amaro-web/0.1"),
    F.Subscribe: F.Subscribe(id=1, ch="room:lobby", epoch="e7Kq", offset=41, presence=True),
    F.Unsubscribe: F.Unsubscribe(id=2, ch="room:lobby"),
    F.Publish: F.Publish(id=3, ch="post:p_9", key="k-3", data={"kind": "poll.vote", "choice": 2}),
    F.Typing: F.Typing(ch="room:lobby"),
    F.PresenceHeartbeat: F.PresenceHeartbeat(status="away"),
    F.PresenceQuery: F.PresenceQuery(id=4, ch="room:lobby"),
    F.React: F.React(id=5, target_kind="post", target_id="p_9", emoji="🔥"),
    F.ChatSend: F.ChatSend(id=6, room="lobby", cmid="c-1", body="Sastipe! 👋", reply_to="01JD6Y7ZZZ"),
    F.ChatHistory: F.ChatHistory(id=8, room="lobby", before=42, limit=20),
    F.ChatReceipt: F.ChatReceipt(room="lobby", offset=42),
    F.Welcome: F.Welcome(
        version=1, session="s_3f9a", user="u_17", node="hub-1", ping_interval_ms=25000, max_frame=65536
    ),
    F.Subscribed: F.Subscribed(id=1, ch="room:lobby", epoch="e7Kq", offset=41),
    F.Unsubscribed: F.Unsubscribed(id=2, ch="room:lobby"),
    F.Ack: F.Ack(id=3, ch="post:p_9", offset=12, mid="01JD6Y9AAA"),
    F.Event: F.Event(
        ch="post:p_9",
        epoch="e1",
        offset=12,
        mid="01JD6Y9AAA",
        sender="u_17",
        data={"kind": "poll.vote", "choice": 2},
        ts=1764072001000,
    ),
    F.ChatMessage: MSG,
    F.ChatAck: F.ChatAck(id=6, room="lobby", cmid="c-1", mid="01JD6Y8M3Q", offset=42, ts=1764072000000),
    F.ChatPage: F.ChatPage(id=8, room="lobby", messages=(MSG,), more=True),
    F.ReceiptNotice: F.ReceiptNotice(ch="room:lobby", room="lobby", user="u_17", offset=42, kind="read"),
    F.PresenceSnapshot: F.PresenceSnapshot(ch="room:lobby", users=("u_17", "u_23"), count=2, id=4),
    F.PresenceJoin: F.PresenceJoin(ch="room:lobby", user="u_23"),
    F.PresenceLeave: F.PresenceLeave(ch="room:lobby", user="u_23"),
    F.TypingNotice: F.TypingNotice(ch="room:lobby", user="u_23"),
    F.ReactionCounts: F.ReactionCounts(ch="post:p_9", target_kind="post", target_id="p_9", counts={"🔥": 3}),
    F.FeedUpdate: F.FeedUpdate(
        ch="user:u_17",
        epoch="e2",
        offset=5,
        mid="01JD6YA000",
        kind="post.created",
        data={"post": "p_9", "author": "u_23"},
        ts=1764072002000,
    ),
    F.MediaEvent: F.MediaEvent(
        ch="user:u_17",
        epoch="e2",
        offset=6,
        mid="01JD6YA001",
        upload="up_5",
        phase="good_enough",
        post="p_9",
        data={"playlist": "/media/p_9/master.m3u8", "height": 720},
        ts=1764072003000,
    ),
    F.Drain: F.Drain(reconnect_after_ms=1500),
    F.Disconnect: F.Disconnect(code=4008, reason="slow consumer", reconnect=True, reconnect_after_ms=500),
    F.Error: F.Error(code=302, message="not subscribed to room:lobby", id=9, ch="room:lobby"),
}
