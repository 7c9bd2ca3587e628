"""How NARA-1r tells the world about a media item. realtime/ implements the sink."""

from __future__ import annotations

from typing import Literal, Protocol

Phase = Literal["good_enough", "upgraded", "failed"]
GOOD_ENOUGH: Phase = "good_enough"
UPGRADED: Phase = "upgraded"
FAILED: Phase = "failed"


class EventSink(Protocol):
    async def media_event(
        self, user_id: str, upload_id: str, post_id: str, phase: str, data: dict[str, object]
    ) -> None:
        """Deliver a durable media event (at-least-once: the same phase may arrive twice).

        ``data`` is msgpack-able. For "failed" it holds ``reason`` (a stable code from
        nara.errors) and ``detail``.
        """


class LogSink:
    """Logs media events instead of delivering them: for ``python -m nara`` run standalone
    (operations, benchmarks) before the realtime sink is wired in."""

    def __init__(self) -> None:
        import structlog

        self._log = structlog.get_logger("nara.events")

    async def media_event(
        self, user_id: str, upload_id: str, post_id: str, phase: str, data: dict[str, object]
    ) -> None:
        self._log.info("media_event", user_id=user_id, upload_id=upload_id, post_id=post_id,
                       phase=phase, reason=data.get("reason"))
