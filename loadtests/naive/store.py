"""The naive server's tables and queries: synchronous psycopg, one connection per worker thread.

Every table is prefixed ``naive_`` so the server can share a database with anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg

# PBKDF2-SHA256 as a 2020-era web framework stored passwords by default.
PASSWORD_ITERATIONS = 100_000
# A user is online while their last heartbeat is this recent.
PRESENCE_TTL_S = 10.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS naive_users (
    id bigserial PRIMARY KEY, username text UNIQUE NOT NULL, salt bytea NOT NULL, hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS naive_sessions (
    token text PRIMARY KEY, user_id bigint NOT NULL REFERENCES naive_users(id));
CREATE TABLE IF NOT EXISTS naive_follows (
    follower bigint NOT NULL REFERENCES naive_users(id), followee bigint NOT NULL REFERENCES naive_users(id),
    PRIMARY KEY (follower, followee));
CREATE TABLE IF NOT EXISTS naive_posts (
    id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES naive_users(id), body text NOT NULL,
    media text, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS naive_posts_by_user ON naive_posts (user_id, id DESC);
CREATE TABLE IF NOT EXISTS naive_reactions (
    post_id bigint NOT NULL REFERENCES naive_posts(id), user_id bigint NOT NULL REFERENCES naive_users(id),
    kind text NOT NULL, PRIMARY KEY (post_id, user_id));
CREATE TABLE IF NOT EXISTS naive_rooms (id bigserial PRIMARY KEY, name text NOT NULL);
CREATE TABLE IF NOT EXISTS naive_members (
    room_id bigint NOT NULL REFERENCES naive_rooms(id), user_id bigint NOT NULL REFERENCES naive_users(id),
    PRIMARY KEY (room_id, user_id));
CREATE TABLE IF NOT EXISTS naive_messages (
    id bigserial PRIMARY KEY, room_id bigint NOT NULL REFERENCES naive_rooms(id),
    user_id bigint NOT NULL REFERENCES naive_users(id), body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS naive_messages_by_room ON naive_messages (room_id, id);
CREATE TABLE IF NOT EXISTS naive_presence (user_id bigint PRIMARY KEY REFERENCES naive_users(id),
    seen_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS naive_uploads (
    id text PRIMARY KEY, user_id bigint NOT NULL REFERENCES naive_users(id), bytes bigint NOT NULL,
    output text NOT NULL, transcode_s double precision NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
"""


class Conflict(Exception):
    """The thing already exists (a taken username)."""


@dataclass(frozen=True)
class User:
    id: int
    username: str


def create_schema(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        # Two servers starting on one database at once must not race on CREATE TABLE.
        conn.execute("SELECT pg_advisory_lock(24240)")
        try:
            conn.execute(SCHEMA)
        finally:
            conn.execute("SELECT pg_advisory_unlock(24240)")


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PASSWORD_ITERATIONS)


