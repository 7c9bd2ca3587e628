"""Durable server events for other parts of the system: media pipeline events and feed updates.

``EventSink`` stores each event in PostgreSQL (``channel_events``) and then publishes it on the
user's personal channel ``user:<id>``. It needs no running hub: the composition root builds one for
every role that emits events (a worker, an ingest node). A retried media event of the same upload
and phase is stored once (idempotency key), progress events excepted (each one is news).

Every call is bounded by ``timeout_s``: a sink that cannot store in time raises ``TimeoutError``
rather than holding its caller (an upload request, a media job) for as long as PostgreSQL is away.
The event may still be stored after the deadline; its idempotency key makes a retry harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from protocol.frames import MEDIA_PHASES, Event, FeedUpdate, Frame, MediaEvent
from realtime.broker import RedisBroker
from realtime.channels import RECHECK_KIND, REVOKE_KIND
from realtime.store import Appending, ChannelStore
from realtime.writers import EventWriter

#: Up to this many recipients, one frame for many users shares the lane of single events.
SMALL_FANOUT = 32
#: Events per transaction in the fan-out lane.
FANOUT_BATCH = 1024


def _feed_item(user_id: str, kind: str, payload: dict[str, Any], idem_key: str | None) -> Appending:
    ch = f"user:{user_id}"

    def build(epoch: str, offset: int, mid: str, ts: int) -> Frame:
        return FeedUpdate(ch=ch, epoch=epoch, offset=offset, mid=mid, kind=kind, data=payload, ts=ts)

    return Appending(ch, "feed", "", idem_key, build, FeedUpdate.TYPE)


class EventSink:
    def __init__(self, store: ChannelStore, broker: RedisBroker, *, timeout_s: float = 2.0) -> None:
        self.store = store
        self.broker = broker
        self.timeout_s = timeout_s
        #: Group commit: events stored at the same moment share one transaction and one publish.
        self.writer = EventWriter(store, broker)
        #: One frame for many users (a post's followers) commits in a lane of its own, in larger
        #: batches, so a post with ten thousand followers queues nobody else's events behind it.
        self.fanout_writer = EventWriter(store, broker, max_items=FANOUT_BATCH)

    async def media_event(self, user_id: str, upload_id: str, post_id: str, phase: str,
                          data: dict[str, object]) -> None:
        """Store a ``media`` event for ``user_id`` and publish it on ``user:<user_id>``. Raises
        ``ValueError`` for an unknown phase. Once this returns, the event survives a Redis loss."""
        if phase not in MEDIA_PHASES:
            raise ValueError(f"unknown media phase {phase!r}")
        ch = f"user:{user_id}"
        payload: dict[str, Any] = dict(data)

        def build(epoch: str, offset: int, mid: str, ts: int) -> Frame:
            return MediaEvent(ch=ch, epoch=epoch, offset=offset, mid=mid, upload=upload_id, phase=phase,
                              post=post_id, data=payload, ts=ts)

        key = None if phase == "progress" else f"media:{upload_id}:{phase}"
        async with asyncio.timeout(self.timeout_s):
            await self.writer.append(Appending(ch, "media", "", key, build, MediaEvent.TYPE))

    async def feed_update(self, user_id: str, kind: str, data: dict[str, object],
                          idem_key: str | None = None) -> None:
        """Store a ``feed`` event (``post.created`` ...) for ``user_id`` and publish it on
        ``user:<user_id>``."""
        async with asyncio.timeout(self.timeout_s):
            await self.writer.append(_feed_item(user_id, kind, dict(data), idem_key))

    async def feed_updates(self, user_ids: Sequence[str], kind: str, data: dict[str, object],
                           idem_key: str | None = None) -> None:
        """``feed_update`` for many users at once: their events go to PostgreSQL in group-commit
        batches and to Redis in pipelines, not one round trip each; more than ``SMALL_FANOUT``
        users go through the fan-out lane. Bounded by ``timeout_s`` per ``FANOUT_BATCH`` users."""
        if len(user_ids) <= SMALL_FANOUT:
            await asyncio.gather(*(self.feed_update(user, kind, data, idem_key) for user in user_ids))
            return
        payload: dict[str, Any] = dict(data)
        async with asyncio.timeout(self.timeout_s * -(-len(user_ids) // FANOUT_BATCH)):
            await asyncio.gather(*(self.fanout_writer.append(_feed_item(user, kind, payload, idem_key))
                                   for user in user_ids))

    async def channel_event(self, channel: str, sender: str, data: dict[str, object],
                            idem_key: str | None = None) -> int:
        """Store an ``event`` frame on ``channel`` (a ``post:`` or ``user:`` channel; rooms carry
        chat) as if ``sender`` had published ``data`` there, and publish it. Returns its offset."""
        if channel.startswith("room:"):
            raise ValueError("room channels carry chat; use a member's feed for room changes")
        payload: dict[str, Any] = dict(data)

        def build(epoch: str, offset: int, mid: str, ts: int) -> Frame:
            return Event(ch=channel, epoch=epoch, offset=offset, mid=mid, sender=sender, data=payload, ts=ts)

        async with asyncio.timeout(self.timeout_s):
            stored = await self.writer.append(Appending(channel, "event", sender, idem_key, build, Event.TYPE))
        return stored.offset

    async def revoke(self, channel: str, user: str) -> None:
        """End ``user``'s subscriptions of ``channel`` on every node (``unsub.ok`` with id 0)."""
        await self.broker.broadcast(channel, user.encode(), REVOKE_KIND)

    async def recheck(self, channel: str) -> None:
        """Every node asks again whether each subscriber of ``channel`` may still subscribe, and
        ends the subscriptions that may not (``unsub.ok`` with id 0)."""
        await self.broker.broadcast(channel, b"", RECHECK_KIND)
