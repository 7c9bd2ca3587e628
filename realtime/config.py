"""The node's settings: one typed object built from ``AMARO_*`` variables at start-up, passed down.

Every variable is documented in README.md ("Configuration"). Parts of the system with settings of
their own (media/, nara/) read their ``AMARO_MEDIA_*`` / ``AMARO_NARA_*`` variables the same way.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path


class ConfigError(ValueError):
    """A variable is missing or malformed. The message names the variable."""


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_list(env: Mapping[str, str], name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True, slots=True)
class Settings:
    """Core settings shared by every role (hub, ingest, worker)."""

    env: str = "dev"
    host: str = "127.0.0.1"
    port: int = 8000
    node_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    data_dir: Path = Path(".amaro")
    redis_url: str = ""
    database_url: str = ""
    db_pool_min: int = 1
    db_pool_max: int = 10
    token_secret: str = ""
    token_previous_secrets: tuple[str, ...] = ()
    access_ttl_s: int = 900
    refresh_ttl_s: int = 30 * 24 * 3600
    password_memory_kib: int = 65536
    password_iterations: int = 3
    auth_attempts_per_address: int = 120
    auth_attempts_per_username: int = 10
    log_format: str = "auto"
    log_level: str = "info"
    allowed_origins: tuple[str, ...] = ()
    max_frame: int = 64 * 1024
    handshake_timeout_s: float = 10.0
    ping_interval_s: float = 25.0
    drain_timeout_s: float = 20.0

    @property
    def is_production(self) -> bool:
        return self.env == "prod"

    def with_services(self, *, redis_url: str, database_url: str) -> Settings:
        return replace(self, redis_url=redis_url, database_url=database_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        settings = cls(
            env=env_str(e, "AMARO_ENV", "dev"),
            host=env_str(e, "AMARO_HOST", "127.0.0.1"),
            port=env_int(e, "AMARO_PORT", 8000),
            node_id=env_str(e, "AMARO_NODE_ID", f"{socket.gethostname()}-{os.getpid()}"),
            data_dir=Path(env_str(e, "AMARO_DATA_DIR", ".amaro")),
            redis_url=env_str(e, "AMARO_REDIS_URL", ""),
            database_url=env_str(e, "AMARO_DATABASE_URL", ""),
            db_pool_min=env_int(e, "AMARO_DB_POOL_MIN", 1),
            db_pool_max=env_int(e, "AMARO_DB_POOL_MAX", 10, minimum=1),
            token_secret=env_str(e, "AMARO_TOKEN_SECRET", ""),
            token_previous_secrets=env_list(e, "AMARO_TOKEN_PREVIOUS_SECRETS"),
            access_ttl_s=env_int(e, "AMARO_ACCESS_TTL", 900, minimum=10),
            refresh_ttl_s=env_int(e, "AMARO_REFRESH_TTL", 30 * 24 * 3600, minimum=60),
            password_memory_kib=env_int(e, "AMARO_PASSWORD_MEMORY_KIB", 65536, minimum=8192),
            password_iterations=env_int(e, "AMARO_PASSWORD_ITERATIONS", 3, minimum=1),
            auth_attempts_per_address=env_int(e, "AMARO_AUTH_ATTEMPTS_PER_ADDRESS", 120, minimum=1),
            auth_attempts_per_username=env_int(e, "AMARO_AUTH_ATTEMPTS_PER_USERNAME", 10, minimum=1),
            log_format=env_str(e, "AMARO_LOG_FORMAT", "auto"),
            log_level=env_str(e, "AMARO_LOG_LEVEL", "info"),
            allowed_origins=env_list(e, "AMARO_ALLOWED_ORIGINS"),
            max_frame=env_int(e, "AMARO_MAX_FRAME", 64 * 1024, minimum=1024),
            handshake_timeout_s=env_float(e, "AMARO_HANDSHAKE_TIMEOUT", 10.0, minimum=0.1),
            ping_interval_s=env_float(e, "AMARO_PING_INTERVAL", 25.0, minimum=1.0),
            drain_timeout_s=env_float(e, "AMARO_DRAIN_TIMEOUT", 20.0, minimum=0.0),
        )
        if settings.env not in ("dev", "test", "prod"):
            raise ConfigError(f"AMARO_ENV must be dev, test or prod, got {settings.env!r}")
        if settings.log_format not in ("auto", "json", "console"):
            raise ConfigError(f"AMARO_LOG_FORMAT must be auto, json or console, got {settings.log_format!r}")
        if settings.is_production:
            if len(settings.token_secret) < 32:
                raise ConfigError("AMARO_TOKEN_SECRET must be set to at least 32 characters in production")
            if not settings.redis_url or not settings.database_url:
                raise ConfigError("AMARO_REDIS_URL and AMARO_DATABASE_URL are required in production")
        return settings
