"""Media events for the uploader's personal channel, through a protocol the hub implements.

Only the protocol's media phases are used (``protocol.frames.MEDIA_PHASES``); media/ sends:

* ``received``: upload created, the draft post exists; data ``length``, ``filename``;
* ``progress``: throttled; data ``offset``, ``length``; the last one, once the object is published and
  the NARA job queued, also carries ``uploaded: true``, ``content_type`` and ``uplink_bps``;
* ``failed``: the upload ended without media; data ``reason``: ``rejected`` (content refused after
  sniffing), ``expired`` or ``terminated`` (the uploader deleted it).

NARA sends ``good_enough`` / ``upgraded`` / ``failed`` later. A failing or slow event sink never fails
or stalls an upload: the sink bounds its own calls (the root wires one with a deadline) and a
failure is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

RECEIVED = "received"
PROGRESS = "progress"
FAILED = "failed"


class MediaEvents(Protocol):
    async def media_event(self, user_id: str, upload_id: str, post_id: str, phase: str,
                          data: dict[str, object]) -> None:
        """Store and deliver one event; raises (``TimeoutError`` included) when it cannot soon."""
        ...


class NoEvents:
    """For roles without a hub attached (a standalone ingest process without fan-out)."""

    async def media_event(self, user_id: str, upload_id: str, post_id: str, phase: str,
                          data: dict[str, object]) -> None:
        return None


async def emit(events: MediaEvents, user_id: str, upload_id: str, post_id: str, phase: str,
               data: dict[str, object]) -> None:
    try:
        await events.media_event(user_id, upload_id, post_id, phase, data)
    except Exception as exc:
        log.warning("media_event_failed", upload_id=upload_id, phase=phase, error=repr(exc))


@dataclass
class ProgressThrottle:
    """At most one progress event per ``interval_s`` unless ``step`` of the file passed since the last."""

    length: int
    interval_s: float = 1.0
    step: float = 0.05
    last_at: float = float("-inf")
    last_offset: int = -1

    def due(self, offset: int, now: float) -> bool:
        if offset >= self.length or self.last_offset < 0:
            fire = offset != self.last_offset
        else:
            fire = (now - self.last_at >= self.interval_s
                    or (offset - self.last_offset) >= self.step * self.length)
        if fire:
            self.last_at, self.last_offset = now, offset
        return fire
