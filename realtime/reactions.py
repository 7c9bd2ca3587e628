"""Reactions: one of a kind per user per target, toggled idempotently, counts persisted.

Counts are broadcast coalesced (latest value wins): the first change of a target in a window takes
a short Redis lock (``SET NX PX``) and, when the window ends, broadcasts the counts read from
PostgreSQL once; every other change inside the window, on any node, rides on that broadcast. A
viral post therefore costs one ``react.counts`` frame per window per watcher, not one per tap.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

import asyncpg


class ReactionObserver(Protocol):
    """Told after a reaction changed (stored): the feed's side of reactions (events to a post's
    author, the totals it caches). The hub calls it in a task of its own, off the socket's path."""

    async def reaction_changed(self, target_kind: str, target_id: str, user: str, emoji: str, on: bool) -> None: ...


class ReactionStore:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    async def toggle(self, target_kind: str, target_id: str, user: str, emoji: str, on: bool) -> bool:
        """Set or clear ``user``'s ``emoji`` on the target. Returns True when something changed
        (setting twice, or clearing what is not set, changes nothing)."""
        uid = uuid.UUID(user)
        async with self.db.acquire() as conn, conn.transaction():
            if on:
                changed = await conn.fetchval(
                    """INSERT INTO reactions (target_kind, target_id, user_id, emoji) VALUES ($1, $2, $3, $4)
                       ON CONFLICT DO NOTHING RETURNING 1""",
                    target_kind, target_id, uid, emoji,
                )
            else:
                changed = await conn.fetchval(
                    """DELETE FROM reactions WHERE target_kind = $1 AND target_id = $2 AND user_id = $3
                       AND emoji = $4 RETURNING 1""",
                    target_kind, target_id, uid, emoji,
                )
            if changed is None:
                return False
            if on:
                await conn.execute(
                    """INSERT INTO reaction_counts (target_kind, target_id, emoji, count) VALUES ($1, $2, $3, 1)
                       ON CONFLICT (target_kind, target_id, emoji) DO UPDATE SET count = reaction_counts.count + 1""",
                    target_kind, target_id, emoji,
                )
            else:  # the row exists (the reaction did); an insert of -1 would break its CHECK before any conflict
                await conn.execute(
                    """UPDATE reaction_counts SET count = count - 1
                       WHERE target_kind = $1 AND target_id = $2 AND emoji = $3""",
                    target_kind, target_id, emoji,
                )
            return True

    async def counts_of(self, target_kind: str, target_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Counts of many targets in one query (timelines show them beside each post)."""
        rows = await self.db.fetch(
            """SELECT target_id, emoji, count FROM reaction_counts
               WHERE target_kind = $1 AND target_id = ANY($2::text[]) AND count > 0""",
            target_kind, list(target_ids),
        )
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(str(r["target_id"]), {})[str(r["emoji"])] = int(r["count"])
        return out

    async def counts(self, target_kind: str, target_id: str) -> dict[str, int]:
        rows = await self.db.fetch(
            "SELECT emoji, count FROM reaction_counts WHERE target_kind = $1 AND target_id = $2 AND count > 0",
            target_kind, target_id,
        )
        return {str(r["emoji"]): int(r["count"]) for r in rows}
