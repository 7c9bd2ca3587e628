"""Typing indicators: ephemeral, at most once, never stored.

``TypingState`` is the pure policy one node applies to its own users: at most one ``start`` per
user per channel per ``throttle_s`` is broadcast (a stop ends the window: the next start goes out
at once), starts in between refresh the announced one, and a user whose announced start gets no
refresh and no stop for ``expire_s`` is announced stopped (a client that vanished mid-word does
not type forever). Only what was announced is ever announced stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Key = tuple[str, str]  # (channel, user)


@dataclass
class TypingState:
    throttle_s: float = 2.0
    expire_s: float = 5.0
    _last_sent: dict[Key, float] = field(default_factory=dict)
    _last_seen: dict[Key, float] = field(default_factory=dict)

    def start(self, channel: str, user: str, now: float) -> bool:
        """A ``typing`` start arrived. Returns True when it must be broadcast."""
        key = (channel, user)
        self._last_seen[key] = now
        last = self._last_sent.get(key)
        if last is not None and now - last < self.throttle_s:
            return False
        self._last_sent[key] = now
        return True

    def cancel(self, channel: str, user: str) -> None:
        """Forget a start this node let through but did not announce (another node did)."""
        key = (channel, user)
        self._last_seen.pop(key, None)
        self._last_sent.pop(key, None)

    def stop(self, channel: str, user: str) -> bool:
        """A ``typing`` stop arrived. Returns True when a start had been broadcast (so the stop is
        worth broadcasting)."""
        key = (channel, user)
        self._last_seen.pop(key, None)
        return self._last_sent.pop(key, None) is not None

    def expired(self, now: float) -> list[Key]:
        """Typists silent for ``expire_s``: forgotten, to be announced stopped."""
        gone = [k for k, seen in self._last_seen.items() if now - seen >= self.expire_s]
        for key in gone:
            self._last_seen.pop(key, None)
            self._last_sent.pop(key, None)
        return gone
