"""The feed's HTTP API, assembled: what it needs from the rest of the platform (protocols the
composition root fills in) and the endpoints of ``/api/v1`` that each area contributes.

======================  ===================================================================
module                  endpoints
======================  ===================================================================
``api.py``              accounts and tokens: ``/api/v1/auth/*``
``api_graph.py``        profiles, follows, follow requests, blocks: ``/api/v1/users/*``, ``/api/v1/me*``
``api_rooms.py``        rooms and members: ``/api/v1/rooms*``
``api_posts.py``        posts and comments: ``/api/v1/posts*``, ``/api/v1/comments/*``
``api_timelines.py``    home and profile timelines: ``/api/v1/timelines/*``
======================  ===================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import redis.asyncio as aioredis

from feed.api import WindowCounter
from feed.cache import Cache
from feed.config import AuthSettings, FeedSettings
from feed.events import FeedEvents
from feed.web import AccessTokens, Cursors, Endpoint


class RoomActivity(Protocol):
    """What the hub knows of rooms' chat (it stores it)."""

    async def summaries(self, room_ids: Sequence[str], user: str) -> dict[str, dict[str, Any]]:
        """Per room: ``last_message`` (the last ``chat.msg`` as a map, or None), ``last_offset``
        and ``unread`` (messages after ``user``'s read receipt)."""
        ...


class ReactionCounts(Protocol):
    """Reactions are the hub's (``react`` frames); the feed shows their totals."""

    async def counts_of(self, target_kind: str, target_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per target id: emoji -> count (targets without reactions are absent)."""
        ...


class PostMedia(Protocol):
    """The upload path's side of a post (media/)."""

    async def post_deleted(self, post_id: str) -> None:
        """The post is deleted: its upload stops counting against its owner's quota and its
        stored objects are removed."""
        ...


@dataclass
class FeedCaches:
    """The feed's caches (cache.py): posts, profiles and counters by id."""

    posts: Cache
    profiles: Cache

    def all(self) -> list[Cache]:
        return [self.posts, self.profiles]


@dataclass
class FeedApi:
    """Everything the feed's endpoints use, built once by the composition root."""

    db: asyncpg.Pool
    redis: aioredis.Redis
    tokens: AccessTokens
    events: FeedEvents
    cursors: Cursors
    limits: WindowCounter
    settings: FeedSettings
    auth: AuthSettings
    rooms: RoomActivity
    reactions: ReactionCounts
    media: PostMedia
    caches: FeedCaches

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint of the social domain (auth endpoints are added by the root beside them)."""
        from feed import api_graph, api_posts, api_rooms, api_timelines

        return [*api_graph.endpoints(self), *api_rooms.endpoints(self), *api_posts.endpoints(self),
                *api_timelines.endpoints(self)]
