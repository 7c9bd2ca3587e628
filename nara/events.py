"""How NARA-1r tells the world about a media item: through an ``EventSink`` the composition root
wires in (the hub's durable event sink in every role)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from nara.errors import EventFailed
from nara.lifecycle import MediaState

GOOD_ENOUGH = MediaState.GOOD_ENOUGH
UPGRADED = MediaState.UPGRADED
FAILED = MediaState.FAILED


class EventSink(Protocol):
    async def media_event(
        self, user_id: str, upload_id: str, post_id: str, phase: str, data: dict[str, object]
    ) -> None:
        """Deliver a durable media event (at-least-once: the same phase may arrive twice).

        ``data`` is msgpack-able. For "failed" it holds ``reason`` (a stable code from
        nara.errors) and ``detail``.
        """


class BoundedSink:
    """A time limit on event delivery: a stuck sink fails the attempt (retried) rather than
    the job waiting forever."""

    def __init__(self, inner: EventSink, timeout_s: float = 15.0) -> None:
        self.inner = inner
        self.timeout_s = timeout_s

    async def media_event(
        self, user_id: str, upload_id: str, post_id: str, phase: str, data: dict[str, object]
    ) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.inner.media_event(user_id, upload_id, post_id, phase, data)
        except TimeoutError:
            raise EventFailed(f"{phase} event not delivered within {self.timeout_s:g}s") from None
