"""Cross-node fan-out on Redis Streams.

Shape (see keys.py for the key layout and the Redis Cluster argument):

* every channel has a short capped history stream and a meta hash (epoch, top offset);
* a durable event is appended by ``publish.lua`` at the offset PostgreSQL assigned, which returns the
  nodes registered as holding subscribers of the channel; the event (the encoded frame, encoded once)
  is then XADDed to each of those nodes' inbox streams in one pipeline. Publishing costs Redis work
  proportional to the nodes that care, never to the total number of channels or nodes;
* each node reads only its own inbox (``XREAD BLOCK``) and fans out locally; a node publishing an
  event its own subscribers want hands it to them directly (``local``) instead of through its own
  inbox: one XADD and one inbox read less per event;
* ephemeral events (typing, presence diffs, reaction counts, receipts) skip the history and go
  straight to the inboxes, with offset -1.

Order. Offsets come from PostgreSQL, so two publishers of one channel may reach Redis out of order
(offset 6 before 5). The script refuses to leave a hole: offset 6 on top 4 answers "gap" and the
publisher first appends 5 from PostgreSQL (``Backfill``), then 6; the late 5 is then a duplicate.
A channel with no stream yet (new, or lost) of at most 64 events starts whole the same way, from 0.
A receiving node that sees an offset above the next one it expects refills from the stream (or
PostgreSQL) before delivering, and drops offsets it already delivered. So every node delivers each
channel's events in offset order, without holes or duplicates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
import structlog

from realtime import keys, pacing
from realtime.metrics import REDIS_OP
from realtime.redisconn import RespConnection, evalsha_command, raising, run_script
from realtime.scripts import Scripts

log = structlog.get_logger(__name__)

REDIS_OP_PUBLISH_MANY = REDIS_OP.labels("publish_many")
REDIS_OP_ROUTE = REDIS_OP.labels("route")

APPENDED, DUPLICATE, GAP = 0, 1, 2
READ_MARGIN_S = 10.0  # an inbox read may take its block time and this much more

#: Loads stored events of a channel with ``after < offset <= upto`` from the source of truth, in
#: order, as ``(offset, encoded frame)``.
Backfill = Callable[[str, int, int], Awaitable[list[tuple[int, bytes]]]]
#: Delivers an event to this node's own subscribers (the hub's ``deliver``).
LocalDelivery = Callable[["Routed"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Routed:
    """One event read from this node's inbox."""

    channel: str
    offset: int  # -1 for an ephemeral event
    kind: str  # the frame type, for metrics and presence filtering
    published_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    history_size: int = 1000  # events kept per channel stream (MAXLEN ~)
    history_ttl_s: int = 7 * 24 * 3600  # an idle channel's stream expires; PostgreSQL keeps the rest
    inbox_size: int = 100_000  # MAXLEN ~ of a node inbox: bounds what a stalled node leaves behind
    interest_ttl_s: float = 15.0  # a node's registration for a channel lives this long unless refreshed
    max_backfill: int = 10_000  # a larger hole is not replayed: the stream restarts (new clients resync)


@dataclass(frozen=True, slots=True)
class Publication:
    """A stored durable event to append and route (``RedisBroker.publish_many``)."""

    channel: str
    epoch: str
    offset: int
    payload: bytes
    kind: str


class Broker(Protocol):
    async def publish(self, channel: str, epoch: str, offset: int, payload: bytes, kind: str,
                      backfill: Backfill) -> None: ...

    async def broadcast(self, channel: str, payload: bytes, kind: str) -> None: ...


def _now_ms() -> int:
    return int(time.time() * 1000)


