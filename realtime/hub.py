"""The hub: the local channel index, delivery, and what each client frame does.

Transport-free: connections (connection.py) write through a ``Transport`` that ws.py provides, so
the hub runs the same with any socket layer.

Delivery. A routed event arrives once per node (``deliver``) as the bytes encoded by its publisher;
the very same ``bytes`` object is queued on every local subscriber's ``Outbox``, and each
connection writes everything queued in one go (coalescing per loop tick). Durable
events are delivered in offset order per channel (gaps refilled, duplicates dropped: see
broker.py), and each subscription remembers its last offset.

Recovery without gap or duplicate. A ``sub`` with a position first joins the channel locally in
"buffering" mode, so live events are kept aside; then the missed range ``(offset, top]`` is read
(Redis, else PostgreSQL), ``sub.ok`` is sent followed by the missed events, then the buffered live
events above ``top``, and the subscription goes live. The whole gap is sent, or ``recovered=False``.

Friends' presence (``online:friends``). A subscription of ``online:friends`` is a relay: on
subscribe the hub asks ``Access.friends`` once (a bounded list), registers the subscription as a
*relay* of each ``online:<friend>`` channel (``LocalChannel.relays``; the node registers interest in
those channels like for any subscriber, and its heartbeat and sweep cover them), answers ``sub.ok``
and one ``presence.snap`` of the friends online (one pipelined Redis round trip per 100 friends).
From then on nothing is done per friend: a ``presence.join``/``leave`` routed on ``online:<f>``
reaches the relays of that channel like any subscriber, re-labelled ``online:friends`` (encoded
once per event and node). ``online:<f>`` carries only ``f``'s own presence (the hub joins a user
to their own online channel and nobody else), so the re-labelled frame names ``f``. A revoke of
``online:<f>`` for a user (a block, an unfollow that ends the relationship) drops that user's relay
there and tells them ``f`` left. A friend gained later shows from the next subscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from protocol import codec
from protocol import frames as F
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.session import ServerSession, State
from realtime import keys
from realtime.broker import RedisBroker, Routed
from realtime.channels import FRIENDS, RECHECK_KIND, REVOKE_KIND, ChannelError, Permissions, parse_channel
from realtime.chat import ChatStore, Outgoing
from realtime.config import HubConfig
from realtime.connection import CLOSE_WAIT_S, Connection, Subscription, Transport
from realtime.limits import TokenBucket, UserLimits
from realtime.metrics import (
    CONNECTIONS,
    FANOUT_LAG,
    GAP_FILLS,
    RECOVERIES,
    drops,
    frames_in,
    frames_out,
)
from realtime.presence import Presence
from realtime.reactions import ReactionObserver, ReactionStore
from realtime.store import Appending, ChannelStore
from realtime.typing_ import TypingState
from realtime.writers import ChatWriter, EventWriter

log = structlog.get_logger(__name__)
#: Subscribers of one channel whose access is asked again at once (each ask is a query).
RECHECK_BATCH = 16

PRESENCE_KINDS = frozenset((F.PresenceJoin.TYPE, F.PresenceLeave.TYPE))
#: Failures of Redis or PostgreSQL themselves (not of a request): answered UNAVAILABLE, not INTERNAL.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    RedisError, OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
)
REPLAY_STALL_S = 10.0  # a resuming client that reads nothing for this long is cut off
#: The position ``sub.ok`` gives ``online:friends``: it carries presence only, nothing durable.
FRIENDS_EPOCH = "friends"


def _typist(payload: bytes) -> str | None:
    """The ``user`` of an encoded ``typing.ev`` (None if it cannot be read)."""
    try:
        frame = codec.decode_server(payload)
    except ProtocolError:
        return None
    return frame.user if isinstance(frame, F.TypingNotice) else None


def denied(message: str, request_id: int = 0) -> ProtocolError:
    return ProtocolError(message, ErrorCode.PERMISSION_DENIED, request_id)


@dataclass(eq=False, slots=True)
class LocalChannel:
    """A channel with subscribers on this node."""

    name: str
    subs: dict[str, Subscription] = field(default_factory=dict)
    epoch: str = ""
    last: int = 0
    ready: bool = False
    activating: asyncio.Future[None] | None = None
    early: list[Routed] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: ``online:<id>`` only: the ``online:friends`` subscriptions relaying its presence, by connection.
    relays: dict[str, Subscription] | None = None


class ChannelIndex:
    """Channel name -> local subscribers, split into shards so no single dict holds everything."""

    def __init__(self, shards: int = 16) -> None:
        self._shards: list[dict[str, LocalChannel]] = [{} for _ in range(max(1, shards))]

    def _shard(self, name: str) -> dict[str, LocalChannel]:
        return self._shards[zlib.crc32(name.encode()) % len(self._shards)]

    def get(self, name: str) -> LocalChannel | None:
        return self._shard(name).get(name)

    def get_or_create(self, name: str) -> LocalChannel:
        shard = self._shard(name)
        lc = shard.get(name)
        if lc is None:
            lc = shard[name] = LocalChannel(name)
        return lc

    def discard(self, lc: LocalChannel) -> None:
        shard = self._shard(lc.name)
        if shard.get(lc.name) is lc:
            del shard[lc.name]

    def __iter__(self) -> Iterator[LocalChannel]:
        for shard in self._shards:
            yield from list(shard.values())

    def __len__(self) -> int:
        return sum(len(s) for s in self._shards)


Handler = Callable[["Connection", Any], Awaitable[None]]


class Arrivals(Protocol):
    def arrived(self, user: str) -> None:
        """A socket of ``user`` opened. Called on the event loop: must not block or await."""
        ...


class Hub:
    def __init__(self, config: HubConfig, *, redis: aioredis.Redis, broker: RedisBroker, presence: Presence,
                 store: ChannelStore, chat: ChatStore, reactions: ReactionStore, permissions: Permissions) -> None:
        self.node_id = config.node_id
        self.redis = redis
        self.broker = broker
        self.presence = presence
        self.store = store
        self.chat = chat
        self.reactions = reactions
        #: Told of every reaction that changed (the composition root wires the feed's).
        self.reaction_observer: ReactionObserver | None = None
        #: Told of every socket that opens (the feed learns when people usually arrive: warming).
        self.arrivals: Arrivals | None = None
        self.permissions = permissions
        self.config = config
        self.max_frame = config.max_frame
        self.user_limits = UserLimits(redis, conn=broker.conn)
        self.chat_writer = ChatWriter(chat, broker, store, max_items=config.batch_items,
                                      window_s=config.batch_window_ms / 1000)
        self.event_writer = EventWriter(store, broker, max_items=config.batch_items,
                                        window_s=config.batch_window_ms / 1000)
        self.index = ChannelIndex(config.shards)
        self.connections: dict[str, Connection] = {}
        self.typing = TypingState(config.typing_throttle_s, config.typing_expire_s)
        self.accepts = TokenBucket(config.accept_rate, config.accept_rate * 2, time.monotonic())
        self.draining = False
        self.inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._ping_id = 0
        self._all_left = asyncio.Event()  # set when the last socket of a draining node went
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dirty: list[Connection] = []
        self._flush_scheduled = False
        self._handlers: dict[type[F.Frame], Handler] = {
            F.Ping: self._on_ping,
            F.Pong: self._on_nothing,
            F.PresenceHeartbeat: self._on_nothing,
            F.Subscribe: self._on_subscribe,
            F.Unsubscribe: self._on_unsubscribe,
            F.Publish: self._on_publish,
            F.Typing: self._on_typing,
            F.PresenceQuery: self._on_presence_query,
            F.React: self._on_react,
            F.ChatSend: self._on_chat_send,
            F.ChatHistory: self._on_chat_history,
            F.ChatReceipt: self._on_chat_receipt,
        }

    # -- writing -----------------------------------------------------------------------------------------

    def flush_soon(self, conn: Connection) -> None:
        """Have ``conn`` flushed at the end of this loop tick, with every other connection that
        queued frames meanwhile: one callback per tick, not one per connection."""
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()

    # -- tasks ----------------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the hub owns (cancelled on ``stop``)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("hub_task_failed", error=repr(task.exception()))

    async def cancel_tasks(self) -> None:
        await self.chat_writer.close()
        await self.event_writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)

    # -- connections ------------------------------------------------------------------------------------

    def accept_allowed(self) -> bool:
        """Whether a new socket may start now (per-node limit against reconnect storms)."""
        return not self.draining and self.accepts.take(time.monotonic())

    async def connect(self, transport: Transport, session: ServerSession, conn_id: str, user: str) -> Connection:
        """Register a socket whose session was just accepted (welcome sent)."""
        conn = Connection(self, transport, session, conn_id, user)
        self.connections[conn_id] = conn
        CONNECTIONS.inc()
        if self.arrivals is not None:
            self.arrivals.arrived(user)
        online = f"online:{user}"
        conn.presence_channels.add(online)
        try:
            if await self.presence.join(online, user, conn_id):
                await self._broadcast(online, F.PresenceJoin(ch=online, user=user))
        except Exception as exc:
            conn.log.warning("presence_join_failed", error=type(exc).__name__)
        return conn

    async def disconnected(self, conn: Connection) -> None:
        """The socket is gone: drop its subscriptions and presence (leaves follow after a grace)."""
        if self.connections.pop(conn.id, None) is None:
            return
        CONNECTIONS.dec()
        if not self.connections:
            self._all_left.set()
        conn.closing = True
        conn.stop_writer()
        conn.session.close()
        for sub in list(conn.subs.values()):
            self._drop_subscription(sub)
        for ch in conn.presence_channels:
            try:
                await self.presence.leave(ch, conn.user, conn.id)
            except Exception as exc:
                conn.log.warning("presence_leave_failed", error=type(exc).__name__)
        conn.presence_channels.clear()

    async def receive(self, conn: Connection, data: bytes) -> None:
        """Handle one message from the client. Never raises: every failure becomes an ``error``
        frame or a clean disconnect."""
        if conn.closing:
            return
        conn.heard = True  # any frame proves the client alive (SPEC §5.6)
        # The rate limit comes first: a flood of garbage must not buy decoding. A refused frame is
        # answered with its own id (SPEC §6, §11), read without decoding the frame.
        now = time.monotonic()
        if not conn.bucket.take(now):
            drops("rate_limited").inc()
            if conn.flood.refuse(now):
                await conn.close(CloseCode.FLOOD, "too many frames", reconnect=True, reconnect_after_ms=5000)
                return
            conn.send(F.Error(code=ErrorCode.RATE_LIMITED, message="slow down: frame refused unread",
                              id=codec.peek_request_id(data)))
            return
        try:
            frame = conn.session.receive_data(data)
        except ProtocolError as exc:
            await self._fail(conn, exc)
            return
        frames_in(frame.TYPE).inc()
        handler = self._handlers.get(type(frame))
        if handler is None:
            return
        self.inflight += 1
        self._idle.clear()
        try:
            await handler(conn, frame)
        except ProtocolError as exc:
            exc.request_id = exc.request_id or getattr(frame, "id", 0)
            if exc.code is ErrorCode.RATE_LIMITED and conn.flood.refuse(time.monotonic()):
                await conn.close(CloseCode.FLOOD, "too many refused frames", reconnect=True, reconnect_after_ms=5000)
                return
            await self._fail(conn, exc, ch=getattr(frame, "ch", ""))
        except UNAVAILABLE_ERRORS as exc:  # a dependency is down or slow: nothing was changed, retry
            conn.log.warning("handler_unavailable", frame=frame.TYPE, error=type(exc).__name__)
            await self._fail(conn, ProtocolError("temporarily unavailable, retry", ErrorCode.UNAVAILABLE,
                                                 getattr(frame, "id", 0)))
        except Exception:
            conn.log.exception("handler_failed", frame=frame.TYPE)
            await self._fail(conn, ProtocolError("internal error", ErrorCode.INTERNAL, getattr(frame, "id", 0)))
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self._idle.set()

    async def _fail(self, conn: Connection, exc: ProtocolError, ch: str = "") -> None:
        """Answer a refused frame with an ``error``. The socket keeps serving (a bad frame costs the
        sender one error, nothing else), except after an oversize frame, which is closed."""
        error = F.Error(code=int(exc.code), message=exc.message[:1024], id=exc.request_id, ch=ch)
        conn.send(error)  # the session drops a pending ``sub`` answered by this error
        if exc.code is ErrorCode.FRAME_TOO_LARGE:
            await conn.close(CloseCode.MESSAGE_TOO_BIG, "frame too large", reconnect=False)

    # -- liveness ------------------------------------------------------------------------------------------

    def ping_quiet(self) -> None:
        """One ping round (every ``ping_interval_s``, SPEC §5.6): a socket that heard nothing else
        from the server since the last round, or whose client said nothing, gets a protocol
        ``ping`` (one frame encoded once for all); a socket whose client left two pings in a row
        unanswered (nothing at all heard since) is closed (``1001``, ``reconnect=true``). Runs on the
        loop without awaiting: one pass over the node's connections."""
        self._ping_id = self._ping_id % 0xFFFF_FFFF + 1
        ping = codec.encode(F.Ping(id=self._ping_id))
        for conn in list(self.connections.values()):
            if conn.closing or conn.session.state not in (State.OPEN, State.DRAINING):
                continue
            if conn.heard:
                conn.unanswered = 0
            elif conn.pinged:
                conn.unanswered += 1
            if conn.unanswered >= 2:
                drops("ping_unanswered").inc()
                self.spawn(conn.close(CloseCode.GOING_AWAY, "pings unanswered", reconnect=True))
                continue
            conn.pinged = not conn.heard or not conn.spoke
            conn.heard = conn.spoke = False
            if conn.pinged:
                conn.push(ping, F.Ping.TYPE)
                conn.spoke = False  # the ping itself does not make the socket talkative

    # -- channels -----------------------------------------------------------------------------------------

    async def _activate(self, lc: LocalChannel) -> None:
        """Make this node receive ``lc``'s events and learn its position (once per channel)."""
        if lc.ready:
            return
        if lc.activating is not None:
            await asyncio.shield(lc.activating)
            return
        lc.activating = asyncio.get_running_loop().create_future()
        try:
            pos = await self.broker.watch(lc.name)
            if pos is None:
                pos = await self.store.position(lc.name)
            lc.epoch, lc.last = pos
            lc.ready = True
            early, lc.early = lc.early, []
            for routed in early:
                await self._deliver_durable(lc, routed)
            lc.activating.set_result(None)
        except BaseException as exc:
            lc.activating.set_exception(exc)
            lc.activating.exception()  # retrieved: waiters re-raise it
            lc.activating = None
            raise

    def _drop_subscription(self, sub: Subscription) -> None:
        conn = sub.conn
        if conn.subs.get(sub.channel) is sub:
            del conn.subs[sub.channel]
        if sub.relays is not None:
            relays, sub.relays = sub.relays, set()
            for name in relays:
                self._drop_relay(name, sub)
        lc = self.index.get(sub.channel)
        if lc is None:
            return
        if lc.subs.get(conn.id) is sub:
            del lc.subs[conn.id]
        if not lc.subs and not lc.relays:
            # No explicit unwatch: a ZREM racing a new subscriber's watch could unregister a node that
            # holds subscribers again. The registration simply lapses (interest TTL) once the
            # heartbeat stops refreshing it; events routed meanwhile are dropped on arrival.
            self.index.discard(lc)
        if sub.presence and sub.channel in conn.presence_channels and not sub.channel.startswith("online:"):
            conn.presence_channels.discard(sub.channel)
            self.spawn(self.presence.leave(sub.channel, conn.user, conn.id))

    # -- delivery (the inbox reader calls this, one event at a time, in inbox order) ----------------------

    async def deliver(self, routed: Routed) -> None:
        lc = self.index.get(routed.channel)
        FANOUT_LAG.observe(max(0.0, time.time() - routed.published_ms / 1000))
        if lc is None:
            return
        if routed.offset < 0:
            if routed.kind == REVOKE_KIND:
                self._revoke(lc, routed.payload.decode(errors="replace"))
                return
            if routed.kind == RECHECK_KIND:
                self.spawn(self.recheck(lc.name))
                return
            presence_only = routed.kind in PRESENCE_KINDS
            # Typing goes to the others (SPEC §9): never back to the typist's own sockets. Starts
            # are throttled per user, so reading the user out of the small frame costs little.
            typist = _typist(routed.payload) if routed.kind == F.TypingNotice.TYPE else None
            queued = 0
            for sub in list(lc.subs.values()):
                if presence_only and not sub.presence:
                    continue
                if typist is not None and sub.conn.user == typist:
                    continue
                queued += sub.conn.push(routed.payload, routed.kind, ephemeral=True)
            if presence_only and lc.relays:
                queued += self._relay(lc, routed.kind)
            if queued:
                frames_out(routed.kind).inc(queued)
            return
        if not lc.ready:
            lc.early.append(routed)
            return
        await self._deliver_durable(lc, routed)

    def _revoke(self, lc: LocalChannel, user: str) -> None:
        """``user`` lost access to ``lc``: end their subscriptions here (server-initiated unsub),
        and take the channel's user out of their ``online:friends`` (a leave)."""
        for sub in list(lc.subs.values()):
            if sub.conn.user == user:
                self._drop_subscription(sub)
                sub.conn.send(F.Unsubscribed(id=0, ch=lc.name))
        for sub in list((lc.relays or {}).values()):
            if sub.conn.user == user:
                if sub.relays is not None:
                    sub.relays.discard(lc.name)
                self._drop_relay(lc.name, sub)
                sub.conn.send(F.PresenceLeave(ch=FRIENDS, user=lc.name.partition(":")[2]))

    # -- access asked again (the social rules' facts changed) -------------------------------------------

    def watched(self, kind: str) -> list[str]:
        """The ids of the channels of ``kind`` (``post``) that have subscribers on this node."""
        prefix = f"{kind}:"
        return [lc.name[len(prefix):] for lc in self.index if lc.subs and lc.name.startswith(prefix)]

    async def recheck(self, channel: str, user: str | None = None) -> int:
        """Ask again whether each subscriber of ``channel`` on this node (only ``user``'s, if
        given) may subscribe, and end the subscriptions that may not (``unsub.ok`` with id 0), so a
        live subscription never outlives the right to it. Returns how many ended."""
        lc = self.index.get(channel)
        if lc is None:
            return 0
        users = sorted({sub.conn.user for sub in lc.subs.values() if user is None or sub.conn.user == user})
        refused: set[str] = set()
        for start in range(0, len(users), RECHECK_BATCH):
            batch = users[start:start + RECHECK_BATCH]
            answers = await asyncio.gather(*(self.permissions.can_subscribe(u, channel) for u in batch))
            refused.update(u for u, allowed in zip(batch, answers, strict=True) if not allowed)
        ended = 0
        for sub in list(lc.subs.values()):
            if sub.conn.user in refused:
                self._drop_subscription(sub)
                sub.conn.send(F.Unsubscribed(id=0, ch=channel))
                ended += 1
        return ended

    async def recheck_user(self, user: str, kind: str) -> int:
        """``recheck`` of every channel of ``kind`` that ``user`` subscribes to on this node."""
        prefix = f"{kind}:"
        channels = {ch for conn in list(self.connections.values()) if conn.user == user
                    for ch in conn.subs if ch.startswith(prefix)}
        ended = 0
        for channel in sorted(channels):
            ended += await self.recheck(channel, user)
        return ended

    # -- online:friends (see the module's docstring) -------------------------------------------------------

    def _relay(self, lc: LocalChannel, kind: str) -> int:
        """A presence change of ``lc`` (``online:<friend>``) to its relays, as ``online:friends``."""
        friend = lc.name.partition(":")[2]
        frame = F.PresenceJoin(ch=FRIENDS, user=friend) if kind == F.PresenceJoin.TYPE else \
            F.PresenceLeave(ch=FRIENDS, user=friend)
        data = codec.encode(frame)
        return sum(sub.conn.push(data, kind, ephemeral=True) for sub in list((lc.relays or {}).values()))

    def _drop_relay(self, name: str, sub: Subscription) -> None:
        lc = self.index.get(name)
        if lc is None or lc.relays is None or lc.relays.get(sub.conn.id) is not sub:
            return
        del lc.relays[sub.conn.id]
        if not lc.subs and not lc.relays:
            self.index.discard(lc)

    async def _subscribe_friends(self, conn: Connection, frame: F.Subscribe) -> None:
        relays: set[str] = set()
        sub = Subscription(conn, FRIENDS, True, buffer=None, relays=relays)
        conn.subs[FRIENDS] = sub
        try:
            friends = await self.permissions.access.friends(conn.user)
        except BaseException:
            self._drop_subscription(sub)
            raise
        if not self._answer_sub(sub, frame, FRIENDS_EPOCH, 0, True):
            return
        unwatched: list[str] = []
        for friend in friends:
            name = f"online:{friend}"
            lc = self.index.get_or_create(name)
            if lc.relays is None:
                lc.relays = {}
            lc.relays[conn.id] = sub
            relays.add(name)
            if not lc.ready:
                unwatched.append(name)  # no subscriber here watched it: register this node now
        await self.broker.refresh(unwatched)
        await self._friends_snapshot(conn, sub, frame.id)

    async def _friends_snapshot(self, conn: Connection, sub: Subscription, request_id: int) -> None:
        present, gone = await self.presence.occupied(sorted(sub.relays or ()))
        for ch, user in gone:
            self.broadcast_soon(ch, F.PresenceLeave(ch=ch, user=user))
        if conn.subs.get(FRIENDS) is not sub or conn.closing:
            return
        users = sorted(name.partition(":")[2] for name in present)
        limit = self.presence.config.snapshot_limit
        conn.send(F.PresenceSnapshot(ch=FRIENDS, users=tuple(users[:limit]), count=len(users),
                                     truncated=len(users) > limit, id=request_id))

    async def _deliver_durable(self, lc: LocalChannel, routed: Routed) -> None:
        async with lc.lock:
            if routed.offset <= lc.last:
                return  # already delivered (a late publisher, or the gap fill brought it)
            if routed.offset > lc.last + 1:
                missing = await self.read_range(lc.name, lc.last, routed.offset - 1)
                GAP_FILLS.labels("routed").inc()
                for off, data in missing:
                    if off > lc.last:
                        self._fanout(lc, off, data, routed.kind)
            self._fanout(lc, routed.offset, routed.payload, routed.kind)

    async def reconcile(self) -> None:
        """Position check: compare each local channel with the top of its Redis stream and deliver
        what never arrived (an event routed while this node's registration had lapsed, e.g. after a
        Redis restart, in a quiet channel where no later event would reveal the gap)."""
        channels = [lc for lc in self.index if lc.ready]
        if not channels:
            return
        tops = await self.broker.tops([lc.name for lc in channels], over_s=self.config.reconcile_s / 2)
        for lc, top in zip(channels, tops, strict=True):
            if top is not None and top > lc.last and self.index.get(lc.name) is lc:
                await self._catch_up(lc, top)

    async def _catch_up(self, lc: LocalChannel, top: int) -> None:
        async with lc.lock:
            if top <= lc.last:
                return
            missing = await self.read_range(lc.name, lc.last, top)
            if missing:
                GAP_FILLS.labels("reconcile").inc()
            for off, data in missing:
                if off > lc.last:
                    self._fanout(lc, off, data, "reconciled")

    def _fanout(self, lc: LocalChannel, offset: int, data: bytes, kind: str) -> None:
        lc.last = offset
        queued = 0
        for sub in list(lc.subs.values()):
            if sub.buffer is not None:
                sub.buffer.append((offset, data))
            elif offset > sub.offset:
                sub.offset = offset
                queued += sub.conn.push(data, kind)
        if queued:
            frames_out(kind).inc(queued)

    async def read_range(self, channel: str, after: int, upto: int) -> list[tuple[int, bytes]]:
        """Stored events ``after < offset <= upto``: from Redis when it holds them all, else from
        PostgreSQL (the source of truth)."""
        if upto <= after:
            return []
        try:
            found = await self.broker.history(channel, after, upto)
        except Exception as exc:
            log.warning("history_redis_failed", channel=channel, error=type(exc).__name__)
            found = None
        if found is not None:
            RECOVERIES.labels("redis").inc()
            return found
        RECOVERIES.labels("postgres").inc()
        return await self.store.range(channel, after, upto)

    # -- publishing ------------------------------------------------------------------------------------------

    async def _broadcast(self, channel: str, frame: F.Frame) -> None:
        await self.broker.broadcast(channel, codec.encode(frame), frame.TYPE)

    def broadcast_soon(self, channel: str, frame: F.Frame) -> None:
        self.spawn(self._broadcast(channel, frame))

    async def _user_allowed(self, conn: Connection, request_id: int) -> None:
        if not await self.user_limits.hit(conn.user, "write", self.config.user_rate, 10):
            drops("user_rate_limited").inc()
            raise ProtocolError("too many writes, slow down", ErrorCode.RATE_LIMITED, request_id)

    # -- handlers ----------------------------------------------------------------------------------------------

    async def _on_nothing(self, conn: Connection, frame: F.Frame) -> None:
        return

    async def _on_ping(self, conn: Connection, frame: F.Ping) -> None:
        conn.send(F.Pong(id=frame.id))

    async def _on_subscribe(self, conn: Connection, frame: F.Subscribe) -> None:
        ch = frame.ch
        try:
            kind, _ = parse_channel(ch)
            allowed = await self.permissions.can_subscribe(conn.user, ch)
        except ChannelError as exc:
            raise ProtocolError(exc.message, ErrorCode.CHANNEL_NOT_FOUND, frame.id) from None
        if not allowed:
            raise denied(f"not allowed to subscribe to {ch}", frame.id)
        if ch == FRIENDS:
            await self._subscribe_friends(conn, frame)
            return
        wants_presence = frame.presence or kind == "online"
        sub = Subscription(conn, ch, wants_presence)
        lc = self.index.get_or_create(ch)
        lc.subs[conn.id] = sub
        conn.subs[ch] = sub
        try:
            await self._activate(lc)
            top, epoch = lc.last, lc.epoch
            recovered, missed = True, list[tuple[int, bytes]]()
            if frame.epoch and frame.offset >= 0:
                recovered, missed = await self._recover(ch, frame.epoch, frame.offset, epoch, top)
        except BaseException:
            self._drop_subscription(sub)
            raise
        if not self._answer_sub(sub, frame, epoch, top, recovered):
            return
        sub.offset = top
        # Pace the replay by the writer: a long gap must not overflow the outbox by itself.
        pace = self.config.outbox_bytes // 2
        for _, data in missed:
            if conn.outbox.bytes > pace and not await conn.writable(pace, REPLAY_STALL_S):
                await conn.close(CloseCode.SLOW_CONSUMER, "slow consumer during resume", slow=True)
                return
            conn.push(data, "recovered")
            if sub.buffer is not None and len(sub.buffer) > self.config.max_recover:
                await conn.close(CloseCode.SLOW_CONSUMER, "too much arrived during resume", slow=True)
                return
        buffered, sub.buffer = sub.buffer or [], None
        for off, data in buffered:
            if off > sub.offset:
                sub.offset = off
                conn.push(data, "buffered")
        if wants_presence:
            await self._presence_on_subscribe(conn, sub, kind, frame.id)

    def _answer_sub(self, sub: Subscription, frame: F.Subscribe, epoch: str, offset: int, recovered: bool) -> bool:
        """Send ``sub.ok`` for ``sub``; False (and nothing sent) when it was unsubscribed or its
        socket went while it was being set up."""
        conn = sub.conn
        if conn.subs.get(sub.channel) is not sub or conn.closing:
            return False
        try:
            ok = conn.session.subscribed(frame, epoch=epoch, offset=offset, recovered=recovered)
        except ProtocolError:
            self._drop_subscription(sub)
            return False
        conn.push(codec.encode(ok), ok.TYPE)
        return True

    async def _recover(self, ch: str, epoch: str, offset: int, current_epoch: str,
                       top: int) -> tuple[bool, list[tuple[int, bytes]]]:
        if epoch != current_epoch or offset > top or top - offset > self.config.max_recover:
            RECOVERIES.labels("refused").inc()
            return False, []
        missed = await self.read_range(ch, offset, top)
        if len(missed) != top - offset:
            RECOVERIES.labels("incomplete").inc()
            return False, []
        return True, missed

    async def _presence_on_subscribe(self, conn: Connection, sub: Subscription, kind: str, request_id: int) -> None:
        ch = sub.channel
        if kind != "online" and ch not in conn.presence_channels:
            conn.presence_channels.add(ch)
            if await self.presence.join(ch, conn.user, conn.id):
                await self._broadcast(ch, F.PresenceJoin(ch=ch, user=conn.user))
        snap, left = await self.presence.snapshot(ch)
        for user in left:
            self.broadcast_soon(ch, F.PresenceLeave(ch=ch, user=user))
        conn.send(F.PresenceSnapshot(ch=ch, users=snap.users, count=snap.count, truncated=snap.truncated,
                                     id=request_id))

    async def _on_unsubscribe(self, conn: Connection, frame: F.Unsubscribe) -> None:
        sub = conn.subs.get(frame.ch)
        if sub is not None:
            self._drop_subscription(sub)
        conn.send(F.Unsubscribed(id=frame.id, ch=frame.ch))

    async def _on_publish(self, conn: Connection, frame: F.Publish) -> None:
        if not await self.permissions.can_publish(conn.user, frame.ch):
            raise denied(f"not allowed to publish to {frame.ch}", frame.id)
        await self._user_allowed(conn, frame.id)
        ch, sender, data = frame.ch, conn.user, frame.data

        def build(epoch: str, offset: int, mid: str, ts: int) -> F.Frame:
            return F.Event(ch=ch, epoch=epoch, offset=offset, mid=mid, sender=sender, data=data, ts=ts)

        # Refuse what would not fit in a frame before storing anything (positions at their widest).
        if len(codec.encode(build("f" * 16, 2**62, "f" * 32, 2**62))) > self.max_frame:
            raise ProtocolError("event too large", ErrorCode.MESSAGE_TOO_LARGE, frame.id)
        # Group commit: stored and published with the other events of this moment.
        stored = await self.event_writer.append(Appending(ch, "event", sender, frame.key or None, build,
                                                          F.Event.TYPE))
        conn.send(F.Ack(id=frame.id, ch=ch, offset=stored.offset, mid=stored.mid))

    async def _on_typing(self, conn: Connection, frame: F.Typing) -> None:
        now = time.monotonic()
        ch, user = frame.ch, conn.user
        if frame.active:
            # Locally first (free), then across nodes: a user typing on two devices on two nodes
            # still makes one start per channel per throttle window. A start dropped here is a
            # refresh of one already announced (it keeps the typist alive, see typing_.py).
            if not self.typing.start(ch, user, now):
                drops("typing_throttled").inc()
                return
            if not await self.redis.set(keys.typing_throttle(ch, user), self.node_id, nx=True,
                                        px=int(self.config.typing_throttle_s * 1000)):
                self.typing.cancel(ch, user)  # another node announced it: its expiry, not ours
                drops("typing_throttled").inc()
                return
        else:
            if not self.typing.stop(ch, user):
                return
            # Stopped: the next start is a new one and goes out at once (SPEC §9).
            await self.redis.delete(keys.typing_throttle(ch, user))
        await self._broadcast(ch, F.TypingNotice(ch=ch, user=user, active=frame.active))

    async def typing_expired(self) -> None:
        """Announce typists silent for too long as stopped (called every second by the node)."""
        for ch, user in self.typing.expired(time.monotonic()):
            await self._broadcast(ch, F.TypingNotice(ch=ch, user=user, active=False))

    async def _on_presence_query(self, conn: Connection, frame: F.PresenceQuery) -> None:
        friends = conn.subs.get(FRIENDS) if frame.ch == FRIENDS else None
        if friends is not None:
            await self._friends_snapshot(conn, friends, frame.id)
            return
        snap, left = await self.presence.snapshot(frame.ch)
        for user in left:
            self.broadcast_soon(frame.ch, F.PresenceLeave(ch=frame.ch, user=user))
        conn.send(F.PresenceSnapshot(ch=frame.ch, users=snap.users, count=snap.count,
                                     truncated=snap.truncated, id=frame.id))

    async def _on_react(self, conn: Connection, frame: F.React) -> None:
        if frame.target_kind == "post":
            ch = f"post:{frame.target_id}"
            try:
                parse_channel(ch)
            except ChannelError:
                raise ProtocolError("no such post", ErrorCode.NOT_FOUND, frame.id) from None
            if not await self.permissions.access.can_see_post(conn.user, frame.target_id):
                raise denied("cannot react to this post", frame.id)
        elif frame.target_kind == "message":
            room = await self.chat.room_of_message(frame.target_id)
            if room is None:
                raise ProtocolError("no such message", ErrorCode.NOT_FOUND, frame.id)
            if not await self.permissions.access.is_member(room, conn.user):
                raise denied("cannot react to this message", frame.id)
            ch = f"room:{room}"
        else:
            raise ProtocolError("unknown target kind", ErrorCode.INVALID_FIELD, frame.id)
        if not frame.emoji or len(frame.emoji) > 32:
            raise ProtocolError("emoji must be 1-32 characters", ErrorCode.INVALID_FIELD, frame.id)
        await self._user_allowed(conn, frame.id)
        changed = await self.reactions.toggle(frame.target_kind, frame.target_id, conn.user, frame.emoji, frame.on)
        conn.send(F.Ack(id=frame.id, ch=ch))
        if changed:
            await self._counts_changed(ch, frame.target_kind, frame.target_id)
            if self.reaction_observer is not None:
                self.spawn(self.reaction_observer.reaction_changed(frame.target_kind, frame.target_id, conn.user,
                                                                   frame.emoji, frame.on))

    async def _counts_changed(self, ch: str, target_kind: str, target_id: str) -> None:
        window = self.config.reaction_window_ms
        if await self.redis.set(keys.reaction_flush(target_kind, target_id), self.node_id, nx=True, px=window):
            self.spawn(self._flush_counts(ch, target_kind, target_id, window / 1000 + 0.02))

    async def _flush_counts(self, ch: str, target_kind: str, target_id: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)  # the coalescing window: later taps ride on this broadcast
        counts = await self.reactions.counts(target_kind, target_id)
        await self._broadcast(ch, F.ReactionCounts(ch=ch, target_kind=target_kind, target_id=target_id,
                                                   counts=counts))

    async def _on_chat_send(self, conn: Connection, frame: F.ChatSend) -> None:
        try:
            parse_channel(f"room:{frame.room}")
        except ChannelError:
            raise ProtocolError("no such room", ErrorCode.CHANNEL_NOT_FOUND, frame.id) from None
        await self._user_allowed(conn, frame.id)
        try:  # group commit: stored and published with the other sends of this moment
            sent = await self.chat_writer.send(Outgoing(frame.room, conn.user, frame.cmid, frame.body,
                                                        frame.reply_to))
        except ProtocolError as exc:
            exc.request_id = frame.id
            raise
        msg = sent.message
        conn.send(F.ChatAck(id=frame.id, room=frame.room, cmid=frame.cmid, mid=msg.mid, offset=msg.offset,
                            ts=msg.ts))

    async def _member_of(self, conn: Connection, room: str, request_id: int) -> None:
        try:
            parse_channel(f"room:{room}")
        except ChannelError:
            raise ProtocolError("no such room", ErrorCode.CHANNEL_NOT_FOUND, request_id) from None
        if not await self.permissions.access.is_member(room, conn.user):
            raise denied("not a member of this room", request_id)

    async def _on_chat_history(self, conn: Connection, frame: F.ChatHistory) -> None:
        await self._member_of(conn, frame.room, frame.id)
        messages, more = await self.chat.history(frame.room, frame.before, frame.limit)
        # Keep the page under the frame cap: drop the oldest and say there is more.
        budget, kept = self.max_frame - 512, []
        for msg in messages:
            size = len(codec.encode(msg)) + 8
            if size > budget:
                more = True
                break
            budget -= size
            kept.append(msg)
        conn.send(F.ChatPage(id=frame.id, room=frame.room, messages=tuple(kept), more=more))

    async def _on_chat_receipt(self, conn: Connection, frame: F.ChatReceipt) -> None:
        await self._member_of(conn, frame.room, 0)
        if frame.kind not in F.RECEIPT_KINDS:
            raise ProtocolError("unknown receipt kind", ErrorCode.INVALID_FIELD)
        stored = await self.chat.receipt(frame.room, conn.user, frame.kind, frame.offset)
        if stored is not None:  # the position as stored: never past the room's last offset
            ch = f"room:{frame.room}"
            await self._broadcast(ch, F.ReceiptNotice(ch=ch, room=frame.room, user=conn.user,
                                                      offset=stored, kind=frame.kind))

    # -- drain ---------------------------------------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> None:
        """Stop accepting, tell every client to reconnect elsewhere (SPEC §5.8), then keep serving
        for the drain window: everything but a new ``sub`` works (chat included) while each client
        opens its new socket, resubscribes and closes this one. Sockets still open at the end of
        the window get ``disconnect(4010)`` with the ``reconnect_after_ms`` their ``drain`` gave,
        then the close. Returns within ``timeout_s``, earlier once every client has left."""
        self.draining = True
        deadline = time.monotonic() + timeout_s
        spread_ms = max(500, min(5000, int(timeout_s * 250)))
        for conn in list(self.connections.values()):
            if conn.session.state is State.OPEN:
                conn.drain_after_ms = random.randint(0, spread_ms)
                frame = conn.session.drain(conn.drain_after_ms)  # checked and recorded
                conn.push(codec.encode(frame), frame.TYPE)
        # The window: leave room at its end for in-flight requests and the close handshakes.
        window_end = deadline - CLOSE_WAIT_S * 2
        if self.connections:
            self._all_left.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_left.wait(), max(0.0, window_end - time.monotonic()))
        if not self._idle.is_set():
            try:
                await asyncio.wait_for(self._idle.wait(), max(0.05, deadline - time.monotonic() - CLOSE_WAIT_S))
            except TimeoutError:
                log.warning("drain_inflight_left", inflight=self.inflight)
        closes = [conn.close(CloseCode.DRAINING, "node draining", reconnect_after_ms=conn.drain_after_ms)
                  for conn in list(self.connections.values())]
        if closes:
            await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True),
                                   max(0.1, deadline - time.monotonic()))
