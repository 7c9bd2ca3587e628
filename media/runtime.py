"""Everything the upload path needs at run time, built once by the composition root, and the
protocols through which it reaches other parts (it imports none of them)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
import redis.asyncio as aioredis

from amaro.infra.connect import Conn
from media.config import CHUNK_SIZE, MediaSettings
from media.events import MediaEvents, NoEvents
from media.jobs import JobQueue
from media.keyring import Keyring
from media.limits import NodeLimits, UserSlots
from media.store import MediaStore


class AccessTokens(Protocol):
    def user_of(self, token: str) -> str:
        """The user a valid access token names. Raises ``ProtocolError`` with ``TOKEN_INVALID`` or
        ``TOKEN_EXPIRED`` otherwise."""
        ...


class DraftPosts(Protocol):
    """The post an upload belongs to, changed on the caller's connection (its transaction)."""

    async def create_draft(self, conn: Conn, post_id: str, author_id: str) -> None: ...

    async def media_received(self, conn: Conn, post_id: str, media_id: str) -> None: ...

    async def upload_ended(self, conn: Conn, post_id: str, *, deleted: bool) -> None: ...


@dataclass
class MediaContext:
    media: MediaSettings
    redis: aioredis.Redis
    db: asyncpg.Pool
    store: MediaStore
    keyring: Keyring
    tokens: AccessTokens
    posts: DraftPosts
    events: MediaEvents = field(default_factory=NoEvents)
    allowed_origins: tuple[str, ...] = ()
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    node_limits: NodeLimits = field(init=False)
    user_slots: UserSlots = field(init=False)
    jobs: JobQueue = field(init=False)

    def __post_init__(self) -> None:
        self.node_limits = NodeLimits(self.media.node_concurrent_uploads, self.media.bytes_in_flight)
        self.user_slots = UserSlots(self.redis, self.media.user_concurrent_uploads, self.media.lock_ttl_s * 3)
        self.jobs = JobQueue(self.media.jobs_namespace)

    @property
    def request_reserve(self) -> int:
        """Buffer bytes one streaming request may hold: a sealed part plus a chunk, plus overhead."""
        return self.media.part_size + self.media.part_size // 4096 + 2 * CHUNK_SIZE
