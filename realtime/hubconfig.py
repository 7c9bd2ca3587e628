"""Tuning of the hub, read from ``AMARO_HUB_*`` variables (documented in README.md, Configuration).

Kept apart from ``realtime.config.Settings`` (shared by every role) because only the hub reads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from realtime.broker import BrokerConfig
from realtime.config import env_float, env_int
from realtime.presence import PresenceConfig


@dataclass(frozen=True, slots=True)
class HubConfig:
    outbox_bytes: int = 1 << 20  # per connection; past it a slow client is disconnected (4008)
    frame_rate: float = 50.0  # frames per second per connection (token bucket) ...
    frame_burst: float = 100.0  # ... with this burst
    flood_limit: int = 100  # refused frames in a row before closing with FLOOD (4009)
    accept_rate: float = 1000.0  # new sockets per second per node (reconnect storms), burst 2x
    user_rate: int = 60  # chat sends + publishes + reactions per user per 10 s, across nodes
    max_recover: int = 1000  # longest gap replayed on resume; beyond it recovered=False
    reaction_window_ms: int = 150  # at most one react.counts per target per window
    typing_throttle_s: float = 2.0
    typing_expire_s: float = 5.0
    shards: int = 16
    redis_connections: int = 64  # the hub's own Redis pool (waits when all are busy)
    reconcile_s: float = 5.0  # position check period
    batch_items: int = 256  # most durable writes per group-commit transaction
    batch_window_ms: float = 1.0  # a busy writer's wait to gather a batch after a pause (idle: none)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    presence: PresenceConfig = field(default_factory=PresenceConfig)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubConfig:
        e = os.environ if env is None else env
        return cls(
            outbox_bytes=env_int(e, "AMARO_HUB_OUTBOX_BYTES", 1 << 20, minimum=4096),
            frame_rate=env_float(e, "AMARO_HUB_FRAME_RATE", 50.0, minimum=1.0),
            frame_burst=env_float(e, "AMARO_HUB_FRAME_BURST", 100.0, minimum=1.0),
            accept_rate=env_float(e, "AMARO_HUB_ACCEPT_RATE", 1000.0, minimum=1.0),
            user_rate=env_int(e, "AMARO_HUB_USER_RATE", 60, minimum=1),
            max_recover=env_int(e, "AMARO_HUB_MAX_RECOVER", 1000, minimum=0),
            reconcile_s=env_float(e, "AMARO_HUB_RECONCILE", 5.0, minimum=0.5),
            batch_items=env_int(e, "AMARO_HUB_BATCH_ITEMS", 256, minimum=1),
            batch_window_ms=env_float(e, "AMARO_HUB_BATCH_WINDOW_MS", 1.0, minimum=0.0),
            redis_connections=env_int(e, "AMARO_HUB_REDIS_CONNECTIONS", 64, minimum=4),
            reaction_window_ms=env_int(e, "AMARO_HUB_REACTION_WINDOW_MS", 150, minimum=10),
            broker=BrokerConfig(history_size=env_int(e, "AMARO_HUB_HISTORY_SIZE", 1000, minimum=10)),
            presence=PresenceConfig(
                ttl_s=env_float(e, "AMARO_HUB_PRESENCE_TTL", 8.0, minimum=1.0),
                heartbeat_s=env_float(e, "AMARO_HUB_PRESENCE_HEARTBEAT", 2.5, minimum=0.1),
            ),
        )
