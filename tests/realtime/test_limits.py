from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from realtime.limits import FloodGuard, TokenBucket, UserLimits
from realtime.typing_ import TypingState


def test_token_bucket_allows_bursts_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert all(bucket.take(0.0) for _ in range(5))
    assert not bucket.take(0.0)
    assert bucket.take(0.1)  # one token refilled after 100 ms
    assert not bucket.take(0.1)
    assert all(bucket.take(10.0) for _ in range(5))  # never more than the burst saved up
    assert not bucket.take(10.0)


def test_flood_guard_counts_refusals_decaying_not_reset_by_allowed_frames() -> None:
    guard = FloodGuard(limit=3, window_s=3.0)  # one refusal forgiven per second
    assert not guard.refuse(0.0) and not guard.refuse(0.0)
    assert guard.refuse(0.0)  # three at once
    slow = FloodGuard(limit=3, window_s=3.0)
    assert not any(slow.refuse(t) for t in (0.0, 1.0, 2.0, 3.0, 4.0))  # one a second is forgiven


def test_typing_is_throttled_and_expires() -> None:
    state = TypingState(throttle_s=2.0, expire_s=5.0)
    assert state.start("room:r", "u", 0.0)
    assert not state.start("room:r", "u", 1.0)
    assert state.start("room:r", "v", 1.0)  # per user
    assert state.start("room:r", "u", 2.5)
    assert state.expired(6.0) == [("room:r", "v")]
    assert state.stop("room:r", "u")
    assert not state.stop("room:r", "u")  # nothing to announce twice
    assert state.expired(100.0) == []


async def test_user_limits_are_shared_across_nodes(redis: aioredis.Redis) -> None:
    user = f"user-{uuid.uuid4().hex}"
    node_a, node_b = UserLimits(redis, lease=1), UserLimits(redis, lease=1)
    results = [await (node_a if i % 2 else node_b).hit(user, "write", 5, 10, now=1000.0) for i in range(7)]
    assert results == [True] * 5 + [False] * 2
    assert await node_a.hit(user, "write", 5, 10, now=1010.0)  # next window
    assert await node_a.hit(f"{user}-other", "write", 5, 10, now=1000.0)


async def test_leased_limits_cost_few_round_trips_and_stay_close(redis: aioredis.Redis) -> None:
    user = f"user-{uuid.uuid4().hex}"
    nodes = [UserLimits(redis, lease=5) for _ in range(3)]
    allowed = [await nodes[i % 3].hit(user, "write", 40, 10, now=2000.0) for i in range(60)]
    # Never more than the limit; less by at most the units leased but unspent on each node.
    assert 40 - 3 * 4 <= sum(allowed) <= 40
    assert not any(allowed[45:])
