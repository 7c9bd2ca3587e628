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