class RedisBroker:
    """The Redis Streams broker of one node (``node_id``); publish-only users pass any id."""

    def __init__(self, redis: aioredis.Redis, node_id: str, config: BrokerConfig | None = None) -> None:
        self.redis = redis
        self.node_id = node_id
        self._self = node_id.encode()
        self.config = config or BrokerConfig()
        self.scripts = Scripts.register(redis)
        #: The hot paths (append, route, inbox read) and the chores skip redis-py: far less CPU per
        #: round trip (redisconn.py), each call bounded there. The inbox read blocks, so it has a
        #: connection of its own, bounded here by the block time.
        self.conn = RespConnection.like(redis)
        self._reader = RespConnection.like(redis, blocking=True)
        self._inbox = keys.node_inbox(node_id)
        #: Set by a hub node: events routed to this node skip its inbox and go here. Ordering and
        #: duplicates are the receiver's business either way (offsets, gap fills: hub.py), so an
        #: event arriving this way ahead of an earlier one still in an inbox is still delivered in order.
        self.local: LocalDelivery | None = None

    # -- publishing ---------------------------------------------------------------------------------

    async def publish(self, channel: str, epoch: str, offset: int, payload: bytes, kind: str,
                      backfill: Backfill) -> None:
        """Append a durable event stored in PostgreSQL at ``offset`` and route it to the nodes that
        hold subscribers. Idempotent: republishing an offset already in the stream does nothing."""
        status, top, nodes = await self._append(channel, epoch, offset, payload)
        if status == GAP:
            missing = offset - top - 1
            if missing > self.config.max_backfill:
                log.warning("publish_gap_too_large", channel=channel, top=top, offset=offset)
                await self.redis.delete(keys.channel_meta(channel))  # restart the stream here
            else:
                for off, data in await backfill(channel, top, offset - 1):
                    s, _, n = await self._append(channel, epoch, off, data)
                    if s == APPENDED:
                        await self._route(channel, off, kind, data, n)
            status, top, nodes = await self._append(channel, epoch, offset, payload)
        if status == APPENDED:
            await self._route(channel, offset, kind, payload, nodes)

    async def publish_many(self, events: Sequence[Publication], backfill: Backfill) -> None:
        """``publish`` for a batch of stored events, in two pipelined round trips: every append
        (``publish.lua``), then every route. Events of one channel must come in offset order. An
        event the pipeline could not append (a gap: another node's earlier offset has not reached
        Redis yet; or an error) goes through ``publish`` afterwards, in order, which backfills; any
        later event of its channel in the batch was refused as a gap too, so per-channel order holds."""
        if len(events) <= 1:
            for ev in events:
                await self.publish(ev.channel, ev.epoch, ev.offset, ev.payload, ev.kind, backfill)
            return
        cfg, now = self.config, _now_ms()
        sha = self.scripts.publish.sha
        started = time.perf_counter()
        appends = [evalsha_command(sha, (keys.channel_meta(ev.channel), keys.channel_stream(ev.channel),
                                         keys.channel_nodes(ev.channel)),
                                   (ev.epoch, ev.offset, ev.payload, cfg.history_size, now, cfg.history_ttl_s))
                   for ev in events]
        replies = await self.conn.pipeline(appends)  # NOSCRIPT, like a gap, goes to ``publish``
        REDIS_OP_PUBLISH_MANY.observe(time.perf_counter() - started)
        routes: list[tuple[Publication, list[bytes]]] = []
        retry: list[Publication] = []
        for ev, reply in zip(events, replies, strict=True):
            if isinstance(reply, BaseException) or int(reply[0]) == GAP:
                retry.append(ev)
            elif int(reply[0]) == APPENDED:
                routes.append((ev, reply[2]))
        mine: list[Routed] = []
        remote: list[list[Any]] = []
        for ev, nodes in routes:
            for node in nodes:
                if node == self._self and self.local is not None:
                    mine.append(Routed(ev.channel, ev.offset, ev.kind, now, ev.payload))
                else:
                    remote.append(self._xadd(node.decode(), ev.channel, ev.offset, ev.kind, now, ev.payload))
        if remote:
            started = time.perf_counter()
            await self._checked(remote)
            REDIS_OP_ROUTE.observe(time.perf_counter() - started)
        for routed in mine:
            await self._deliver_here(routed)
        for ev in retry:
            await self.publish(ev.channel, ev.epoch, ev.offset, ev.payload, ev.kind, backfill)

    async def _append(self, channel: str, epoch: str, offset: int, payload: bytes) -> tuple[int, int, list[str]]:
        started = time.perf_counter()
        result: list[Any] = await run_script(
            self.conn, self.scripts.publish,
            (keys.channel_meta(channel), keys.channel_stream(channel), keys.channel_nodes(channel)),
            (epoch, offset, payload, self.config.history_size, _now_ms(), self.config.history_ttl_s),
        )
        REDIS_OP.labels("publish").observe(time.perf_counter() - started)
        return int(result[0]), int(result[1]), [n.decode() for n in result[2]]

    async def broadcast(self, channel: str, payload: bytes, kind: str) -> None:
        """Route an ephemeral event (never stored) to the nodes holding subscribers of ``channel``."""
        started = time.perf_counter()
        raw: list[bytes] = await run_script(self.conn, self.scripts.nodes, (keys.channel_nodes(channel),),
                                            (_now_ms(),))
        REDIS_OP.labels("nodes").observe(time.perf_counter() - started)
        await self._route(channel, -1, kind, payload, [n.decode() for n in raw])

    async def _route(self, channel: str, offset: int, kind: str, payload: bytes, nodes: Sequence[str]) -> None:
        now = _now_ms()
        here = self.local is not None and self.node_id in nodes
        others = [n for n in nodes if n != self.node_id] if here else nodes
        if others:
            started = time.perf_counter()
            await self._checked([self._xadd(node, channel, offset, kind, now, payload) for node in others])
            REDIS_OP_ROUTE.observe(time.perf_counter() - started)
        if here:
            await self._deliver_here(Routed(channel, offset, kind, now, payload))

    def _xadd(self, node: str, channel: str, offset: int, kind: str, now: int, payload: bytes) -> list[Any]:
        return ["XADD", keys.node_inbox(node), "MAXLEN", "~", self.config.inbox_size, "*",
                "c", channel, "o", offset, "k", kind, "ts", now, "p", payload]

    async def _checked(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """One pipeline on the lean connection; the first error reply is raised."""
        return raising(await self.conn.pipeline(commands))

    async def _deliver_here(self, routed: Routed) -> None:
        if self.local is None:
            return
        try:
            await self.local(routed)
        except Exception as exc:  # stored already: the next event's gap fill or the position check delivers it
            log.warning("local_delivery_failed", channel=routed.channel, offset=routed.offset,
                        error=type(exc).__name__)

    # -- interest and position ------------------------------------------------------------------------

    async def watch(self, channel: str) -> tuple[str, int] | None:
        """Register this node for ``channel`` and return its position ``(epoch, top)`` in Redis, or
        None when Redis holds no stream for it (never published, expired or lost). Every event
        appended above the returned top is routed to this node."""
        started = time.perf_counter()
        expiry = _now_ms() + int(self.config.interest_ttl_s * 1000)
        epoch, top = await self.scripts.watch(
            keys=[keys.channel_nodes(channel), keys.channel_meta(channel)],
            args=[self.node_id, expiry, int(self.config.interest_ttl_s * 2) + 1],
        )
        REDIS_OP.labels("watch").observe(time.perf_counter() - started)
        if epoch is None or top is None:
            return None
        return epoch.decode(), int(top)

    async def refresh(self, channels: Sequence[str], *, over_s: float = 0.0) -> None:
        """Heartbeat: keep this node registered for every channel it holds subscribers of (in
        slices spread over about ``over_s``), and keep its inbox alive."""
        ttl = int(self.config.interest_ttl_s * 2) + 1
        await self.conn.call("EXPIRE", self._inbox, 3600)
        async for part in pacing.sliced(channels, pacing.SLICE // 2, over_s=over_s):  # a chore (pacing.py)
            started = time.perf_counter()
            expiry = _now_ms() + int(self.config.interest_ttl_s * 1000)
            commands: list[tuple[str | int, ...]] = []
            for ch in part:
                commands += (("ZADD", keys.channel_nodes(ch), expiry, self.node_id),
                             ("EXPIRE", keys.channel_nodes(ch), ttl))
            await self._checked(commands)
            REDIS_OP.labels("refresh").observe(time.perf_counter() - started)

    async def tops(self, channels: Sequence[str], *, over_s: float = 0.0) -> list[int | None]:
        """The top offset of each channel's stream (None: no stream), in slices spread over about
        ``over_s``."""
        out: list[int | None] = []
        async for part in pacing.sliced(channels, over_s=over_s):  # a chore (pacing.py)
            started = time.perf_counter()
            raw = await self._checked([("HGET", keys.channel_meta(ch), "top") for ch in part])
            REDIS_OP.labels("tops").observe(time.perf_counter() - started)
            out += [None if v is None else int(v) for v in raw]
        return out

    def close(self) -> None:
        """Close the broker's own connections (the redis-py clients belong to the caller)."""
        self.conn.close()
        self._reader.close()

    async def unwatch(self, channel: str) -> None:
        await self.redis.zrem(keys.channel_nodes(channel), self.node_id)

    # -- reading ----------------------------------------------------------------------------------------

    async def history(self, channel: str, after: int, upto: int) -> list[tuple[int, bytes]] | None:
        """Events ``after < offset <= upto`` from the Redis stream, or None when the stream does not
        hold the whole range (trimmed, expired or lost): the caller reads PostgreSQL instead."""
        if upto <= after:
            return []
        started = time.perf_counter()
        entries: Any = await self.redis.xrange(keys.channel_stream(channel), f"{after + 1}-0", f"{upto}-0")
        REDIS_OP.labels("history").observe(time.perf_counter() - started)
        out = [(int(eid.split(b"-", 1)[0]), fields[b"p"]) for eid, fields in entries]
        if len(out) != upto - after or (out and out[0][0] != after + 1):
            return None
        return out

    async def read_inbox(self, last_id: str, *, block_ms: int = 2000, count: int = 1000) -> tuple[str, list[Routed]]:
        """Next events routed to this node after ``last_id`` (``"$"`` for "from now on")."""
        if last_id == "$":
            # Resolve "$" once so that nothing routed between two reads is skipped.
            info: Any = await self.redis.xrevrange(self._inbox, count=1)
            last_id = info[0][0].decode() if info else "0-0"
        async with asyncio.timeout(block_ms / 1000 + READ_MARGIN_S):
            reply: Any = await self._reader.call("XREAD", "COUNT", count, "BLOCK", block_ms,
                                                 "STREAMS", self._inbox, last_id)
        out: list[Routed] = []
        for _stream, entries in reply or ():
            for eid, flat in entries:
                last_id = eid.decode()
                try:
                    f = dict(zip(flat[::2], flat[1::2], strict=True))
                    out.append(Routed(
                        channel=f[b"c"].decode(), offset=int(f[b"o"]), kind=f[b"k"].decode(),
                        published_ms=int(f[b"ts"]), payload=f[b"p"],
                    ))
                except (KeyError, ValueError, UnicodeDecodeError):
                    log.warning("inbox_entry_malformed", entry=eid)
        return last_id, out
