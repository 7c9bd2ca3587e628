"""Presence across nodes: who is in a channel, with entries that expire by themselves.

Every connection present in a channel owns one entry ``<user>|<conn>`` in a Redis ZSET scored by
its expiry; its node refreshes it every ``heartbeat_s``. A node that dies (even SIGKILL) stops
refreshing, and its entries expire after ``ttl_s``; any node holding subscribers of the channel
sweeps expired entries every second and broadcasts the leaves. So a dead node's users are gone
within ``ttl_s + sweep`` (about 8 s by default), with no operator action.

Users, not sockets: a hash counts each user's entries, a join is announced only for a user's first
entry and a leave only when the last one is gone (multi-device users counted once). A clean leave
keeps the entry for ``grace_s`` instead of deleting it, so leave-then-rejoin (reload, deploy) shows
nothing. Big channels answer a count and a truncated user list.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from realtime import keys, pacing
from realtime.metrics import REDIS_OP
from realtime.redisconn import RespConnection, run_script, run_scripts
from realtime.scripts import Scripts


@dataclass(frozen=True, slots=True)
class PresenceConfig:
    ttl_s: float = 8.0
    heartbeat_s: float = 2.5
    grace_s: float = 2.0
    sweep_s: float = 1.0
    snapshot_limit: int = 200


@dataclass(frozen=True, slots=True)
class Snapshot:
    users: tuple[str, ...]
    count: int
    truncated: bool


def _ms() -> int:
    return int(time.time() * 1000)


class Presence:
    def __init__(self, redis: aioredis.Redis, config: PresenceConfig | None = None,
                 scripts: Scripts | None = None, conn: RespConnection | None = None) -> None:
        self.config = config or PresenceConfig()
        self.scripts = scripts or Scripts.register(redis)
        #: Scripts run on a lean connection (redisconn.py): the heartbeat sends one per present socket.
        self.conn = conn or RespConnection.like(redis)

    def _key_ttl(self) -> int:
        return int(self.config.ttl_s * 4) + 1

    async def join(self, channel: str, user: str, conn: str) -> bool:
        """Add (or refresh) a connection's entry. True when the user just became present."""
        started = time.perf_counter()
        first = await run_script(
            self.conn, self.scripts.presence_join, (keys.presence_entries(channel), keys.presence_users(channel)),
            (user, f"{user}|{conn}", _ms() + int(self.config.ttl_s * 1000), self._key_ttl()),
        )
        REDIS_OP.labels("presence_join").observe(time.perf_counter() - started)
        return bool(first)

    async def refresh(self, entries: Sequence[tuple[str, str, str]], *, over_s: float = 0.0) -> list[tuple[str, str]]:
        """Heartbeat for ``(channel, user, conn)`` entries, pipelined in slices spread over about
        ``over_s``. Re-adds entries swept while this node stalled; returns the ``(channel, user)``
        that became present again."""
        if not entries:
            return []
        back: list[tuple[str, str]] = []
        async for part in pacing.sliced(entries, over_s=over_s):  # a chore (pacing.py)
            started = time.perf_counter()
            expiry = _ms() + int(self.config.ttl_s * 1000)  # per slice: a spread refresh keeps the full TTL
            key_ttl = self._key_ttl()
            results = await run_scripts(self.conn, self.scripts.presence_join, [
                ((keys.presence_entries(ch), keys.presence_users(ch)), (user, f"{user}|{conn}", expiry, key_ttl))
                for ch, user, conn in part])
            REDIS_OP.labels("presence_refresh").observe(time.perf_counter() - started)
            back += [(ch, user) for (ch, user, _), first in zip(part, results, strict=True) if first]
        return back

    async def leave(self, channel: str, user: str, conn: str) -> None:
        """A connection left: its entry lingers ``grace_s``, then the sweep reports the leave if the
        user has no other entry."""
        await run_script(self.conn, self.scripts.presence_leave, (keys.presence_entries(channel),),
                         (f"{user}|{conn}", _ms() + int(self.config.grace_s * 1000)))

    async def sweep(self, channels: Sequence[str], *, over_s: float = 0.0) -> list[tuple[str, str]]:
        """Drop expired entries of ``channels`` (in slices spread over about ``over_s``); returns
        ``(channel, user)`` for users now gone."""
        if not channels:
            return []
        gone: list[tuple[str, str]] = []
        async for part in pacing.sliced(channels, over_s=over_s):  # a chore (pacing.py)
            started = time.perf_counter()
            now = _ms()
            results = await run_scripts(self.conn, self.scripts.presence_sweep, [
                ((keys.presence_entries(ch), keys.presence_users(ch)), (now, 0)) for ch in part])
            REDIS_OP.labels("presence_sweep").observe(time.perf_counter() - started)
            gone += [(ch, u.decode()) for ch, res in zip(part, results, strict=True) for u in res[0]]
        return gone

    async def occupied(self, channels: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
        """Which of ``channels`` have anyone present now (pipelined, in slices), and the
        ``(channel, user)`` the embedded sweep found gone (for the caller to announce)."""
        present: list[str] = []
        gone: list[tuple[str, str]] = []
        async for part in pacing.sliced(channels):
            started = time.perf_counter()
            now = _ms()
            results = await run_scripts(self.conn, self.scripts.presence_sweep, [
                ((keys.presence_entries(ch), keys.presence_users(ch)), (now, 1)) for ch in part])
            REDIS_OP.labels("presence_occupied").observe(time.perf_counter() - started)
            for ch, res in zip(part, results, strict=True):
                gone += [(ch, u.decode()) for u in res[0]]
                if int(res[1]) > 0:
                    present.append(ch)
        return present, gone

    async def snapshot(self, channel: str) -> tuple[Snapshot, list[str]]:
        """Who is present now (count of users, at most ``snapshot_limit`` names), and the users the
        embedded sweep found gone (for the caller to announce)."""
        started = time.perf_counter()
        res: list[Any] = await run_script(
            self.conn, self.scripts.presence_sweep, (keys.presence_entries(channel), keys.presence_users(channel)),
            (_ms(), self.config.snapshot_limit),
        )
        REDIS_OP.labels("presence_snapshot").observe(time.perf_counter() - started)
        left = [u.decode() for u in res[0]]
        users = tuple(sorted(u.decode() for u in res[2]))
        return Snapshot(users=users, count=int(res[1]), truncated=bool(res[3])), left