class Store:
    """One worker's view of the database: a plain synchronous connection in autocommit."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def _one(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        return self.conn.execute(sql, args).fetchone()

    def _all(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, args).fetchall()

    def _new_session(self, user_id: int) -> str:
        token = secrets.token_urlsafe(24)
        self.conn.execute("INSERT INTO naive_sessions (token, user_id) VALUES (%s, %s)", (token, user_id))
        return token

    def sign_up(self, username: str, password: str) -> tuple[User, str]:
        salt = os.urandom(16)
        try:
            row = self._one("INSERT INTO naive_users (username, salt, hash) VALUES (%s, %s, %s) RETURNING id",
                            username, salt, _hash(password, salt))
        except psycopg.errors.UniqueViolation as e:
            raise Conflict(username) from e
        assert row is not None
        user = User(row[0], username)
        return user, self._new_session(user.id)

    def log_in(self, username: str, password: str) -> tuple[User, str] | None:
        row = self._one("SELECT id, salt, hash FROM naive_users WHERE username = %s", username)
        if row is None or not hmac.compare_digest(_hash(password, bytes(row[1])), bytes(row[2])):
            return None
        return User(row[0], username), self._new_session(row[0])

    def session_user(self, token: str) -> User | None:
        row = self._one("SELECT u.id, u.username FROM naive_sessions s JOIN naive_users u ON u.id = s.user_id"
                        " WHERE s.token = %s", token)
        return User(row[0], row[1]) if row else None

    def follow(self, follower: int, followee: int) -> bool:
        if self._one("SELECT 1 FROM naive_users WHERE id = %s", followee) is None:
            return False
        self.conn.execute("INSERT INTO naive_follows VALUES (%s, %s) ON CONFLICT DO NOTHING", (follower, followee))
        return True

    def post(self, user_id: int, body: str, media: str | None) -> int:
        row = self._one("INSERT INTO naive_posts (user_id, body, media) VALUES (%s, %s, %s) RETURNING id",
                        user_id, body, media)
        assert row is not None
        return int(row[0])

    def react(self, user_id: int, post_id: int, kind: str) -> bool:
        if self._one("SELECT 1 FROM naive_posts WHERE id = %s", post_id) is None:
            return False
        self.conn.execute("INSERT INTO naive_reactions VALUES (%s, %s, %s)"
                          " ON CONFLICT (post_id, user_id) DO UPDATE SET kind = excluded.kind",
                          (post_id, user_id, kind))
        return True

    def _posts(self, where: str, args: tuple[Any, ...], before: int | None, limit: int) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT p.id, p.user_id, u.username, p.body, p.media, p.created_at,"  # noqa: S608 (where: our constants)
            " (SELECT count(*) FROM naive_reactions r WHERE r.post_id = p.id)"
            " FROM naive_posts p JOIN naive_users u ON u.id = p.user_id"
            f" WHERE ({where}) AND (%s::bigint IS NULL OR p.id < %s) ORDER BY p.id DESC LIMIT %s",
            *args, before, before, limit)
        return [{"id": str(r[0]), "user_id": str(r[1]), "username": r[2], "body": r[3], "media": r[4],
                 "created_at": r[5].isoformat(), "reactions": r[6]} for r in rows]

    def timeline(self, user_id: int, before: int | None, limit: int) -> list[dict[str, Any]]:
        """The home timeline, read straight from the tables on every request."""
        return self._posts("p.user_id = %s OR p.user_id IN (SELECT followee FROM naive_follows WHERE follower = %s)",
                           (user_id, user_id), before, limit)

    def profile(self, user_id: int, limit: int) -> dict[str, Any] | None:
        row = self._one("SELECT u.username, (SELECT count(*) FROM naive_follows WHERE followee = u.id),"
                        " (SELECT count(*) FROM naive_follows WHERE follower = u.id) FROM naive_users u"
                        " WHERE u.id = %s", user_id)
        if row is None:
            return None
        return {"id": str(user_id), "username": row[0], "followers": row[1], "following": row[2],
                "posts": self._posts("p.user_id = %s", (user_id,), None, limit)}

    def create_room(self, name: str, members: list[int]) -> int:
        row = self._one("INSERT INTO naive_rooms (name) VALUES (%s) RETURNING id", name)
        assert row is not None
        with self.conn.cursor() as cur:
            cur.executemany("INSERT INTO naive_members VALUES (%s, %s) ON CONFLICT DO NOTHING",
                            [(row[0], m) for m in members])
        return int(row[0])

    def chat_send(self, user_id: int, room_id: int, body: str) -> int | None:
        if self._one("SELECT 1 FROM naive_members WHERE room_id = %s AND user_id = %s", room_id, user_id) is None:
            return None
        row = self._one("INSERT INTO naive_messages (room_id, user_id, body) VALUES (%s, %s, %s) RETURNING id",
                        room_id, user_id, body)
        assert row is not None
        return int(row[0])

    def chat_since(self, user_id: int, since: int | None, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Messages in the user's rooms after ``since``; with no ``since``, none and the newest id."""
        if since is None:
            row = self._one("SELECT coalesce(max(id), 0) FROM naive_messages")
            return [], int(row[0]) if row else 0
        rows = self._all("SELECT m.id, m.room_id, m.user_id, m.body FROM naive_messages m"
                         " JOIN naive_members mb ON mb.room_id = m.room_id AND mb.user_id = %s"
                         " WHERE m.id > %s ORDER BY m.id LIMIT %s", user_id, since, limit)
        messages = [{"id": str(r[0]), "room": str(r[1]), "user_id": str(r[2]), "body": r[3]} for r in rows]
        return messages, int(rows[-1][0]) if rows else since

    def heartbeat(self, user_id: int) -> None:
        self.conn.execute("INSERT INTO naive_presence VALUES (%s, now())"
                          " ON CONFLICT (user_id) DO UPDATE SET seen_at = now()", (user_id,))

    def leave(self, user_id: int) -> None:
        self.conn.execute("DELETE FROM naive_presence WHERE user_id = %s", (user_id,))

    def online_friends(self, user_id: int) -> list[str]:
        """Friends (a follow either way) whose last heartbeat is recent."""
        rows = self._all("SELECT p.user_id FROM naive_presence p WHERE p.user_id IN"
                         " (SELECT followee FROM naive_follows WHERE follower = %s"
                         "  UNION SELECT follower FROM naive_follows WHERE followee = %s)"
                         " AND p.seen_at > now() - make_interval(secs => %s) ORDER BY p.user_id",
                         user_id, user_id, PRESENCE_TTL_S)
        return [str(r[0]) for r in rows]

    def record_upload(self, upload_id: str, user_id: int, size: int, output: str, transcode_s: float) -> None:
        self.conn.execute("INSERT INTO naive_uploads VALUES (%s, %s, %s, %s, %s)",
                          (upload_id, user_id, size, output, transcode_s))
