"""The hub's settings: one typed object the composition root builds (from ``AMARO_HUB_*`` and the
node's own variables, README "Configuration") and passes down. Nothing here reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from realtime.broker import BrokerConfig
from realtime.presence import PresenceConfig


@dataclass(frozen=True, slots=True)
class HubConfig:
    node_id: str = "hub"  # this node's name in routing (its inbox), presence and logs
    max_frame: int = 64 * 1024  # largest client message, bytes, refused before decoding
    handshake_timeout_s: float = 10.0  # a new socket has this long to send ``hello``
    ping_interval_s: float = 25.0  # keepalive period of a socket (its ``welcome`` says so)
    drain_timeout_s: float = 20.0  # a draining node closes its last sockets by then
    allowed_origins: tuple[str, ...] = ()  # browser origins allowed on sockets (empty: loopback only)
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
