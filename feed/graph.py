"""The follow graph: follows, private accounts and their follow requests, blocks.

Rules (the HTTP layer, api_graph.py, turns refusals into answers):

* Nobody follows themselves (422 ``cannot_follow_self``).
* A follow of a private account is a follow request until its owner accepts it; following a
  public account is immediate. Turning an account public accepts every request waiting for it.
* A block removes the follows and follow requests between the two users, both ways, and forbids
  new ones: a user who blocked the viewer is, to the viewer, unknown (404 ``not_found``, nothing
  about the account leaks); a user the viewer blocked answers 403 ``blocking`` to a follow (the
  viewer knows what they did, and must unblock first).
* ``users.followers_count`` and ``following_count`` are exact: every change of ``follows`` moves
  them in the same transaction.

Concurrency. Every transaction that changes the relationship of two users first locks both users'
rows (``FOR NO KEY UPDATE``, in id order), so a follow and a block of the same pair never
interleave, and the check "is there a block? is the account private?" holds until the commit. A
deadlock (possible only with ``set_private``, which also locks every requester) is retried.

Lists (followers, following, follow requests, blocks) are newest first, keyset-paginated on
``(created_at DESC, other user's id ASC)``; the next page starts strictly after the last row of the
previous one, whose position travels in a signed cursor (``feed.web.Cursors``). So paging never
repeats a row and never skips a row that sorts after the cursor (older), whatever is added or
removed meanwhile. A row added while a client pages sorts before its cursor (it is newer), so that
client does not see it in this pass: it shows up at the top of the next first page.

Live (``api.events``, after the commit): ``follow.new`` to the followed user, ``follow.request``
to a private account's owner, ``follow.accepted`` to the requester; ``data`` is
``{"user": <the other user's small profile>}``. Online state follows the graph: when two users stop
being related (an unfollow that leaves no follow either way, a block), each one's live
subscriptions of the other's ``online:<id>`` end at once (``revoke``), which also takes the other
out of their ``online:friends``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import structlog

from amaro.infra.connect import Conn
from feed.events import FeedEvents
from feed.profiles import Profiles
from feed.web import ApiError, Cursors, canonical_uuid, not_found

log = structlog.get_logger(__name__)

T = TypeVar("T")
BlockHook = Callable[[str, str], Awaitable[None]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DEADLOCK_RETRIES = 3
#: The PostgreSQL channel of graph changes: ``follow:<follower>:<followee>`` and
#: ``block:<blocker>:<blocked>`` (triggers, feed/sql/0005_posts.sql), ``private:<user>:``.
GRAPH_CHANNEL = "amaro_feed_graph"

FOLLOWING, REQUESTED, NONE = "following", "requested", "none"


def cannot_follow_self() -> ApiError:
    return ApiError("cannot_follow_self", "you cannot follow yourself", 422)


def blocking() -> ApiError:
    return ApiError("blocking", "you block this user: unblock them first", 403)


# -- lists -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """One keyset list: rows of ``table`` whose ``owner`` column is the list's user, each naming
    another user in ``other``; ``at`` names the row's time in the answer. Identifiers here are
    constants of this module, never input."""

    kind: str
    table: str
    owner: str
    other: str
    at: str


FOLLOWERS = Listing("followers", "follows", "followee_id", "follower_id", "followed_at")
FOLLOWING_LIST = Listing("following", "follows", "follower_id", "followee_id", "followed_at")
REQUESTS = Listing("follow-requests", "follow_requests", "target_id", "requester_id", "requested_at")
BLOCKS = Listing("blocks", "blocks", "blocker_id", "blocked_id", "blocked_at")


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _position(cursors: Cursors, listing: Listing, owner: str, cursor: str) -> tuple[datetime, uuid.UUID] | None:
    """The position a cursor of ``listing`` of ``owner`` holds (None: the first page)."""
    found = cursors.decode(listing.kind, cursor)
    if not found:
        return None
    at, other = found.get("t"), found.get("u")
    if found.get("o") != owner or type(at) is not int or not isinstance(other, str) or not canonical_uuid(other):
        raise ApiError("bad_cursor", "the cursor is not one this list gave", 400)
    return _EPOCH + timedelta(microseconds=at), uuid.UUID(other)


async def list_page(db: asyncpg.Pool, cursors: Cursors, listing: Listing, owner: str, *, viewer: str | None,
                    cursor: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``listing`` of ``owner`` as ``{"user": small profile, <at>: ISO time}`` items,
    and the cursor of the next page (None at the end). Disabled users are left out, and so is
    anyone a block stands between with ``viewer``."""
    after = _position(cursors, listing, owner, cursor)
    L = listing
    sql = f"""SELECT u.id, u.username, u.display_name, t.created_at
              FROM {L.table} t JOIN users u ON u.id = t.{L.other}
              WHERE t.{L.owner} = $1 AND u.disabled_at IS NULL
                AND ($2::uuid IS NULL OR NOT EXISTS (
                    SELECT 1 FROM blocks b WHERE (b.blocker_id = $2 AND b.blocked_id = t.{L.other})
                                              OR (b.blocker_id = t.{L.other} AND b.blocked_id = $2)))"""  # noqa: S608 - identifiers are this module's constants
    args: list[Any] = [uuid.UUID(owner), None if viewer is None else uuid.UUID(viewer), limit + 1]
    if after is not None:
        # ``created_at <= $4`` is redundant with the OR and lets the index bound the scan.
        sql += f""" AND t.created_at <= $4 AND (t.created_at < $4 OR t.{L.other} > $5)"""
        args += list(after)
    sql += f" ORDER BY t.created_at DESC, t.{L.other} ASC LIMIT $3"
    rows = await db.fetch(sql, *args)
    more, rows = len(rows) > limit, rows[:limit]
    items = [{"user": {"id": str(r["id"]), "username": r["username"], "display_name": r["display_name"]},
              L.at: r["created_at"].isoformat()} for r in rows]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = cursors.encode(L.kind, {"o": owner, "t": _micros(last["created_at"]), "u": str(last["id"])})
    return items, next_cursor


