"""The feed's HTTP API, assembled: what it needs from the rest of the platform (protocols the
composition root fills in) and the endpoints of ``/api/v1`` that each area contributes.

======================  ===================================================================
module                  endpoints
======================  ===================================================================
``api.py``              accounts and tokens: ``/api/v1/auth/*``
``api_graph.py``        profiles, follows, follow requests, blocks: ``/api/v1/users/*``, ``/api/v1/me*``
``api_rooms.py``        rooms and members: ``/api/v1/rooms*``
``api_posts.py``        posts and comments: ``/api/v1/posts*``, ``/api/v1/comments/*``
``api_timelines.py``    home and profile timelines: ``/api/v1/timelines/home``, ``/api/v1/users/{id}/posts``
======================  ===================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
import redis.asyncio as aioredis

from feed.api import WindowCounter
from feed.cache import Cache
from feed.config import AuthSettings, FeedSettings
from feed.events import FeedEvents
from feed.web import AccessTokens, Cursors, Endpoint

if TYPE_CHECKING:
    from feed.social import Social


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

    async def post_of_upload(self, upload_id: str, user_id: str) -> str | None:
        """The post of ``user_id``'s upload ``upload_id`` (None: no such upload of theirs)."""
        ...


class PostWatchers(Protocol):
    """The subscriptions of this node (the hub's), asked again when the facts behind the access
    rule change where no single channel names the change (a block, an unfollow, an account turned
    private): every node hears of such changes (feed/announce.py) and rechecks its own sockets."""

    def watched(self, kind: str) -> list[str]:
        """The ids of the channels of ``kind`` (``post``) that have subscribers on this node."""
        ...

    async def recheck(self, channel: str, user: str | None = None) -> int:
        """End the subscriptions of ``channel`` on this node (only ``user``'s, if given) that the
        access rule now refuses; returns how many ended."""
        ...

    async def recheck_user(self, user: str, kind: str) -> int:
        """``recheck`` of every channel of ``kind`` that ``user`` subscribes to on this node."""
        ...


@dataclass
class FeedCaches:
    """The feed's caches (cache.py): posts, profiles and counters by id.

    ``reactions``: key = post id, value = its reaction totals (emoji -> count), dropped when the
    hub stores a reaction. ``relations``: key = user id, value = whom they follow and who stands
    behind a block with them (feed/viewers.py); whoever changes a follow or block drops both users'
    (``api.social.viewers.changed``; the database also announces it, feed/announce.py)."""

    posts: Cache
    profiles: Cache
    reactions: Cache
    relations: Cache

    def all(self) -> list[Cache]:
        return [self.posts, self.profiles, self.reactions, self.relations]


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
    watchers: PostWatchers

    @cached_property
    def social(self) -> Social:
        """Posts, comments, timelines and their announcer, one set per node (feed/social.py)."""
        from feed.social import Social

        return Social(self)

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint of the social domain (auth endpoints are added by the root beside them)."""
        from feed import api_graph, api_posts, api_rooms, api_timelines

        return [*api_graph.endpoints(self), *api_rooms.endpoints(self), *api_posts.endpoints(self),
                *api_timelines.endpoints(self)]
