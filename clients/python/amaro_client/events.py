"""Typed views of the frames on my own channel ``user:<me>`` (SPEC §9): ``feed`` frames (what
changed in my social world) and ``media`` frames (what became of my uploads).

    view = view_of(frame)               # FeedEvent, MediaUpdate, or None for any other frame
    if isinstance(view, FeedEvent) and view.kind == "post.created":
        post = await api.post(view.post_id)

``wait_for_media`` follows one upload until it is good enough (or upgraded, or failed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from protocol import frames as F

if TYPE_CHECKING:
    from amaro_client.api import Api
    from amaro_client.client import Client

FeedKind = Literal["post.created", "post.updated", "post.deleted", "comment.created", "reaction.created",
                   "follow.new", "follow.request", "follow.accepted", "room.added", "room.removed", "room.updated"]
FEED_KINDS: frozenset[str] = frozenset(FeedKind.__args__)  # type: ignore[attr-defined]
MediaPhase = Literal["received", "progress", "good_enough", "upgraded", "failed"]
PLAYABLE = ("good_enough", "upgraded")


def _id(value: Any) -> str:
    return str(value.get("id", "")) if isinstance(value, dict) else str(value or "")


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One ``feed`` frame. ``known`` is False for a kind this SDK does not know yet (SPEC: ignore
    it, or read ``data`` yourself)."""

    kind: str
    data: dict[str, Any]
    offset: int
    mid: str
    ts: int

    @classmethod
    def of(cls, frame: F.FeedUpdate) -> FeedEvent:
        return cls(frame.kind, dict(frame.data), frame.offset, frame.mid, frame.ts)

    @property
    def known(self) -> bool:
        return self.kind in FEED_KINDS

    @property
    def post_id(self) -> str:
        """The post of a ``post.*``, ``comment.created`` or ``reaction.created`` event ("" otherwise)."""
        return _id(self.data.get("post"))

    @property
    def post_kind(self) -> str:
        post = self.data.get("post")
        return str(post.get("kind", "")) if isinstance(post, dict) else ""

    @property
    def changes(self) -> list[str]:
        """What a ``post.updated`` changed: ``body``, ``visibility``, ``media``."""
        return [str(c) for c in self.data.get("changes", [])]

    @property
    def comment_id(self) -> str:
        return _id(self.data.get("comment"))

    @property
    def user(self) -> dict[str, Any] | None:
        """The small profile of ``follow.*`` and ``reaction.created`` events."""
        user = self.data.get("user")
        return cast(dict[str, Any], user) if isinstance(user, dict) else None

    @property
    def room_id(self) -> str:
        return _id(self.data.get("room"))


@dataclass(frozen=True, slots=True)
class MediaUpdate:
    """One ``media`` frame: ``phase`` of upload ``upload_id``; ``data`` as the phase gives it."""

    upload_id: str
    phase: str
    post_id: str
    data: dict[str, Any] = field(default_factory=dict)
    offset: int = 0
    mid: str = ""
    ts: int = 0

    @classmethod
    def of(cls, frame: F.MediaEvent) -> MediaUpdate:
        return cls(frame.upload, frame.phase, frame.post, dict(frame.data), frame.offset, frame.mid, frame.ts)

    @property
    def playable(self) -> bool:
        return self.phase in PLAYABLE

    @property
    def percent(self) -> float | None:
        """How much of the file arrived (``progress``), when the event says."""
        if "percent" in self.data:
            return float(self.data["percent"])
        offset, length = self.data.get("offset"), self.data.get("length")
        if isinstance(offset, int) and isinstance(length, int) and length > 0:
            return 100.0 * offset / length
        return None

    @property
    def reason(self) -> str:
        """Why it failed (``failed``)."""
        return str(self.data.get("reason", ""))

    def describe(self) -> str:
        """One human line."""
        extra = ""
        if self.phase == "progress" and self.percent is not None:
            extra = f" {self.percent:.0f}%"
        elif self.phase == "failed":
            extra = f" ({self.reason or 'no reason given'})"
        elif self.playable and self.data.get("duration_s"):
            extra = f" ({self.data.get('width')}x{self.data.get('height')}, {self.data['duration_s']:.1f} s)"
        return f"{self.upload_id} {self.phase}{extra}"


def view_of(frame: F.Frame) -> FeedEvent | MediaUpdate | None:
    if isinstance(frame, F.FeedUpdate):
        return FeedEvent.of(frame)
    if isinstance(frame, F.MediaEvent):
        return MediaUpdate.of(frame)
    return None


class MediaFailed(Exception):
    def __init__(self, update: MediaUpdate) -> None:
        super().__init__(f"upload {update.upload_id} failed: {update.reason or 'no reason given'}")
        self.update = update


async def wait_for_media(client: Client, upload_id: str, *, until: Literal["good_enough", "upgraded"] = "good_enough",
                         api: Api | None = None, timeout_s: float = 300.0,
                         on_update: Callable[[MediaUpdate], None] | None = None) -> MediaUpdate:
    """Read ``client``'s events until upload ``upload_id`` reaches ``until`` (``upgraded`` implies
    ``good_enough`` was passed). The client must be subscribed to ``user:<me>``; events of other
    uploads and other frames read meanwhile are dropped. With ``api``, the media's state is read
    over HTTP first, so an upload that got there before the subscription is not waited for
    forever. Raises ``MediaFailed``, or ``TimeoutError`` after ``timeout_s``."""
    wanted = PLAYABLE if until == "good_enough" else ("upgraded",)
    if api is not None:
        state = (await api.media(upload_id))["state"]
        if state in wanted:
            return MediaUpdate(upload_id, state, "", {})
        if state == "failed":
            raise MediaFailed(MediaUpdate(upload_id, "failed", "", {"reason": "failed"}))
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"upload {upload_id} did not reach {until} within {timeout_s:.0f} s")
        try:
            frame = await client.next_event(timeout_s=left)
        except TimeoutError:
            continue
        if not isinstance(frame, F.MediaEvent) or frame.upload != upload_id:
            continue
        update = MediaUpdate.of(frame)
        if on_update is not None:
            on_update(update)
        if update.phase == "failed":
            raise MediaFailed(update)
        if update.phase in wanted:
            return update