# -- changes ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Party:
    """A user locked for a change: what the rules and the live events need of them."""

    id: uuid.UUID
    username: str
    display_name: str
    private: bool

    def small(self) -> dict[str, Any]:
        return {"id": str(self.id), "username": self.username, "display_name": self.display_name}


async def _lock(conn: Conn, *users: uuid.UUID) -> dict[uuid.UUID, Party]:
    """Lock the rows of ``users`` in id order (no deadlock between two pair locks); the ones that
    exist and are not disabled, by id."""
    rows = await conn.fetch(
        """SELECT id, username, display_name, private, disabled_at FROM users WHERE id = ANY($1::uuid[])
           ORDER BY id FOR NO KEY UPDATE""",
        sorted(set(users)))
    return {r["id"]: Party(r["id"], r["username"], r["display_name"], r["private"])
            for r in rows if r["disabled_at"] is None}


async def _counted(conn: Conn, follower: uuid.UUID, followee: uuid.UUID, delta: int) -> None:
    """A follow ``follower -> followee`` was added (+1) or removed (-1)."""
    await conn.execute(
        """UPDATE users SET following_count = following_count + CASE WHEN id = $1 THEN $3 ELSE 0 END,
                            followers_count = followers_count + CASE WHEN id = $2 THEN $3 ELSE 0 END
           WHERE id = $1 OR id = $2""",
        follower, followee, delta)


async def _add_follow(conn: Conn, follower: uuid.UUID, followee: uuid.UUID) -> bool:
    """Insert the follow (and drop the request it answers); True when it is new."""
    await conn.execute("DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2", follower, followee)
    added = await conn.fetchval(
        """INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1""",
        follower, followee)
    if added:
        await _counted(conn, follower, followee, 1)
    return bool(added)


async def _blocks_between(conn: Conn, viewer: uuid.UUID, other: uuid.UUID) -> tuple[bool, bool]:
    """(``viewer`` blocks ``other``, ``other`` blocks ``viewer``)."""
    row = await conn.fetchrow(
        """SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2) AS blocking,
                  EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $2 AND blocked_id = $1) AS blocked_by""",
        viewer, other)
    assert row is not None
    return bool(row["blocking"]), bool(row["blocked_by"])


