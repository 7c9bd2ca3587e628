"""Everything the upload path needs at run time, built once by the composition root."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis

from feed.tokens import TokenSigner
from media.config import CHUNK_SIZE, MediaSettings
from media.events import MediaEvents, NoEvents
from media.fairness import NodeLimits, UserSlots
from media.keyring import Keyring
from media.store import MediaStore


@dataclass
class MediaContext:
    media: MediaSettings
    redis: aioredis.Redis
    db: asyncpg.Pool
    store: MediaStore
    keyring: Keyring
    tokens: TokenSigner
    events: MediaEvents = field(default_factory=NoEvents)
    allowed_origins: tuple[str, ...] = ()
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    node_limits: NodeLimits = field(init=False)
    user_slots: UserSlots = field(init=False)

    def __post_init__(self) -> None:
        self.node_limits = NodeLimits(self.media.node_concurrent_uploads, self.media.bytes_in_flight)
        self.user_slots = UserSlots(self.redis, self.media.user_concurrent_uploads, self.media.lock_ttl_s * 3)

    @property
    def request_reserve(self) -> int:
        """Buffer bytes one streaming request may hold: a sealed part plus a chunk, plus overhead."""
        return self.media.part_size + self.media.part_size // 4096 + 2 * CHUNK_SIZE
