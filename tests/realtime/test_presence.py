from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from realtime import pacing
from realtime.presence import Presence, PresenceConfig


def channel() -> str:
    return f"room:{uuid.uuid4()}"


async def test_users_not_sockets_and_leave_after_grace(redis: aioredis.Redis) -> None:
    p = Presence(redis, PresenceConfig(ttl_s=5.0, grace_s=0.2, snapshot_limit=10))
    ch = channel()
    assert await p.join(ch, "ann", "phone")
    assert not await p.join(ch, "ann", "laptop")  # second device: no second join
    assert await p.join(ch, "bob", "web")
    snap, left = await p.snapshot(ch)
    assert (snap.users, snap.count, snap.truncated, left) == (("ann", "bob"), 2, False, [])
    await p.leave(ch, "ann", "phone")
    await asyncio.sleep(0.3)
    assert await p.sweep([ch]) == []  # the laptop keeps ann present
    await p.leave(ch, "ann", "laptop")
    assert await p.sweep([ch]) == []  # within the grace
    assert not await p.join(ch, "ann", "laptop2")  # a quick rejoin is no join at all
    await asyncio.sleep(0.3)
    assert await p.sweep([ch]) == []
    await p.leave(ch, "ann", "laptop2")
    await asyncio.sleep(0.3)
    assert await p.sweep([ch]) == [(ch, "ann")]
    assert await p.sweep([ch]) == []  # reported once


async def test_entries_of_a_dead_node_expire_by_themselves(redis: aioredis.Redis) -> None:
    dead = Presence(redis, PresenceConfig(ttl_s=0.3))
    alive = Presence(redis, PresenceConfig(ttl_s=5.0))
    ch = channel()
    await dead.join(ch, "ann", "c1")
    await alive.join(ch, "bob", "c2")
    await asyncio.sleep(0.4)  # the dead node stopped refreshing
    assert await alive.sweep([ch]) == [(ch, "ann")]
    # The live node refreshes; an entry swept during a stall comes back as a join.
    assert await alive.refresh([(ch, "bob", "c2"), (ch, "ann", "c9")]) == [(ch, "ann")]


async def test_big_channels_get_a_count_and_a_truncated_list(redis: aioredis.Redis) -> None:
    p = Presence(redis, PresenceConfig(snapshot_limit=5))
    ch = channel()
    await p.refresh([(ch, f"user{i}", "c") for i in range(40)])
    snap, _ = await p.snapshot(ch)
    assert snap.count == 40 and snap.truncated and len(snap.users) == 5


async def test_chores_larger_than_a_slice_cover_every_entry_once(redis: aioredis.Redis) -> None:
    p = Presence(redis, PresenceConfig(ttl_s=0.3))
    chans = [channel() for _ in range(3 * pacing.SLICE + 7)]  # several slices, the last one short
    entries = [(ch, f"user{i}", "c") for i, ch in enumerate(chans)]
    refreshed = await p.refresh(entries)
    assert sorted(refreshed) == sorted((ch, u) for ch, u, _ in entries)
    await asyncio.sleep(0.4)
    assert sorted(await p.sweep(chans)) == sorted(refreshed)
    assert await p.sweep(chans) == []