class Graph:
    """Changes of the graph and the facts the endpoints need; ``events`` carries the live side."""

    def __init__(self, db: asyncpg.Pool, profiles: Profiles, events: FeedEvents,
                 after_block: Sequence[BlockHook] = ()) -> None:
        self.db = db
        self.profiles = profiles
        self.events = events
        #: Called with (blocker, blocked) once a block committed: other areas end what a block ends
        #: there (a direct room, ...). A hook that fails is logged; the block stands.
        self.after_block = tuple(after_block)

    async def _transaction(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                async with self.db.acquire() as conn, conn.transaction():
                    return await work(conn)
            except asyncpg.DeadlockDetectedError:
                if attempt == _DEADLOCK_RETRIES - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    # -- facts -----------------------------------------------------------------------------------------

    async def blocks_between(self, viewer: str, other: str) -> tuple[bool, bool]:
        """(``viewer`` blocks ``other``, ``other`` blocks ``viewer``)."""
        if viewer == other:
            return False, False
        async with self.db.acquire() as conn:
            return await _blocks_between(conn, uuid.UUID(viewer), uuid.UUID(other))

    async def follows(self, follower: str, followee: str) -> bool:
        found = await self.db.fetchval("SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2",
                                       uuid.UUID(follower), uuid.UUID(followee))
        return found is not None

    async def relationship(self, viewer: str, other: str) -> dict[str, bool]:
        """What ties ``viewer`` to ``other``: follows both ways, requests both ways, blocks both ways."""
        row = await self.db.fetchrow(
            """SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2) AS following,
                      EXISTS (SELECT 1 FROM follows WHERE follower_id = $2 AND followee_id = $1) AS followed_by,
                      EXISTS (SELECT 1 FROM follow_requests WHERE requester_id = $1 AND target_id = $2) AS requested,
                      EXISTS (SELECT 1 FROM follow_requests WHERE requester_id = $2 AND target_id = $1)
                          AS requested_by,
                      EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2) AS blocked,
                      EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $2 AND blocked_id = $1) AS blocked_by""",
            uuid.UUID(viewer), uuid.UUID(other))
        assert row is not None
        return {k: bool(v) for k, v in row.items()}

    # -- follows ---------------------------------------------------------------------------------------

    async def follow(self, viewer: str, target: str) -> str:
        """Follow ``target`` (or ask to): ``following`` or ``requested``. Idempotent."""
        if viewer == target:
            raise cannot_follow_self()
        me, them = uuid.UUID(viewer), uuid.UUID(target)

        async def work(conn: Conn) -> tuple[str, str | None, Party]:
            parties = await _lock(conn, me, them)
            if them not in parties or me not in parties:
                raise not_found("no such user")
            blocks, blocked_by = await _blocks_between(conn, me, them)
            if blocked_by:
                raise not_found("no such user")
            if blocks:
                raise blocking()
            if await conn.fetchval("SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2", me, them):
                return FOLLOWING, None, parties[me]
            if parties[them].private:
                asked = await conn.fetchval(
                    """INSERT INTO follow_requests (requester_id, target_id) VALUES ($1, $2)
                       ON CONFLICT DO NOTHING RETURNING 1""", me, them)
                return REQUESTED, "follow.request" if asked else None, parties[me]
            added = await _add_follow(conn, me, them)
            return FOLLOWING, "follow.new" if added else None, parties[me]

        state, kind, mine = await self._transaction(work)
        if kind == "follow.new":
            await self.profiles.invalidate(viewer, target)
        if kind is not None:
            await self._tell(target, kind, mine)
        return state

    async def unfollow(self, viewer: str, target: str) -> None:
        """Stop following ``target``, or withdraw the request to follow them. Idempotent."""
        if viewer == target:
            raise cannot_follow_self()
        me, them = uuid.UUID(viewer), uuid.UUID(target)

        async def work(conn: Conn) -> tuple[bool, bool]:
            parties = await _lock(conn, me, them)
            if them not in parties or me not in parties:
                raise not_found("no such user")
            if (await _blocks_between(conn, me, them))[1]:
                raise not_found("no such user")
            await conn.execute("DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2", me, them)
            removed = await conn.fetchval(
                "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 RETURNING 1", me, them)
            if removed:
                await _counted(conn, me, them, -1)
            back = await conn.fetchval("SELECT 1 FROM follows WHERE follower_id = $2 AND followee_id = $1", me, them)
            return bool(removed), back is None

        removed, unrelated = await self._transaction(work)
        if removed:
            await self.profiles.invalidate(viewer, target)
            if unrelated:
                await self._unrelated(viewer, target)

    async def answer_request(self, owner: str, requester: str, *, accept: bool) -> None:
        """Accept (the requester now follows ``owner``) or decline a follow request; 404 when there
        is none."""
        me, them = uuid.UUID(owner), uuid.UUID(requester)

        async def work(conn: Conn) -> Party | None:
            parties = await _lock(conn, me, them)
            gone = await conn.fetchval(
                "DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2 RETURNING 1", them, me)
            if not gone or them not in parties or me not in parties:
                raise not_found("no such follow request")
            if accept:
                await _add_follow(conn, them, me)
            return parties[me]

        mine = await self._transaction(work)
        if accept and mine is not None:
            await self.profiles.invalidate(owner, requester)
            await self._tell(requester, "follow.accepted", mine)

    async def set_private(self, user: str, private: bool) -> None:
        """Make the account private or public; going public accepts every waiting request."""
        me = uuid.UUID(user)

        async def work(conn: Conn) -> tuple[Party | None, list[str]]:
            parties = await _lock(conn, me)  # first: no new request can come in meanwhile
            if me not in parties:
                raise not_found("no such user")
            await conn.execute("UPDATE users SET private = $2 WHERE id = $1", me, private)
            if private:
                # Every hub hears it at the commit and ends non-followers' live post subscriptions.
                await conn.execute("SELECT pg_notify($1, 'private:' || $2::text || ':')", GRAPH_CHANNEL, user)
                return None, []
            waiting = await conn.fetch("SELECT requester_id FROM follow_requests WHERE target_id = $1", me)
            requesters = await _lock(conn, *(r["requester_id"] for r in waiting))
            accepted = [str(r) for r in sorted(requesters) if await _add_follow(conn, r, me)]
            await conn.execute("DELETE FROM follow_requests WHERE target_id = $1", me)
            return parties[me], accepted

        mine, accepted = await self._transaction(work)
        await self.profiles.invalidate(user, *accepted)
        if mine is not None and accepted:
            await self._tell_many(accepted, "follow.accepted", mine)

    # -- blocks ----------------------------------------------------------------------------------------

    async def block(self, blocker: str, blocked: str) -> None:
        """Block ``blocked``: the follows and requests between the two end (both ways), and so do
        the live subscriptions of each one's online state by the other. Idempotent."""
        if blocker == blocked:
            raise ApiError("cannot_block_self", "you cannot block yourself", 422)
        me, them = uuid.UUID(blocker), uuid.UUID(blocked)

        async def work(conn: Conn) -> bool:
            parties = await _lock(conn, me, them)
            if them not in parties or me not in parties:
                raise not_found("no such user")
            await conn.execute(
                "INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", me, them)
            removed = await conn.fetch(
                """DELETE FROM follows WHERE (follower_id = $1 AND followee_id = $2)
                                          OR (follower_id = $2 AND followee_id = $1)
                   RETURNING follower_id, followee_id""", me, them)
            for row in removed:
                await _counted(conn, row["follower_id"], row["followee_id"], -1)
            await conn.execute(
                """DELETE FROM follow_requests WHERE (requester_id = $1 AND target_id = $2)
                                                  OR (requester_id = $2 AND target_id = $1)""", me, them)
            return bool(removed)

        if await self._transaction(work):
            await self.profiles.invalidate(blocker, blocked)
        await self._unrelated(blocker, blocked)
        for hook in self.after_block:
            try:
                await hook(blocker, blocked)
            except Exception as exc:
                log.warning("graph_block_hook_failed", hook=getattr(hook, "__qualname__", "?"),
                            error=type(exc).__name__)

    async def unblock(self, blocker: str, blocked: str) -> None:
        if blocker == blocked:
            raise ApiError("cannot_block_self", "you cannot block yourself", 422)
        if await self.profiles.get(blocked) is None:
            raise not_found("no such user")
        await self.db.execute("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
                              uuid.UUID(blocker), uuid.UUID(blocked))

    # -- live ------------------------------------------------------------------------------------------

    async def _tell(self, user: str, kind: str, other: Party) -> None:
        await self._tell_many([user], kind, other)

    async def _tell_many(self, users: Sequence[str], kind: str, other: Party) -> None:
        """The change is committed: a live event that fails is logged, never the request's failure."""
        try:
            if len(users) == 1:
                await self.events.feed_update(users[0], kind, {"user": other.small()})
            else:
                await self.events.feed_updates(users, kind, {"user": other.small()})
        except Exception as exc:
            log.warning("graph_event_failed", kind=kind, error=type(exc).__name__)

    async def _unrelated(self, a: str, b: str) -> None:
        """``a`` and ``b`` may no longer see each other online: end such live subscriptions."""
        try:
            await asyncio.gather(self.events.revoke(f"online:{a}", b), self.events.revoke(f"online:{b}", a))
        except Exception as exc:
            log.warning("graph_revoke_failed", error=type(exc).__name__)
