"""Profiles: the public map of a user, loaded by id or by username, behind the profiles cache.

A profile is the same for everyone who may see it: it holds no viewer-specific field (the
viewer's relationship is its own endpoint, ``graph.relationship``), so one cached copy per user
serves every reader. Whoever changes a user's row (a profile edit, a follow that moves the
counts, a post) calls ``Profiles.invalidate`` with the user's id.

======================  ===========================================================
field                   meaning
======================  ===========================================================
``id``                  the user id (a lowercase UUID)
``username``            unique, lower case (``accounts.USERNAME``)
``display_name``        at most ``MAX_DISPLAY_NAME`` printable characters
``bio``                 at most ``MAX_BIO`` characters
``private``             followers are accepted one by one (follow requests)
``followers_count``     exact: kept in the transaction that adds or removes a follow
``following_count``     likewise
``posts_count``         kept by the posts' module
``created_at``          ISO 8601, UTC
======================  ===========================================================

A disabled account has no profile (None): every reader gets 404, as for an unknown id.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from feed.accounts import MAX_DISPLAY_NAME, USERNAME, normalize_username
from feed.cache import Cache

MAX_BIO = 500
MAX_USERNAME_INPUT = 64  # longer input names nobody and is not even normalized

def profile_of(row: asyncpg.Record) -> dict[str, Any]:
    """The public profile map of a ``users`` row."""
    return {
        "id": str(row["id"]), "username": row["username"], "display_name": row["display_name"],
        "bio": row["bio"], "private": row["private"], "followers_count": int(row["followers_count"]),
        "following_count": int(row["following_count"]), "posts_count": int(row["posts_count"]),
        "created_at": row["created_at"].isoformat(),
    }


def small(profile: Mapping[str, Any]) -> dict[str, Any]:
    """What lists and live events carry of a user: id, username, display name."""
    return {"id": profile["id"], "username": profile["username"], "display_name": profile["display_name"]}


def display_name_problem(name: str) -> str | None:
    if len(name) > MAX_DISPLAY_NAME or any(unicodedata.category(c) == "Cc" for c in name):
        return f"must be at most {MAX_DISPLAY_NAME} printable characters"
    return None


def text_problem(value: str, max_len: int) -> str | None:
    """What is wrong with a user's free text (a bio, a post, a comment): too long, or a control
    character other than line breaks and tabs."""
    if len(value) > max_len:
        return f"must be at most {max_len} characters"
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in value):
        return "must not contain control characters other than line breaks and tabs"
    return None


def bio_problem(bio: str) -> str | None:
    return text_problem(bio, MAX_BIO)


def username_of(raw: str) -> str | None:
    """The normalized username ``raw`` spells, or None when it cannot name anyone (too long, NUL
    bytes, characters a username never has: quotes, semicolons, spaces ...)."""
    if not raw or len(raw) > MAX_USERNAME_INPUT:
        return None
    name = normalize_username(raw)
    return name if USERNAME.match(name) else None


class Profiles:
    """Profiles by id (cached) and by username (one indexed lookup, then the cache)."""

    def __init__(self, db: asyncpg.Pool, cache: Cache) -> None:
        self.db = db
        self.cache = cache

    async def get(self, user_id: str) -> dict[str, Any] | None:
        """The profile of ``user_id`` (a canonical UUID), None for an unknown or disabled user."""

        async def load() -> dict[str, Any] | None:
            row = await self.db.fetchrow(
                """SELECT id, username, display_name, bio, private, followers_count, following_count, posts_count,
                          created_at FROM users WHERE id = $1 AND disabled_at IS NULL""",
                uuid.UUID(user_id))
            return None if row is None else profile_of(row)

        value: dict[str, Any] | None = await self.cache.get(user_id, load)
        return value

    async def by_username(self, raw: str) -> dict[str, Any] | None:
        name = username_of(raw)
        if name is None:
            return None
        found = await self.db.fetchval(
            "SELECT id FROM users WHERE lower(username) = $1 AND disabled_at IS NULL", name)
        return None if found is None else await self.get(str(found))

    async def update(self, user_id: str, *, display_name: str | None = None, bio: str | None = None) -> None:
        """Change the fields given (``private`` changes through ``graph.Graph.set_private``)."""
        if display_name is None and bio is None:
            return
        await self.db.execute(
            "UPDATE users SET display_name = coalesce($2, display_name), bio = coalesce($3, bio) WHERE id = $1",
            uuid.UUID(user_id), display_name, bio)
        await self.invalidate(user_id)

    async def invalidate(self, *user_ids: str) -> None:
        await self.cache.invalidate(*user_ids)
