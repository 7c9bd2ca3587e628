"""Password hashing with Argon2id (memory-hard), run off the event loop.

Hashes are PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``), so parameters can be raised
later and old hashes still verify. Hashing costs tens of MiB and tens of milliseconds by design: it
runs in a thread, and a semaphore bounds how many run at once so a log-in storm cannot exhaust
memory or starve the loop's other work.
"""

from __future__ import annotations

import asyncio
import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

# A real hash with the production parameters, verified when a user does not exist so that log-in
# takes the same time whether or not the username is known.
_SALT_BYTES = 16
_HASH_BYTES = 32

COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password123", "1234567890", "123456789", "12345678", "qwertyuiop",
        "qwerty123", "iloveyou", "letmein123", "passw0rd", "abc1234567", "1111111111", "0123456789",
        "amarothan", "amaro12345", "football", "baseball", "welcome1", "sunshine1", "princess1",
    }
)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


class PasswordHasher:
    def __init__(self, memory_kib: int = 65536, iterations: int = 3, lanes: int = 1,
                 concurrency: int = 2) -> None:
        self._memory_kib = memory_kib
        self._iterations = iterations
        self._lanes = lanes
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy: str | None = None

    def _kdf(self) -> Argon2id:
        return Argon2id(salt=os.urandom(_SALT_BYTES), length=_HASH_BYTES, iterations=self._iterations,
                        lanes=self._lanes, memory_cost=self._memory_kib)

    def hash_sync(self, password: str) -> str:
        return self._kdf().derive_phc_encoded(password.encode("utf-8"))

    @staticmethod
    def verify_sync(password: str, encoded: str) -> bool:
        try:
            Argon2id.verify_phc_encoded(password.encode("utf-8"), encoded)
        except (InvalidKey, ValueError):
            return False
        return True

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hash_sync, password)

    async def verify(self, password: str, encoded: str | None) -> bool:
        """Check ``password`` against ``encoded``; with ``None`` burn the same time and fail."""
        async with self._slots:
            if encoded is None:
                if self._dummy is None:
                    self._dummy = await asyncio.to_thread(self.hash_sync, "no-such-user-password")
                await asyncio.to_thread(self.verify_sync, password, self._dummy)
                return False
            return await asyncio.to_thread(self.verify_sync, password, encoded)


def password_problem(password: str, username: str) -> str | None:
    """Why ``password`` is too weak, or None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password must be at most {MAX_PASSWORD_LENGTH} characters"
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS:
        return "password is too common"
    if username and username.lower() in lowered:
        return "password must not contain the username"
    if len(set(password)) < 4:
        return "password has too few distinct characters"
    return None
