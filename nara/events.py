"""How NARA-1r tells the world about a media item: through an ``EventSink`` the composition root
wires in (the hub's durable event sink in every role)."""

from __future__ import annotations

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
        nara.errors) and ``detail``. The sink bounds its own time: ``TimeoutError`` when it
        cannot deliver soon (``announce`` makes that a retryable ``EventFailed``).
        """


async def announce(sink: EventSink, user_id: str, upload_id: str, post_id: str, phase: str,
                   data: dict[str, object]) -> None:
    """Deliver an event through ``sink``; a sink that cannot in time (it raises ``TimeoutError``)
    fails the attempt with ``EventFailed``, which is retried, rather than leaving the job waiting."""
    try:
        await sink.media_event(user_id, upload_id, post_id, phase, data)
    except TimeoutError:
        raise EventFailed(f"{phase} event not delivered in time") from None
