"""The feed benchmark's world: the follow graph has the shape the benchmark claims, and the seeding
writes rows the feed reads as its own (counters, feed order, announced, triggers back on)."""

from __future__ import annotations

import datetime as dt
import inspect
import secrets
import statistics
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from amaro.migrations import migrate
from feed.warming import Warmer, hour_of_week
from loadtests.feed import WARM_LEAD_S, alternate, cache_figures, chore_periods, parse_counters, warming_slot
from loadtests.feedseed import power_law_graph, seed_graph_and_posts
from tests.conftest import ServiceUrls, with_database


def test_the_graph_has_a_star_a_few_celebrities_and_a_long_tail() -> None:
    graph = power_law_graph(10_001, mean_following=40, seed=1)
    pairs = set(graph.edges)
    assert len(pairs) == len(graph.edges), "a pair follows twice"
    assert all(a != b for a, b in graph.edges), "a self-follow"
    followers = graph.followers()
    assert followers[graph.star] == 10_000  # everybody else follows the star
    ordered = sorted(followers, reverse=True)
    assert 3 <= sum(1 for f in ordered[1:] if f > 5000) <= 8  # a few more above the celebrity threshold
    assert statistics.median(followers) < 30  # and most accounts have few followers
    assert 300_000 < len(graph.edges) < 500_000
    following = graph.following()
    assert min(following[1:]) >= 1 and following[graph.star] == 0
    # Zipf: the more popular rank has more followers, give or take the noise of the draw.
    assert followers[1] > followers[2] > followers[5] > followers[50] > followers[500]
    assert power_law_graph(10_001, seed=1).edges == graph.edges  # the same seed, the same world


