"""Durable server events for other parts of the system: media pipeline events and feed updates.

``EventSink`` stores each event in PostgreSQL (``channel_events``) and then publishes it on the
user's personal channel ``user:<id>``. It needs no running hub: the NARA worker builds one from its
``Services``. A retried media event of the same upload and phase is stored once (idempotency key),
progress events excepted (each one is news).
"""

from __future__ import annotations

from typing import Any

import structlog

from protocol.frames import MEDIA_PHASES, FeedUpdate, Frame, MediaEvent
from realtime.broker import RedisBroker
from realtime.commit import EventWriter
from realtime.services import Services
from realtime.store import Appending, ChannelStore, Stored

log = structlog.get_logger(__name__)


class EventSink:
    def __init__(self, store: ChannelStore, broker: RedisBroker) -> None:
        self.store = store
        self.broker = broker
        #: Group commit: events stored at the same moment share one transaction and one publish.
        self.writer = EventWriter(store, broker)

    @classmethod
    def from_services(cls, services: Services) -> EventSink:
        node = f"sink-{services.settings.node_id}"
        return cls(ChannelStore(services.db), RedisBroker(services.redis, node))

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
        await self.writer.append(Appending(ch, "media", "", key, build, MediaEvent.TYPE))

    async def feed_update(self, user_id: str, kind: str, data: dict[str, object],
                          idem_key: str | None = None) -> None:
        """Store a ``feed`` event (``post.created`` ...) for ``user_id`` and publish it on
        ``user:<user_id>``."""
        ch = f"user:{user_id}"
        payload: dict[str, Any] = dict(data)

        def build(epoch: str, offset: int, mid: str, ts: int) -> Frame:
            return FeedUpdate(ch=ch, epoch=epoch, offset=offset, mid=mid, kind=kind, data=payload, ts=ts)

        await self.writer.append(Appending(ch, "feed", "", idem_key, build, FeedUpdate.TYPE))

    async def publish(self, stored: Stored, kind: str) -> None:
        """Route a stored event. A Redis failure is logged, not raised: the event is durable, and the
        next publish on the channel (or a client's resume) fills it in from PostgreSQL."""
        try:
            await self.broker.publish(stored.channel, stored.epoch, stored.offset, stored.frame, kind,
                                      self.store.range)
        except Exception as exc:
            log.warning("publish_deferred", channel=stored.channel, offset=stored.offset,
                        error=type(exc).__name__)
