"""What the crash runner needs from a system under test: a `Target` world and its `Person`s.

The runner owns the clock and the timing of light actions (it wraps every call in a
monotonic timer); a target only performs them. Deliveries (chat messages, presence changes)
are timed by the receiver: a `Person` hands each one to the `Inbox` callback the runner gives
it, with the monotonic time it arrived, and the runner matches it to the send.

Presence: a person's socket (or polling session) being open is "online". The runner times a
friend's *join* (connect start -> `PresenceSeen(online=True)` at each online friend); leaves are
debounced by design (the hub's grace), so they are delivered but not timed.

Wiring: a target module exposes `make_target(url: str | None) -> Target` (None: start its own
server; a URL: attach to a running one). The runner imports `loadtests.crash.platform_target`
and `loadtests.crash.naive_target` and calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

# The light actions the verdict judges, in report order.
ACTIONS: tuple[str, ...] = ("log_in", "timeline_page", "profile", "post", "react", "chat_delivery",
                            "presence_seen")
PHASES: tuple[str, ...] = ("before", "during", "after")


@dataclass(frozen=True)
class Account:
    """One simulated person's identity, made by the target's `setup`."""

    index: int
    username: str
    password: str
    user_id: str = ""


@dataclass(frozen=True)
class World:
    """What `Target.setup` built: accounts, who follows whom, shared chat rooms, seed posts."""

    accounts: list[Account]
    friends: dict[int, list[int]]          # person index -> indexes of the friends they follow
    rooms: dict[str, list[int]]            # room id -> member indexes
    posts: list[str] = field(default_factory=list)   # post ids anyone may react to


@dataclass(frozen=True)
class ChatReceived:
    """A chat message arrived on a person's connection (socket frame, or a poll's answer)."""

    room: str
    body: str                  # the runner puts a unique token in the body to match the send
    at: float                  # time.monotonic() when it arrived


@dataclass(frozen=True)
class PresenceSeen:
    """A person saw a friend go online or offline."""

    user_id: str
    online: bool
    at: float                  # time.monotonic() when it was seen


Delivery = ChatReceived | PresenceSeen
Inbox = Callable[[Delivery], None]
Progress = Callable[[int], None]        # bytes sent so far


@dataclass
class UploadOutcome:
    """What one video upload did, in time.monotonic() seconds (None when it never happened)."""

    bytes: int
    started: float
    last_byte: float | None = None
    good_enough: float | None = None
    upgraded: float | None = None
    ok: bool = False
    error: str | None = None


@runtime_checkable
class Person(Protocol):
    """One simulated person. Every method is one light action; the runner times the call."""

    account: Account

    async def log_in(self) -> None:
        """Authenticate (a fresh token) and hold the connection deliveries arrive on."""

    async def go_online(self, inbox: Inbox) -> None:
        """Open the connection (socket or polling loop); deliveries go to `inbox` from now on."""

    async def go_offline(self) -> None:
        """Close the connection, so friends see this person go offline."""

    async def timeline_page(self, cursor: str | None) -> str | None:
        """Read one page of the home timeline; returns the next cursor (None at the end)."""

    async def profile(self, user_id: str) -> None:
        """Read another person's profile and first page of posts."""

    async def post(self, text: str) -> str:
        """Publish a text post; returns its id."""

    async def react(self, post_id: str) -> None:
        """React to a post."""

    async def chat_send(self, room: str, text: str) -> None:
        """Send a chat message; returns once the target acknowledged it."""

    async def upload_video(self, path: Path, uplink_bps: float, caption: str,
                           progress: Progress | None = None, wait_s: float = 120.0) -> UploadOutcome:
        """Upload `path` paced to `uplink_bps` bits/s, post it, and wait up to `wait_s` after the
        last byte for the media's good-enough and upgraded events; never raises for the upload's
        own failures (they go in the outcome). `ok`: every byte stored, the post composed, and the
        media not failed (upgraded may still be None when `wait_s` ran out)."""

    async def close(self) -> None:
        """Release everything the person holds."""


@runtime_checkable
class Target(Protocol):
    """A system under test. `async with target:` starts it (or attaches to it) and stops it."""

    name: str                   # "platform" or "naive": the RUN's "target" key

    async def __aenter__(self) -> Target: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def setup(self, users: int, seed: int) -> World:
        """Create `users` accounts, a follow graph, rooms and a few posts; deterministic in `seed`."""

    def person(self, account: Account) -> Person:
        """A not-yet-logged-in person for one of the world's accounts."""

    def pids(self) -> dict[str, list[int]]:
        """Process ids per role (e.g. "hub", "worker", "naive") for the box sampler; may change."""