@pytest_asyncio.fixture(loop_scope="session")
async def scratch_database(service_urls: ServiceUrls) -> AsyncIterator[str]:
    """A migrated database of its own: the seeded star and celebrities must not show up in the
    session's database, which other tests read."""
    name = f"amaro_feedseed_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(service_urls.database_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(service_urls.database_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    try:
        yield url
    finally:
        conn = await asyncpg.connect(service_urls.database_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def test_seeding_writes_rows_the_feed_reads_as_its_own(scratch_database: str) -> None:
    graph = power_law_graph(300, mean_following=20, seed=3)
    ids = [str(uuid.uuid4()) for _ in range(graph.users)]
    conn = await asyncpg.connect(scratch_database)
    try:
        await conn.copy_records_to_table("users", records=[(uuid.UUID(u), f"seed_{u[:18]}", "x", "!") for u in ids],
                                         columns=["id", "username", "display_name", "password_hash"])
        seeded = await seed_graph_and_posts(scratch_database, ids, graph, 2000, seed=3)
        counts = {str(r["id"]): r for r in await conn.fetch(
            "SELECT id, followers_count, following_count, posts_count FROM users")}
        followers, following = graph.followers(), graph.following()
        posts_by = Counter(seeded.authors)
        for n, user in enumerate(ids):
            assert (counts[user]["followers_count"], counts[user]["following_count"], counts[user]["posts_count"]) \
                == (followers[n], following[n], posts_by[n])
        assert await conn.fetchval("SELECT count(*) FROM follows") == len(graph.edges)
        # Published, in feed order 1..N, announced: nothing left for the announcer's sweep.
        row = await conn.fetchrow(
            """SELECT count(*) AS n, min(feed_seq) AS lo, max(feed_seq) AS hi, count(DISTINCT feed_seq) AS distinct_seq,
                      count(*) FILTER (WHERE state <> 'published' OR announced_at IS NULL OR published_at IS NULL)
                        AS unfinished
               FROM posts""")
        assert row is not None
        assert (row["n"], row["lo"], row["hi"], row["distinct_seq"], row["unfinished"]) == (2000, 1, 2000, 2000, 0)
        assert await conn.fetchval("SELECT nextval('post_feed_seq')") == 2001  # the next post sorts above them
        visibility = Counter(r["visibility"] for r in await conn.fetch("SELECT visibility FROM posts"))
        assert set(visibility) == {"public", "followers", "private"} and visibility["public"] > 1500
        # The triggers switched off for the COPY are on again.
        enabled = {r["tgname"]: r["tgenabled"] for r in await conn.fetch(
            """SELECT tgname, tgenabled::text AS tgenabled FROM pg_trigger
               WHERE tgname IN ('follows_changed', 'posts_count')""")}
        assert enabled == {"follows_changed": "O", "posts_count": "O"}
    finally:
        await conn.close()


def test_cache_figures_count_a_hit_in_either_tier() -> None:
    text = "\n".join([
        "# HELP amaro_feed_cache_requests_total Cache lookups",
        'amaro_feed_cache_requests_total{cache="posts",result="hit",tier="local"} 90.0',
        'amaro_feed_cache_requests_total{cache="posts",result="hit",tier="redis"} 8.0',
        'amaro_feed_cache_requests_total{cache="posts",result="miss",tier="redis"} 2.0',
        'amaro_feed_cache_requests_created{cache="posts",result="hit",tier="local"} 1.7e9',
        'amaro_feed_cache_loads_total{cache="posts"} 2.0',
        'amaro_feed_timeline_rebuilds_total{timeline="home"} 3.0',
    ])
    counters = parse_counters(text, ["amaro_feed_cache_requests_total", "amaro_feed_cache_loads_total",
                                     "amaro_feed_timeline_rebuilds_total"])
    figures = cache_figures(counters)
    assert figures["hit_ratio"] == 0.98 and figures["loads"] == 2
    assert figures["caches"]["posts"] == {"lookups": 100, "local_hits": 90, "redis_hits": 8, "misses": 2,
                                          "loads": 2, "hit_ratio": 0.98}
    assert figures["rebuilds"] == {"home": 3}


def test_windows_hold_whole_periods_of_the_hubs_chores() -> None:
    assert chore_periods(31.0) == 35.0 and chore_periods(35.0) == 35.0 and chore_periods(0.1) == 5.0


def test_the_warming_slot_is_the_one_the_hubs_rounds_look_at() -> None:
    assert inspect.signature(Warmer).parameters["lead_s"].default == WARM_LEAD_S
    monday = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    # Mid-window: seeded now, for the hour of now + 10 min.
    assert warming_slot(monday.replace(hour=10, minute=25), 45.0) == (10, 0.0)
    assert warming_slot(monday.replace(hour=10, minute=45), 45.0) == (10, 0.0)
    assert warming_slot(monday.replace(hour=10, minute=50), 45.0) == (11, 0.0)  # 11:00 is 10 min away
    # Near the end of a window: wait for the next one (a new window is a new lock; at :50 a new slot).
    how, wait = warming_slot(monday.replace(hour=10, minute=49, second=30), 45.0)
    assert (how, wait) == (11, 31.0)
    how, wait = warming_slot(monday.replace(hour=10, minute=39, second=50), 45.0)
    assert (how, wait) == (10, 11.0)
    # Sunday 23:55: the slot after it is Monday 00:00-01:00.
    assert warming_slot(monday.replace(day=13, hour=23, minute=55), 45.0) == (0, 0.0)
    for second in range(0, 3600, 7):
        now = monday.replace(hour=10) + dt.timedelta(seconds=second)
        how, wait = warming_slot(now, 45.0)
        later = now + dt.timedelta(seconds=wait)
        assert wait == 0.0 or wait <= 46.0
        # The slot holds from the seeding to at least 45 s after it, where the hubs look.
        for after in (0.0, 5.0, 44.0):
            assert hour_of_week(later + dt.timedelta(seconds=after + WARM_LEAD_S)) == how


def test_the_two_groups_read_in_alternating_windows() -> None:
    windows = alternate(list(range(8)), list(range(100, 108)), 4)
    assert [group for group, _ in windows] == [0, 1, 1, 0, 0, 1, 1, 0]
    assert sorted(u for group, users in windows if group == 0 for u in users) == list(range(8))
    assert sorted(u for group, users in windows if group == 1 for u in users) == list(range(100, 108))
    assert [group for group, _ in alternate([1], [2], 4)] == [0, 1]
