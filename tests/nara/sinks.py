"""A real (not mocked) EventSink for tests: it records what the pipeline emitted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recorded:
    user_id: str
    upload_id: str
    post_id: str
    phase: str
    data: dict[str, object]


@dataclass
class RecordingSink:
    events: list[Recorded] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def media_event(
        self, user_id: str, upload_id: str, post_id: str, phase: str, data: dict[str, object]
    ) -> None:
        self.events.append(Recorded(user_id, upload_id, post_id, phase, data))
        self.changed.set()

    def phases(self, upload_id: str | None = None) -> list[str]:
        return [e.phase for e in self.events if upload_id is None or e.upload_id == upload_id]

    async def wait_for(self, upload_id: str, phase: str, timeout: float) -> Recorded:
        async with asyncio.timeout(timeout):
            while True:
                for e in self.events:
                    if e.upload_id == upload_id and e.phase == phase:
                        return e
                self.changed.clear()
                await self.changed.wait()
