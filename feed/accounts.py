"""Accounts: sign-up, log-in, refresh-token rotation, log-out. PostgreSQL is the source of truth.

Every query is parameterized. Errors are ``AccountError`` with a stable ``code`` and an HTTP
status, so the HTTP layer turns them into ``{"error": {"code", "message"}}`` bodies unchanged.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from amaro.infra.connect import Conn
from feed.passwords import PasswordHasher, password_problem
from feed.tokens import TokenSigner

USERNAME = re.compile(r"^[a-z0-9](?:[a-z0-9_.]{1,30})[a-z0-9]$")
MAX_DISPLAY_NAME = 64
RESERVED_USERNAMES = frozenset({"admin", "root", "system", "support", "amaro", "api", "www", "null"})

log = structlog.get_logger(__name__)


class AccountError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Grant:
    """What a successful sign-up, log-in or refresh hands the client."""

    user: User
    access_token: str
    refresh_token: str
    expires_in: int


def normalize_username(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).strip().lower()


def validate_signup(username: str, password: str, display_name: str) -> None:
    if not USERNAME.match(username):
        raise AccountError(
            "invalid_username",
            "username must be 3-32 characters of a-z, 0-9, '_' or '.', starting and ending with a letter or digit",
            422,
        )
    if username in RESERVED_USERNAMES:
        raise AccountError("username_taken", "that username is not available", 409)
    problem = password_problem(password, username)
    if problem is not None:
        raise AccountError("weak_password", problem, 422)
    if len(display_name) > MAX_DISPLAY_NAME or any(unicodedata.category(c) == "Cc" for c in display_name):
        raise AccountError("invalid_display_name", f"display name must be at most {MAX_DISPLAY_NAME} "
                           "printable characters", 422)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


class Accounts:
    def __init__(self, db: asyncpg.Pool, signer: TokenSigner, hasher: PasswordHasher,
                 refresh_ttl_s: int) -> None:
        self._db = db
        self._signer = signer
        self._hasher = hasher
        self._refresh_ttl = timedelta(seconds=refresh_ttl_s)

    async def signup(self, username: str, password: str, display_name: str = "",
                     user_agent: str = "") -> Grant:
        username = normalize_username(username)
        display_name = display_name.strip()
        validate_signup(username, password, display_name)
        password_hash = await self._hasher.hash(password)
        user = User(id=str(uuid.uuid4()), username=username, display_name=display_name or username)
        async with self._db.acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    "INSERT INTO users (id, username, display_name, password_hash) VALUES ($1, $2, $3, $4)",
                    uuid.UUID(user.id), user.username, user.display_name, password_hash,
                )
            except asyncpg.UniqueViolationError:
                raise AccountError("username_taken", "that username is not available", 409) from None
            grant = await self._open_session(conn, user, uuid.uuid4(), user_agent)
        log.info("account_created", user_id=user.id)
        return grant

    async def login(self, username: str, password: str, user_agent: str = "") -> Grant:
        username = normalize_username(username)
        row = None
        if 0 < len(username) <= 64 and len(password) <= 1024:
            row = await self._db.fetchrow(
                "SELECT id, username, display_name, password_hash FROM users "
                "WHERE lower(username) = $1 AND disabled_at IS NULL",
                username,
            )
        ok = await self._hasher.verify(password[:1024], None if row is None else row["password_hash"])
        if row is None or not ok:
            raise AccountError("invalid_credentials", "wrong username or password", 401)
        user = User(id=str(row["id"]), username=row["username"], display_name=row["display_name"])
        async with self._db.acquire() as conn:
            return await self._open_session(conn, user, uuid.uuid4(), user_agent)

    async def refresh(self, refresh_token: str) -> Grant:
        """Rotate a refresh token. Reusing an already rotated token revokes its whole family."""
        if not refresh_token or len(refresh_token) > 200:
            raise AccountError("invalid_refresh_token", "refresh token is not valid", 401)
        now = datetime.now(UTC)
        grant: Grant | None = None
        async with self._db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT s.id, s.family_id, s.expires_at, s.used_at, s.revoked_at, s.user_agent, "
                "u.id AS user_id, u.username, u.display_name, u.disabled_at "
                "FROM auth_sessions s JOIN users u ON u.id = s.user_id "
                "WHERE s.token_sha256 = $1 FOR UPDATE OF s",
                _token_hash(refresh_token),
            )
            if row is None or row["revoked_at"] is not None or row["disabled_at"] is not None:
                raise AccountError("invalid_refresh_token", "refresh token is not valid", 401)
            if row["used_at"] is not None:
                await conn.execute(
                    "UPDATE auth_sessions SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
                    row["family_id"], now,
                )
                log.warning("refresh_token_reuse", user_id=str(row["user_id"]), family=str(row["family_id"]))
            elif row["expires_at"] <= now:
                raise AccountError("refresh_token_expired", "refresh token expired; log in again", 401)
            else:
                await conn.execute("UPDATE auth_sessions SET used_at = $2 WHERE id = $1", row["id"], now)
                user = User(id=str(row["user_id"]), username=row["username"], display_name=row["display_name"])
                grant = await self._open_session(conn, user, row["family_id"], row["user_agent"])
        # Raised after the transaction commits, so that the family's revocation is kept.
        if grant is None:
            raise AccountError("invalid_refresh_token", "refresh token was already used", 401)
        return grant

    async def logout(self, refresh_token: str) -> None:
        """Revoke the refresh token's family. Access tokens expire on their own within minutes."""
        await self._db.execute(
            "UPDATE auth_sessions SET revoked_at = now() WHERE revoked_at IS NULL AND family_id = "
            "(SELECT family_id FROM auth_sessions WHERE token_sha256 = $1)",
            _token_hash(refresh_token),
        )

    async def _open_session(self, conn: Conn, user: User, family_id: uuid.UUID,
                            user_agent: str) -> Grant:
        session_id = uuid.uuid4()
        refresh_token = "rt1_" + secrets.token_urlsafe(32)
        await conn.execute(
            "INSERT INTO auth_sessions (id, family_id, user_id, token_sha256, expires_at, user_agent) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            session_id, family_id, uuid.UUID(user.id), _token_hash(refresh_token),
            datetime.now(UTC) + self._refresh_ttl, user_agent[:256],
        )
        access = self._signer.issue(user.id, str(family_id))
        return Grant(user=user, access_token=access, refresh_token=refresh_token,
                     expires_in=self._signer.ttl_s)
