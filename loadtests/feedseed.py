"""The feed benchmark's world: a power-law follow graph and a history of posts, written straight
into PostgreSQL with ``COPY`` (feed/sql/0001-0005: ``follows``, ``posts`` and the counters on
``users``), as if the platform had been running for a month.

The graph (``power_law_graph``). User 0 is the *star*: every other user follows it. Every other
user follows ``k`` further accounts, ``k`` drawn from a Pareto law (exponent 1.5, mean about
``mean_following``, at most ``max_following``), each account drawn with a Zipf weight
``1 / rank ** alpha`` (user 1 is the most followed after the star, user 2 the next, ...). With
10,001 users, a mean of 40 and ``alpha`` 1 that gives the star 10,000 followers, four more
accounts above 5,000, a median of about a dozen followers and about 390,000 follows.

The posts (``seed_posts``). Authors are drawn with a weight ``sqrt(followers + 1)`` (popular
accounts post more), visibility is public for 85 %, followers-only for 12 %, private for 3 %;
every post is a published text post, spread over the last 30 days, numbered by ``feed_seq`` in
that order and marked announced (the announcer's sweep leaves them alone). The database's own
triggers (``posts_count``, ``follows_changed``: a ``NOTIFY`` per follow, which every hub would
act on) are switched off for the ``COPY`` in the seeding transaction, and the counters they keep
(``followers_count``, ``following_count``, ``posts_count``) are set from the rows at the end.

Redis is left alone: timelines and caches are empty, the cold case (timelines.py rebuilds a
timeline from PostgreSQL on its first read).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

VISIBILITY_WEIGHTS = (("public", 0.85), ("followers", 0.12), ("private", 0.03))
HISTORY = dt.timedelta(days=30)
_FILLER = ("Amaro Than seeded post: latcho drom, a good road to everyone who reads this timeline today. "
           "Music tonight at the community hall, bring the little ones.")


@dataclass(frozen=True)
class FollowGraph:
    """``edges`` are (follower, followee) user indices; user ``star`` is followed by everyone else."""

    users: int
    star: int
    edges: list[tuple[int, int]]

    def followers(self) -> list[int]:
        counts = [0] * self.users
        for _, followee in self.edges:
            counts[followee] += 1
        return counts

    def following(self) -> list[int]:
        counts = [0] * self.users
        for follower, _ in self.edges:
            counts[follower] += 1
        return counts

    def followers_of(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(self.users)]
        for follower, followee in self.edges:
            out[followee].append(follower)
        return out


def power_law_graph(users: int, *, mean_following: float = 40.0, alpha: float = 1.0, max_following: int = 1000,
                    seed: int = 1) -> FollowGraph:
    """A follow graph of ``users`` users (module docstring): no self-follow, no pair twice."""
    if users < 3:
        raise ValueError("a follow graph needs at least 3 users")
    rng = random.Random(seed)
    others = range(1, users)
    cumulative = list(itertools.accumulate(1.0 / rank**alpha for rank in range(1, users)))
    scale = mean_following / 3  # a Pareto law of exponent 1.5 has mean 3 x its minimum
    edges: list[tuple[int, int]] = []
    for user in range(1, users):
        want = min(max_following, users - 2, int(scale * (1.0 - rng.random()) ** (-1 / 1.5)))
        chosen: dict[int, None] = {}
        for _ in range(20):  # popular accounts are drawn again and again: draw until ``want`` differ
            need = want - len(chosen)
            if need <= 0:
                break
            for followee in rng.choices(others, cum_weights=cumulative, k=need + need // 4 + 1):
                if followee != user:
                    chosen[followee] = None
        edges.extend((user, followee) for followee in itertools.islice(chosen, want))
        edges.append((user, 0))
    return FollowGraph(users=users, star=0, edges=edges)


@dataclass(frozen=True)
class SeededPosts:
    count: int
    authors: list[int]  # the author (user index) of each post, in feed_seq order (feed_seq = index + 1)


async def seed_graph_and_posts(database_url: str, user_ids: Sequence[str], graph: FollowGraph, posts: int, *,
                               seed: int = 1) -> SeededPosts:
    """``COPY`` the follows of ``graph`` (indices into ``user_ids``, users that exist already) and
    ``posts`` published text posts; set the counters; ``ANALYZE`` the tables."""
    if len(user_ids) != graph.users:
        raise ValueError("one user id per user of the graph")
    rng = random.Random(seed + 1)
    ids = [uuid.UUID(u) for u in user_ids]
    now = dt.datetime.now(dt.UTC)
    start = now - HISTORY
    follow_rows = [(ids[a], ids[b], start + HISTORY * rng.random()) for a, b in graph.edges]
    followers = graph.followers()
    authors = rng.choices(range(graph.users), weights=[(f + 1) ** 0.5 for f in followers], k=posts)
    visibilities = rng.choices([name for name, _ in VISIBILITY_WEIGHTS],
                               weights=[weight for _, weight in VISIBILITY_WEIGHTS], k=posts)
    step = HISTORY / max(1, posts)
    post_rows = []
    for n, (author, visibility) in enumerate(zip(authors, visibilities, strict=True)):
        at = start + step * n
        post_rows.append((uuid.UUID(int=rng.getrandbits(128), version=4), ids[author], "text", "published",
                          visibility, f"#{n + 1} {_FILLER}", at, at, at, at, n + 1))
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE follows DISABLE TRIGGER follows_changed")
            await conn.execute("ALTER TABLE posts DISABLE TRIGGER posts_count")
            await conn.copy_records_to_table("follows", records=follow_rows,
                                             columns=["follower_id", "followee_id", "created_at"])
            await conn.copy_records_to_table(
                "posts", records=post_rows,
                columns=["id", "author_id", "kind", "state", "visibility", "body", "created_at", "updated_at",
                         "published_at", "announced_at", "feed_seq"])
            await conn.execute("ALTER TABLE follows ENABLE TRIGGER follows_changed")
            await conn.execute("ALTER TABLE posts ENABLE TRIGGER posts_count")
            await conn.execute(
                """UPDATE users u SET followers_count = coalesce(f.n, 0), following_count = coalesce(g.n, 0),
                                      posts_count = coalesce(p.n, 0)
                   FROM users x
                   LEFT JOIN (SELECT followee_id AS id, count(*) AS n FROM follows GROUP BY 1) f ON f.id = x.id
                   LEFT JOIN (SELECT follower_id AS id, count(*) AS n FROM follows GROUP BY 1) g ON g.id = x.id
                   LEFT JOIN (SELECT author_id AS id, count(*) AS n FROM posts WHERE state = 'published'
                              GROUP BY 1) p ON p.id = x.id
                   WHERE u.id = x.id""")
            if posts:
                await conn.execute("SELECT setval('post_feed_seq', $1)", posts)
        await conn.execute("ANALYZE users, follows, posts")
    finally:
        await conn.close()
    return SeededPosts(count=posts, authors=authors)
