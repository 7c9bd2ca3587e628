"""The social domain's settings: accounts and tokens. Built by the composition root from the
``AMARO_TOKEN_*``, ``AMARO_*_TTL``, ``AMARO_PASSWORD_*`` and ``AMARO_AUTH_*`` variables (README
"Configuration"); nothing here reads the environment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuthSettings:
    token_secret: str = ""  # HMAC secret of access tokens
    token_previous_secrets: tuple[str, ...] = ()  # still accepted while a rotation completes
    access_ttl_s: int = 900
    refresh_ttl_s: int = 30 * 24 * 3600
    password_memory_kib: int = 65536  # Argon2id memory cost
    password_iterations: int = 3  # Argon2id passes
    attempts_per_address: int = 120  # sign-up and log-in attempts per client address per minute
    attempts_per_username: int = 10  # log-in attempts per username per 5 minutes


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """Timelines, caches and warming (``AMARO_FEED_*``)."""

    celebrity_followers: int = 5000  # above it an author's posts are merged into timelines at read time
    home_length: int = 800  # entries of a home timeline kept in Redis
    profile_length: int = 1000  # entries of an author's timeline kept in Redis
    cache_local_items: int = 20_000  # entries of each node's in-process cache
    cache_local_ttl_s: float = 30.0  # the longest a node serves a local entry without asking Redis
    cache_ttl_s: int = 3600  # lifetime of a shared (Redis) cache entry
    warm_interval_s: float = 300.0  # between two warming rounds
    warm_budget: int = 500  # users whose timelines one round may warm
    warm_max_load: float = 0.7  # no warming while the load average per CPU is above this
    public_max_age_s: int = 30  # Cache-Control max-age of public posts and profiles (CDNs)
    announce_sweep_s: float = 5.0  # between two sweeps for posts nobody announced (a node died)
