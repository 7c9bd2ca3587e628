"""HubNode: the hub role's long-lived state and tasks, and the routes it serves.

Tasks the node owns (all cancelled by ``stop``):

* the inbox reader: ``XREAD BLOCK`` on this node's inbox, each routed event handed to the hub;
* the heartbeat (every ``AMARO_HUB_PRESENCE_HEARTBEAT`` s): keeps this node registered for the
  channels it holds subscribers of, and refreshes its connections' presence entries;
* the sweeper (every second): removes expired presence entries of watched channels (a dead node's
  users) and announces the leaves; announces typists gone silent;
* the position check (every ``AMARO_HUB_RECONCILE`` s): compares each local channel with the top of
  its stream and delivers anything that was never routed here;
* the ping round (every ``AMARO_PING_INTERVAL`` s): protocol ``ping`` frames on quiet sockets, and
  the close of sockets that left two unanswered (SPEC §5.6).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import redis.asyncio as aioredis
import structlog

from protocol.frames import PresenceJoin, PresenceLeave
from realtime.broker import RedisBroker
from realtime.channels import Access, Permissions
from realtime.chat import ChatStore
from realtime.config import HubConfig
from realtime.events import EventSink
from realtime.hub import Hub
from realtime.limits import UserLimits
from realtime.presence import Presence
from realtime.reactions import ReactionStore
from realtime.store import ChannelStore
from realtime.ws import AccessTokens, SocketServer

log = structlog.get_logger(__name__)


class HubNode:
    """One hub node. ``redis`` is the hub's own pool (sized ``config.redis_connections``, waiting
    when exhausted, so a burst of connects or publishes waits instead of failing); the caller opens
    and closes it and the database pool."""

    def __init__(self, config: HubConfig, *, redis: aioredis.Redis, db: asyncpg.Pool, access: Access,
                 tokens: AccessTokens) -> None:
        self.config = config
        self.redis = redis
        self.broker = RedisBroker(redis, config.node_id, config.broker)
        self.presence = Presence(redis, config.presence, self.broker.scripts, conn=self.broker.conn)
        self.store = ChannelStore(db)
        self.hub = Hub(
            config, redis=redis, broker=self.broker, presence=self.presence, store=self.store,
            chat=ChatStore(db), reactions=ReactionStore(db), permissions=Permissions(access),
        )
        self.broker.local = self.hub.deliver  # this node's own subscribers: no trip through its inbox
        #: Durable media/feed events for other components of this process (uploads, feed).
        self.events = EventSink(self.store, self.broker)
        #: Per-user fixed windows shared by every node (the hub's own write limits use them too).
        self.limits: UserLimits = self.hub.user_limits
        self.sockets = SocketServer(self.hub, tokens)
        self._tasks: list[asyncio.Task[None]] = []
        self._interest_refreshed = 0.0

    @property
    def draining(self) -> bool:
        return self.hub.draining

    async def start(self, host: str, port: int) -> None:
        """Listen for sockets on ``host:port`` (0: any free port, see ``sockets.port``) and start
        the inbox reader, the heartbeat, the sweeper and the position check."""
        if self._tasks:
            return
        await self.sockets.listen(host, port)
        self._tasks = [
            asyncio.create_task(self._read_inbox(), name="hub-inbox"),
            asyncio.create_task(self._every(self.config.presence.heartbeat_s, self._heartbeat), name="hub-heartbeat"),
            asyncio.create_task(self._every(self.config.presence.sweep_s, self._sweep), name="hub-sweep"),
            asyncio.create_task(self._every(self.config.reconcile_s, self.hub.reconcile), name="hub-reconcile"),
            asyncio.create_task(self._every(self.config.ping_interval_s, self._ping), name="hub-ping"),
        ]
        log.info("hub_started", node=self.config.node_id, ws_port=self.sockets.port)

    async def revoke(self, channel: str, user: str) -> None:
        """End ``user``'s subscriptions of ``channel`` on every node."""
        await self.events.revoke(channel, user)

    async def drain(self) -> None:
        """Stop accepting sockets, tell clients to reconnect elsewhere (jittered), finish in-flight
        requests, close every socket; within ``drain_timeout_s``."""
        if self.hub.draining:
            return
        await self.hub.drain(max(0.5, self.config.drain_timeout_s - 0.5))

    async def stop(self) -> None:
        """Cancel every task this node owns and close what is left."""
        self.hub.draining = True
        await self.sockets.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for conn in list(self.hub.connections.values()):
            conn.stop_writer()
            conn.transport.abort()
        await self.hub.cancel_tasks()
        self.broker.close()

    # -- tasks ------------------------------------------------------------------------------------------

    async def _read_inbox(self) -> None:
        last_id = "$"
        while True:
            try:
                last_id, batch = await self.broker.read_inbox(last_id, block_ms=1000)
                for routed in batch:
                    await self.hub.deliver(routed)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("inbox_read_failed")
                await asyncio.sleep(0.5)

    async def _every(self, period_s: float, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` every ``period_s``, start to start: chores spread their slices over part of
        their period (pacing.py), which must not stretch the period itself."""
        loop = asyncio.get_running_loop()
        due = loop.time() + period_s
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due + period_s, loop.time())  # an overrun step does not queue up runs
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hub_step_failed", step=step.__name__)

    async def _ping(self) -> None:
        self.hub.ping_quiet()

    async def _heartbeat(self) -> None:
        hub = self.hub
        spread = self.config.presence.heartbeat_s / 2  # slices spread over half the period (pacing.py)
        entries = [(ch, c.user, c.id) for c in list(hub.connections.values()) for ch in c.presence_channels]
        back, _ = await asyncio.gather(self.presence.refresh(entries, over_s=spread), self._refresh_interest(spread))
        for ch, user in back:
            hub.broadcast_soon(ch, PresenceJoin(ch=ch, user=user))

    async def _refresh_interest(self, spread_s: float) -> None:
        # Channel registrations live ``interest_ttl_s`` (15 s): refreshing them every third of that
        # is enough (new channels register when subscribed), and halves the heartbeat's Redis work.
        now = time.monotonic()
        if now - self._interest_refreshed >= self.config.broker.interest_ttl_s / 3:
            self._interest_refreshed = now
            await self.broker.refresh([lc.name for lc in self.hub.index], over_s=spread_s)

    async def _sweep(self) -> None:
        hub = self.hub
        watched = [lc.name for lc in hub.index if lc.relays or any(s.presence for s in lc.subs.values())]
        for ch, user in await self.presence.sweep(watched, over_s=self.config.presence.sweep_s / 2):
            hub.broadcast_soon(ch, PresenceLeave(ch=ch, user=user))
        await hub.typing_expired()
