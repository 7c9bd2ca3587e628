"""A connection's bounded outbox: the backpressure policy as a plain object.

Frames are queued as the very ``bytes`` objects the hub encoded once per broadcast; the socket
writer takes everything queued at once (``take``) and writes it in one go, so frames that arrive
in the same loop tick are coalesced into one write burst.

Policy when the client does not keep up:

1. ephemeral frames (typing, presence diffs, counters) are refused once the queue holds more than
   ``ephemeral_bytes`` (they are worthless late), and queued ones are evicted first to make room
   for a durable frame;
2. a durable frame that still does not fit within ``max_bytes`` means the client is too slow:
   ``push`` answers ``OVERFLOW`` and the hub disconnects it with a resume hint (close 4008); it
   resumes from its last offset and loses nothing.
"""

from __future__ import annotations

from enum import Enum


class Verdict(Enum):
    QUEUED = "queued"
    DROPPED = "dropped"  # an ephemeral frame not worth queueing
    OVERFLOW = "overflow"  # disconnect the client


class Outbox:
    __slots__ = ("_ephemeral", "_queue", "bytes", "closed", "dropped", "ephemeral_bytes", "max_bytes")

    def __init__(self, max_bytes: int = 1 << 20, ephemeral_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.ephemeral_bytes = max_bytes // 2 if ephemeral_bytes is None else ephemeral_bytes
        # A plain list (56 bytes empty, a deque is ~600): it is only appended to and taken whole.
        self._queue: list[tuple[bytes, bool]] = []
        self._ephemeral = 0  # bytes of ephemeral frames queued
        self.bytes = 0
        self.dropped = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, frame: bytes, *, ephemeral: bool = False) -> Verdict:
        if self.closed:
            return Verdict.DROPPED
        size = len(frame)
        if ephemeral:
            if self.bytes + size > self.ephemeral_bytes:
                self.dropped += 1
                return Verdict.DROPPED
            self._queue.append((frame, True))
            self._ephemeral += size
            self.bytes += size
            return Verdict.QUEUED
        if self.bytes + size > self.max_bytes and self._ephemeral:
            self._evict_ephemeral()
        if self.bytes + size > self.max_bytes:
            self.closed = True
            return Verdict.OVERFLOW
        self._queue.append((frame, False))
        self.bytes += size
        return Verdict.QUEUED

    def _evict_ephemeral(self) -> None:
        kept = [item for item in self._queue if not item[1]]
        self.dropped += len(self._queue) - len(kept)
        self._queue = kept
        self.bytes -= self._ephemeral
        self._ephemeral = 0

    def take(self) -> list[bytes]:
        """Everything queued, oldest first; the outbox is empty after."""
        queue = self._queue
        out = [queue[0][0]] if len(queue) == 1 else [frame for frame, _ in queue]
        self._queue = []
        self.bytes = 0
        self._ephemeral = 0
        return out

    def clear(self) -> None:
        self.take()
