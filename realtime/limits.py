"""Rate limits: a token bucket per connection (pure), fixed windows per user across nodes (Redis).

The bucket is a plain object driven with explicit timestamps so tests need no clock. The per-user
window is one pipelined ``INCR`` + ``EXPIRE`` on a key shared by every node, so a user with ten
sockets on ten nodes still gets one budget.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis.asyncio as aioredis

from realtime import keys
from realtime.groupcommit import GroupCommit
from realtime.redisconn import RespConnection


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class FloodGuard:
    """Counts a connection's refused frames (over its rate budget), decaying: ``limit`` refusals
    are forgiven over ``window_s``. A client that keeps sending while refused crosses ``limit`` and
    is flooding, whether or not some of its frames still pass in between (an allowed frame resets
    nothing)."""

    __slots__ = ("last", "limit", "rate", "refused")

    def __init__(self, limit: int, window_s: float = 10.0) -> None:
        self.limit = limit
        self.rate = limit / window_s  # refusals forgiven per second
        self.refused = 0.0
        self.last = 0.0

    def refuse(self, now: float) -> bool:
        """Record a refusal at ``now`` (monotonic seconds); True when the client must be disconnected."""
        self.refused = max(0.0, self.refused - (now - self.last) * self.rate) + 1
        self.last = now
        return self.refused >= self.limit


class UserLimits:
    """Fixed-window counters per user and action, shared by every node.

    A node leases ``lease`` units at a time from the shared counter (one ``INCRBY``) and spends
    them locally, so most writes cost no Redis round trip. The limit holds across nodes to within
    the units leased but unspent (at most ``lease - 1`` per node and user). Leases wanted at the
    same moment by different users are taken in one pipeline (a ``GroupCommit``)."""

    def __init__(self, redis: aioredis.Redis, lease: int = 5, *, conn: RespConnection | None = None) -> None:
        self.conn = conn or RespConnection.like(redis)  # a lease is a hot path: lean (redisconn.py)
        self.lease = max(1, lease)
        self._window: dict[int, int] = {}  # window_s -> current window index
        self._left: dict[tuple[str, str, int], int] = {}  # (user, name, window_s) -> units leased
        self._leases: GroupCommit[tuple[str, int, int], int] = GroupCommit("limits", self._lease_many)

    async def _lease_many(self, wanted: Sequence[tuple[str, int, int]]) -> list[int | BaseException]:
        """``INCRBY key take`` (+ ``EXPIRE``) for each ``(key, take, ttl)``, in one round trip."""
        commands: list[tuple[str, str, int]] = []
        for key, take, ttl in wanted:
            commands += (("INCRBY", key, take), ("EXPIRE", key, ttl))
        replies = await self.conn.pipeline(commands)
        out: list[int | BaseException] = []
        for i in range(len(wanted)):
            reply = replies[2 * i]
            out.append(reply if isinstance(reply, Exception) else int(reply))
        return out

    async def hit(self, user: str, name: str, limit: int, window_s: int, *, now: float | None = None) -> bool:
        """Count one ``name`` action of ``user``; False when over ``limit`` in the current window."""
        window = int((time.time() if now is None else now) // window_s)
        if self._window.get(window_s) != window:
            self._window[window_s] = window
            for k in [k for k in self._left if k[2] == window_s]:
                del self._left[k]
        local = (user, name, window_s)
        left = self._left.get(local, 0)
        if left > 0:
            self._left[local] = left - 1
            return True
        key = keys.user_limit(user, name, window)
        take = min(self.lease, limit)
        total = await self._leases.submit((key, take, window_s + 1))
        granted = min(take, limit - (int(total) - take))
        if granted <= 0:
            return False
        self._left[local] = granted - 1
        return True
