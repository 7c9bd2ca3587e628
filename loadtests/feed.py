"""``python -m loadtests feed --json FILE``: home timelines behind their caches, and the live feed.

Starts its own cluster (``--hubs`` hub processes on one Redis and PostgreSQL) and seeds it
straight into PostgreSQL (loadtests/feedseed.py): ``--users`` users plus a *star* account all of
them follow, a power-law follow graph among them (a few accounts above the celebrity threshold,
``AMARO_FEED_CELEBRITY_FOLLOWERS``, whose posts are merged into timelines when read), and
``--posts`` published posts. Redis starts empty. Then, every request over HTTP or the socket:

1. **Cold.** ``--readers`` users read their home timeline (the first page, then the next one with
   its cursor), ``--cold-concurrency`` readers at a time: each timeline is rebuilt from PostgreSQL
   on its first read, and posts, profiles, relations and reaction totals are loaded into the caches.
2. **Idle baseline, then warm.** Nothing for a while, then the same readers read the same pages
   again, open loop at ``--read-rate`` pages per second; then samples of them at each of
   ``--other-rates`` for ``--rate-seconds``. Database work is measured in PostgreSQL itself:
   ``pg_stat_database`` transactions of the cluster's database over the warm window minus those
   of an idle window as long (the hubs' database chores run in both: both windows hold whole
   5 s periods of them, and the 60 s media sweep, with no upload to sweep here, is moved out of
   them), and the scans of each table likewise; one pooled query is calibrated in transactions
   (asyncpg's pool runs a reset after each), which turns transactions into queries. The cache
   hit ratio, the timelines' rebuilds and reads below Redis come from the hubs' ``/metrics``.
3. **Mixed.** ``--sockets`` users open a socket and subscribe ``user:<me>``; for
   ``--mixed-seconds``, readers keep reading at ``--read-rate`` while writers publish text posts at
   ``--write-rate`` (authors below the threshold with at least 5 followers: fan-out on write).
   Live push latency is from the moment a writer sends ``POST /api/v1/posts`` to the moment a
   follower's socket receives the ``feed`` frame ``post.created`` for it (one machine, one clock),
   in all and by the author's followers; beside it, the hubs' group commits of durable events.
4. **Big posts.** The star posts once (merged at read), then the most followed account below the
   threshold (pushed into every follower's home). For each, ``--poll-sample`` followers poll their
   first page until it holds the post: the time from the POST to the last of them lies between
   ``to_last_at_least_ms`` (the last read that did not hold it went out) and ``to_last_ms`` (the
   first that did came back). Every connected follower's ``post.created`` is timed too.

5. **Warming** (feed/warming.py), last. A fresh platform has no arrival history, so the phase
   gives it some: ``--warm-users`` users who are neither readers nor socket users of the phases
   above and whose home timeline is not in Redis (no ``tl:home:{id}`` key: checked with ``EXISTS``;
   a post pushed into a home that was never built leaves a key, so such users are passed over) get
   two past arrivals in the hour slot the hubs' next rounds look at (``ZINCRBY warm:{hours}:<slot>
   2``, the slot of now + the Warmer's 10 min lead, as ``Activity`` records arrivals week after
   week), as many others of them (the control group) none. It waits (``--warm-wait``) for a hub's
   round to warm them (``amaro_feed_warmed_total``), then both groups arrive: a socket each (the
   hub counts an arrival), then their first home page over HTTP, ``--cold-concurrency`` at a time,
   in alternating windows (warmed, control, control, warmed, ...) with the hubs' counters read
   between windows, so each group's rebuilds are its own and neither reads first or last more
   often; finally the hubs' arrival flush counts the warmed users who came
   (``amaro_feed_warm_served_total``). The Warmer takes one lock per (hour slot, 10-minute window)
   and warms the slot's users again in each new window, so the history is seeded at least
   ``WARM_WINDOW_MARGIN_S`` before a window ends (waiting for the next one otherwise). It runs last
   because it adds its own load (a round of timeline rebuilds, twice ``--warm-users`` sockets and
   cold reads) that no other phase should measure, and its sockets would otherwise receive the big
   posts' frames; before it the hubs' rounds (every arrival flush, 5 s: ``AMARO_FEED_WARM_INTERVAL``
   is lowered for it) find nobody and cost one Redis read each.

Each phase reports the CPU of the hubs (and per page), of the generator, of PostgreSQL's backends
of this database and of the Redis server; the warm and mixed phases the hubs' event-loop lag.
``targets`` holds the issue's targets, the measured values and whether each was met. The load
generator is two child processes (HTTP readers; sockets) plus this one (writers, scrapes), so no
one event loop both drives the load and times it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import multiprocessing
import os
import random
import re
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson
import psutil
import redis.asyncio as aioredis

from feed.config import FeedSettings
from feed.timelines import BUILT, home_key
from feed.warming import hour_of_week
from loadtests.cluster import Cluster, Hub, SeededUser, cpu_seconds, lag_summary, loop_lag, node_env, percentile
from loadtests.feedseed import FollowGraph, power_law_graph, seed_graph_and_posts
from loadtests.histograms import Buckets, StageMeter
from loadtests.report import emit
from loadtests.sockets import Frame, Socket

#: PostgreSQL 15 flushes a backend's statistics at most once a second while busy, and an idle
#: backend's pending ones after 10 s: a window's transactions are read this long after it ends.
STATS_FLUSH_S = 11.0
CHORE_PERIOD_S = 5.0
DEFAULT_CELEBRITY_FOLLOWERS = FeedSettings().celebrity_followers
DEFAULT_WARM_BUDGET = FeedSettings().warm_budget
WARM_LEAD_S = 600.0  # the Warmer's lead (amaro/node.py keeps it): a round warms the hour slot of now + 10 min
WARM_WINDOW_S = 600  # the Warmer's lock: one round per hour slot and 10-minute window, on one node
WARM_WINDOW_MARGIN_S = 45.0  # the phase's round and arrivals in one window: seeded this long before its end
WARM_STALL_S = 8.0  # warmed count unchanged this long (rounds come every 5 s): the round is over
WARM_FLUSH_WAIT_S = 15.0  # the hubs flush arrivals every 5 s
WARM_READ_WINDOWS = 4  # windows per group of the arrivals' first pages
WARM_SETTLE_S = 1.0  # between the arrivals' sockets and their first pages
HOME = "/api/v1/timelines/home"
TARGETS = {"warm_p99_ms": 10.0, "warm_queries_per_page": 0.0, "warm_cache_hit_ratio": 0.95,
           "star_post_to_last_follower_timeline_ms": 1000.0, "live_push_p99_ms": 100.0}
CACHE_METRICS = ("amaro_feed_cache_requests_total", "amaro_feed_cache_loads_total",
                 "amaro_feed_timeline_pages_total", "amaro_feed_timeline_rebuilds_total",
                 "amaro_feed_timeline_deep_reads_total", "amaro_feed_timeline_pushed_total")
WRITER_METRICS = ("amaro_hub_batch_items_sum", "amaro_hub_batch_items_count", "amaro_hub_commit_seconds_sum",
                  "amaro_hub_commit_seconds_count")
FANOUT_METRICS = ("amaro_feed_fanout_seconds_sum", "amaro_feed_fanout_seconds_count")
WARM_METRICS = ("amaro_feed_warmed_total", "amaro_feed_warmed_entries_total", "amaro_feed_warm_served_total",
                "amaro_feed_warm_skipped_total")


# -- a lean HTTP/1.1 client (the generator must cost less per request than the hubs) ------------------


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpPool:
    """Keep-alive HTTP/1.1 connections to one host; one request per connection at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._free: list[Stream] = []

    async def request(self, method: str, path: str, token: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        data = head.encode() + b"\r\n" + (body or b"")
        while self._free:
            conn = self._free.pop()
            if conn[0].at_eof() or conn[1].is_closing():  # the server closed it while idle (keep-alive timeout)
                conn[1].close()
                continue
            try:
                return await self._exchange(conn, data)
            except (ConnectionError, asyncio.IncompleteReadError):
                continue  # closed under our feet: the request never reached the app, send it again
        return await self._exchange(await asyncio.open_connection(self.host, self.port), data)

    async def _exchange(self, conn: Stream, data: bytes) -> tuple[int, bytes]:
        reader, writer = conn
        try:
            writer.write(data)
            block = await reader.readuntil(b"\r\n\r\n")
            status = int(block[9:12])
            length, keep = 0, True
            for line in block.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    keep = False
                elif name == b"transfer-encoding":
                    raise ConnectionError("chunked answers are not expected here")
            answer = await reader.readexactly(length) if length else b""
        except BaseException:
            writer.close()
            raise
        if keep:
            self._free.append(conn)
        else:
            writer.close()
        return status, answer

    def close(self) -> None:
        for _, writer in self._free:
            writer.close()
        self._free.clear()


def _ms(since_ns: int) -> float:
    return (time.perf_counter_ns() - since_ns) / 1e6


def _summary(values: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}
    return {"count": len(ordered), "p50": round(percentile(ordered, 0.5), 2),
            "p99": round(percentile(ordered, 0.99), 2), "max": round(ordered[-1], 2)}


# -- the readers (a child process) --------------------------------------------------------------------


@dataclass
class ReaderSpec:
    hubs: list[tuple[str, int]]  # (host, HTTP port)
    users: list[tuple[str, str, int]]  # (user id, token, hub index)


@dataclass
class Pages:
    """Pages one command read: (page number, milliseconds) of each 200, and what went wrong."""

    timings: list[tuple[int, float]] = field(default_factory=list)
    empty: int = 0  # 200 with no items on the first page
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[str] = field(default_factory=list)
    late: int = 0  # open loop: visits that started over 50 ms behind their schedule


class Readers:
    def __init__(self, spec: ReaderSpec) -> None:
        self.users = spec.users
        self.pools = [HttpPool(host, port) for host, port in spec.hubs]

    async def page(self, user: int, query: str, out: Pages, number: int) -> dict[str, Any] | None:
        _, token, hub = self.users[user]
        started = time.perf_counter_ns()
        try:
            status, body = await self.pools[hub].request("GET", f"{HOME}?{query}", token)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            out.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return None
        elapsed = _ms(started)
        out.statuses[status] += 1
        if status != 200:
            out.errors.append(f"{status}: {body[:200]!r}")
            return None
        out.timings.append((number, elapsed))
        answer: dict[str, Any] = orjson.loads(body)
        return answer

    async def visit(self, user: int, pages: int, limit: int, out: Pages) -> None:
        """The first page of ``user``'s home timeline, then the next ones with their cursors."""
        query = f"limit={limit}"
        for number in range(1, pages + 1):
            answer = await self.page(user, query, out, number)
            if answer is None:
                return
            if number == 1 and not answer["items"]:
                out.empty += 1
            cursor = answer.get("next_cursor")
            if not cursor:
                return
            query = f"limit={limit}&cursor={cursor}"

    async def closed(self, users: list[int], concurrency: int, pages: int, limit: int) -> Pages:
        out = Pages()
        queue = list(reversed(users))

        async def lane() -> None:
            while queue:
                await self.visit(queue.pop(), pages, limit, out)

        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return out

    async def open(self, users: list[int], rate: float, pages: int, limit: int) -> Pages:
        """One visit per user in ``users``, started at ``rate / pages`` visits per second whatever
        the answers take (open loop)."""
        out = Pages()
        visits_per_s = rate / pages
        tasks: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        for n, user in enumerate(users):
            due = started + n / visits_per_s
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.05:
                out.late += 1
            task = asyncio.create_task(self.visit(user, pages, limit, out))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
        return out

    async def poll(self, users: list[int], needle: str, lanes: int, timeout_s: float) -> dict[str, Any]:
        """Read each user's first page (5 posts) over and over until it holds a post whose body
        contains ``needle``: per user, the wall-clock time (ns) the answer that first held it came
        in, and when the last request that did not hold it went out."""
        seen: dict[int, int] = {}
        missed: dict[int, int] = {}
        polls = 0
        errors: list[str] = []
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()

        async def lane(mine: list[int]) -> None:
            nonlocal polls
            while mine and time.monotonic() < deadline:
                for user in list(mine):
                    _, token, hub = self.users[user]
                    sent = time.time_ns()
                    try:
                        status, body = await self.pools[hub].request("GET", f"{HOME}?limit=5", token)
                    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                        continue
                    polls += 1
                    if status != 200:
                        errors.append(f"{status}: {body[:200]!r}")
                        continue
                    now = time.time_ns()
                    if any(needle in item["body"] for item in orjson.loads(body)["items"]):
                        seen[user] = now
                        mine.remove(user)
                    else:
                        missed[user] = sent

        await asyncio.gather(*(lane(users[i::lanes]) for i in range(lanes)))
        return {"seen": seen, "missed": missed, "polls": polls, "errors": errors[:5],
                "seconds": time.monotonic() - started}


def _pages_result(out: Pages, seconds: float) -> dict[str, Any]:
    return {"timings": out.timings, "empty": out.empty, "statuses": {str(k): v for k, v in out.statuses.items()},
            "errors": out.errors[:5],
            "error_count": len(out.errors), "late": out.late, "seconds": seconds}


async def _reader_main(spec: ReaderSpec, pipe: Connection) -> None:
    readers = Readers(spec)
    loop = asyncio.get_running_loop()
    pipe.send({"ready": True})
    while True:
        command: dict[str, Any] = await loop.run_in_executor(None, pipe.recv)
        op = command["op"]
        started = time.monotonic()
        if op == "stop":
            for pool in readers.pools:
                pool.close()
            return
        if op == "closed":
            out = await readers.closed(command["users"], command["concurrency"], command["pages"], command["limit"])
            pipe.send(_pages_result(out, time.monotonic() - started))
        elif op == "open":
            out = await readers.open(command["users"], command["rate"], command["pages"], command["limit"])
            pipe.send(_pages_result(out, time.monotonic() - started))
        elif op == "poll":
            pipe.send(await readers.poll(command["users"], command["needle"], command["lanes"], command["timeout"]))
        else:
            pipe.send({"error": f"unknown op {op}"})


# -- the live sockets (a child process) ---------------------------------------------------------------


@dataclass
class SocketSpec:
    users: list[tuple[int, str, str, str]]  # (user index, user id, token, hub socket URL)


async def _socket_main(spec: SocketSpec, pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    arrivals: dict[str, list[tuple[int, int]]] = defaultdict(list)  # post id -> (user index, arrival ns)
    kinds: dict[str, int] = defaultdict(int)
    errors: list[str] = []

    def recorder(user: int) -> Any:
        def on_frame(frame: Frame, now_ns: int) -> None:
            kind = frame.get("t")
            if kind == "feed":
                kinds[str(frame.get("kind"))] += 1
                if frame.get("kind") == "post.created":
                    arrivals[str(frame["data"]["post"]["id"])].append((user, now_ns))
            elif kind == "error":
                errors.append(f"{frame.get('code')}: {frame.get('message')}")

        return on_frame

    gate = asyncio.Semaphore(100)
    started = time.monotonic()

    async def open_one(user: int, uid: str, token: str, url: str) -> Socket | None:
        async with gate:
            for attempt in range(5):
                try:
                    sock = await Socket.open(url, token, on_frame=recorder(user))
                    answer = await sock.ask({"t": "sub", "ch": f"user:{uid}"})
                    if answer.get("t") != "sub.ok":
                        errors.append(f"sub refused: {answer}"[:200])
                    return sock
                except (OSError, TimeoutError, ConnectionError) as exc:
                    if attempt == 4:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                        return None
                    await asyncio.sleep(0.2 * (attempt + 1))
        return None

    sockets = await asyncio.gather(*(open_one(*user) for user in spec.users))
    opened = [s for s in sockets if s is not None]
    pipe.send({"ready": len(opened), "failed": len(sockets) - len(opened), "seconds": time.monotonic() - started})
    while True:
        command: dict[str, Any] = await loop.run_in_executor(None, pipe.recv)
        if command["op"] == "open":  # more users arrive (the warming phase)
            started = time.monotonic()
            more = await asyncio.gather(*(open_one(*user) for user in command["users"]))
            fresh = [s for s in more if s is not None]
            opened.extend(fresh)
            pipe.send({"ready": len(fresh), "failed": len(more) - len(fresh), "seconds": time.monotonic() - started,
                       "errors": errors[-5:]})
        elif command["op"] == "collect":
            pipe.send({"arrivals": dict(arrivals), "kinds": dict(kinds), "errors": errors[:5],
                       "open": sum(1 for s in opened if s.is_open)})
            arrivals.clear()
        elif command["op"] == "stop":
            for sock in opened:
                if sock.wire is not None:
                    sock.wire.abort()
            return


def _entry(main: Any, spec: Any, pipe: Connection) -> None:
    """A load-generator process (spawned: nothing inherited from the parent)."""
    try:
        import uvloop

        uvloop.run(main(spec, pipe))
    except ImportError:
        asyncio.run(main(spec, pipe))


def _reader_entry(spec: ReaderSpec, pipe: Connection) -> None:
    _entry(_reader_main, spec, pipe)


def _socket_entry(spec: SocketSpec, pipe: Connection) -> None:
    _entry(_socket_main, spec, pipe)


class Child:
    """A load-generator process and its end of the pipe."""

    def __init__(self, target: Any, spec: Any, name: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, theirs = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(target=target, args=(spec, theirs), name=name, daemon=True)
        self.process.start()

    async def recv(self, timeout_s: float) -> Any:
        def wait() -> Any:
            if not self.pipe.poll(timeout_s):
                raise TimeoutError(f"{self.process.name} did not answer in {timeout_s:.0f} s")
            return self.pipe.recv()

        return await asyncio.to_thread(wait)

    async def ask(self, command: dict[str, Any], timeout_s: float) -> Any:
        self.pipe.send(command)
        return await self.recv(timeout_s)

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.pipe.send({"op": "stop"})
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
        self.pipe.close()


# -- what the hubs and PostgreSQL say -----------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
Counters = dict[tuple[str, str], float]  # (metric name, "label=value,...") -> value


def parse_counters(text: str, names: Sequence[str]) -> Counters:
    """The samples of the counters ``names`` (as exposed: ``..._total``) in a Prometheus page."""
    wanted = set(names)
    out: Counters = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) not in wanted:
            continue
        labels = ",".join(f"{k}={v}" for k, v in sorted(_LABEL.findall(match.group(2) or "")))
        out[(match.group(1), labels)] = float(match.group(3))
    return out


async def scrape(hubs: Sequence[Hub], names: Sequence[str]) -> Counters:
    """The counters ``names`` added up over the hubs."""
    total: Counters = defaultdict(float)
    pools = [HttpPool("127.0.0.1", hub.port) for hub in hubs]
    try:
        for pool in pools:
            status, body = await pool.request("GET", "/metrics", "")
            if status != 200:
                raise RuntimeError(f"/metrics answered {status}")
            for key, value in parse_counters(body.decode(), names).items():
                total[key] += value
    finally:
        for pool in pools:
            pool.close()
    return dict(total)


def delta(before: Counters, after: Counters) -> Counters:
    return {key: value - before.get(key, 0.0) for key, value in after.items() if value - before.get(key, 0.0)}


def cache_figures(d: Counters) -> dict[str, Any]:
    """Hit ratio per cache and overall (a hit in either tier over every lookup), loads from
    PostgreSQL, timeline pages, rebuilds and reads below Redis, from counter deltas."""
    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (name, labels), value in d.items():
        tags = dict(part.split("=", 1) for part in labels.split(",") if part)
        if name == "amaro_feed_cache_requests_total":
            per[tags["cache"]][f"{tags['tier']}_{tags['result']}"] += value
        elif name == "amaro_feed_cache_loads_total":
            per[tags["cache"]]["loads"] += value
    caches: dict[str, Any] = {}
    hits = lookups = 0.0
    for cache, figures in sorted(per.items()):
        hit = figures.get("local_hit", 0.0) + figures.get("redis_hit", 0.0)
        looked = hit + figures.get("redis_miss", 0.0)
        hits, lookups = hits + hit, lookups + looked
        caches[cache] = {"lookups": int(looked), "local_hits": int(figures.get("local_hit", 0.0)),
                         "redis_hits": int(figures.get("redis_hit", 0.0)),
                         "misses": int(figures.get("redis_miss", 0.0)), "loads": int(figures.get("loads", 0.0)),
                         "hit_ratio": round(hit / looked, 4) if looked else None}

    def by_timeline(name: str) -> dict[str, int]:
        return {labels.removeprefix("timeline="): int(v) for (n, labels), v in d.items() if n == name}

    return {"hit_ratio": round(hits / lookups, 4) if lookups else None, "lookups": int(lookups),
            "loads": int(sum(c["loads"] for c in caches.values())), "caches": caches,
            "pages": by_timeline("amaro_feed_timeline_pages_total"),
            "rebuilds": by_timeline("amaro_feed_timeline_rebuilds_total"),
            "deep_reads": by_timeline("amaro_feed_timeline_deep_reads_total"),
            "homes_pushed": int(d.get(("amaro_feed_timeline_pushed_total", ""), 0.0))}


@dataclass
class Snapshot:
    at: float  # monotonic
    transactions: int  # committed and rolled back, of the benchmark's database
    scans: dict[str, int]  # table -> sequential and index scans so far


class LoopLag:
    """Each hub's event-loop lag (``amaro_event_loop_lag_seconds``) over a window."""

    def __init__(self, hubs: Sequence[Hub]) -> None:
        self.hubs = hubs
        self._before: list[Buckets] = []

    async def start(self) -> None:
        self._before = [await loop_lag(h.http_url) for h in self.hubs]

    async def stop(self) -> list[dict[str, Any]]:
        after = [await loop_lag(h.http_url) for h in self.hubs]
        return [lag_summary(b, a) for b, a in zip(self._before, after, strict=True)]


class EventCommits:
    """The hubs' group commits of durable events (feed frames among them) over a window: batches,
    items per batch, and the transactions' durations."""

    def __init__(self, hubs: Sequence[Hub]) -> None:
        self.hubs = hubs
        self.meter = StageMeter([h.http_url for h in hubs], {"commit": ("amaro_hub_commit_seconds", "writer=events")})
        self._before: Counters = {}

    async def start(self) -> None:
        self._before = await scrape(self.hubs, WRITER_METRICS)
        await self.meter.start()

    async def stop(self) -> dict[str, Any]:
        d = delta(self._before, await scrape(self.hubs, WRITER_METRICS))
        stages = await self.meter.stop()

        def of(name: str) -> float:
            return d.get((name, "writer=events"), 0.0)

        batches = of("amaro_hub_batch_items_count")
        return {"batches": int(batches), "items": int(of("amaro_hub_batch_items_sum")),
                "items_per_batch": round(of("amaro_hub_batch_items_sum") / batches, 1) if batches else None,
                "commit_ms_mean": round(1000 * of("amaro_hub_commit_seconds_sum") / batches, 2) if batches else None,
                "commit_ms": stages["commit"]}


class Database:
    """What PostgreSQL counts of the benchmark's database: its transactions (read from another
    database, so these reads are not counted) and the scans of each of its tables (one transaction
    per read, in the benchmark's database)."""

    def __init__(self, admin_url: str, database_url: str) -> None:
        self.admin_url, self.database_url = admin_url, database_url
        self.database = urlsplit(database_url).path.strip("/")
        self.admin: asyncpg.Connection | None = None
        self.own: asyncpg.Connection | None = None

    async def __aenter__(self) -> Database:
        self.admin = await asyncpg.connect(self.admin_url)
        self.own = await asyncpg.connect(self.database_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for conn in (self.admin, self.own):
            if conn is not None:
                await conn.close()

    async def read(self) -> Snapshot:
        assert self.admin is not None and self.own is not None
        rows = await self.own.fetch(
            "SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS n FROM pg_stat_user_tables")
        value = await self.admin.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", self.database)
        return Snapshot(time.monotonic(), int(value or 0), {r["relname"]: int(r["n"]) for r in rows})


def chore_periods(seconds: float) -> float:
    """``seconds`` rounded up to whole periods of the hubs' database chores (the announcer's sweep,
    AMARO_FEED_ANNOUNCE_SWEEP, and its listener's keep-alive: 5 s each), so that two windows as
    long hold as many of them."""
    return CHORE_PERIOD_S * math.ceil(seconds / CHORE_PERIOD_S)


def net_of_idle(start: Snapshot, end: Snapshot, idle_start: Snapshot, idle_end: Snapshot) -> dict[str, Any]:
    """What a window added over what the idle window added in as long a time."""
    scale = (end.at - start.at) / (idle_end.at - idle_start.at)
    transactions = (end.transactions - start.transactions) - scale * (idle_end.transactions - idle_start.transactions)
    tables = {}
    for table, n in end.scans.items():
        net = (n - start.scans.get(table, 0)) - scale * (idle_end.scans.get(table, 0) - idle_start.scans.get(table, 0))
        if abs(net) >= 0.5:
            tables[table] = round(net, 1)
    return {"transactions": round(transactions, 1), "table_scans": dict(sorted(tables.items()))}


async def calibrate(db: Database, queries: int = 200) -> float:
    """Transactions PostgreSQL counts per query of an asyncpg pool (the hubs' kind: the pool resets
    a connection when it goes back), measured on the benchmark's database beside the hubs' chores,
    which an idle window before it subtracts."""
    await asyncio.sleep(STATS_FLUSH_S)
    idle_start = await db.read()
    await asyncio.sleep(3.0)
    idle_end = await db.read()
    pool = await asyncpg.create_pool(db.database_url, min_size=1, max_size=1)
    assert pool is not None
    try:
        for _ in range(queries):
            await pool.fetchval("SELECT 1")
    finally:
        await pool.close()  # a closed backend flushes its statistics
    await asyncio.sleep(2.0)
    end = await db.read()
    return max(1.0, float(round(net_of_idle(idle_end, end, idle_start, idle_end)["transactions"] / queries)))


class CpuMeter:
    """CPU seconds of the hubs, the load generator's children, PostgreSQL's backends of the
    benchmark's database and the Redis server (shared with whatever else uses it) over a window."""

    def __init__(self, cluster: Cluster, generators: Sequence[Child]) -> None:
        self.hubs = [h.ps() for h in cluster.hubs]
        self.generators = [psutil.Process(c.process.pid) for c in generators]
        self.database = urlsplit(cluster.database_url).path.strip("/")
        self.redis_port = str(urlsplit(cluster.redis_url).port or "")
        self._start: dict[str, float] = {}
        self._at = 0.0

    def _services(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for proc in psutil.process_iter(["cmdline"]):
            try:
                cmd = " ".join(proc.info["cmdline"] or ())
                if cmd.startswith("postgres:") and f" {self.database} " in cmd:
                    kind = "postgres"
                elif "redis-server" in cmd and (not self.redis_port or self.redis_port in cmd):
                    kind = "redis"
                else:
                    continue
                times = proc.cpu_times()
                out[kind] += times.user + times.system
            except (psutil.Error, TypeError):
                continue
        return out

    def _read(self) -> dict[str, float]:
        return {"hubs": cpu_seconds(self.hubs), "generator": cpu_seconds(self.generators), **self._services()}

    def start(self) -> None:
        self._start, self._at = self._read(), time.monotonic()

    def stop(self, pages: int) -> dict[str, Any]:
        end, seconds = self._read(), time.monotonic() - self._at
        used = {k: v - self._start.get(k, 0.0) for k, v in end.items()}
        out: dict[str, Any] = {f"{k}_percent": round(100 * v / seconds, 1) for k, v in sorted(used.items())}
        if pages:
            out["hub_cpu_ms_per_page"] = round(1000 * used["hubs"] / pages, 2)
        return out


# -- the run ------------------------------------------------------------------------------------------


@dataclass
class World:
    users: list[SeededUser]
    graph: FollowGraph
    followers_of: list[list[int]]
    followers: list[int]
    threshold: int


def _pick_readers(world: World, count: int, rng: random.Random) -> list[int]:
    candidates = [u for u in range(world.graph.users) if u != world.graph.star]
    return sorted(rng.sample(candidates, min(count, len(candidates))))


async def seed(cluster: Cluster, args: argparse.Namespace, threshold: int) -> tuple[World, dict[str, Any]]:
    started = time.monotonic()
    users = await cluster.seed_users(args.users + 1)  # the star, and the users who all follow it
    graph = power_law_graph(len(users), mean_following=args.mean_following, seed=args.seed)
    await seed_graph_and_posts(cluster.database_url, [u.id for u in users], graph, args.posts, seed=args.seed)
    conn = await asyncpg.connect(cluster.database_url)
    try:
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute("CHECKPOINT")  # written now, not by the checkpointer during a phase
    finally:
        await conn.close()
    await asyncio.to_thread(os.sync)  # and the kernel's dirty pages with it
    followers = graph.followers()
    following = graph.following()
    ordered = sorted(followers, reverse=True)
    figures = {
        "seconds": round(time.monotonic() - started, 1),
        "users": len(users), "follows": len(graph.edges), "posts": args.posts,
        "star_followers": followers[graph.star],
        "top_followers": ordered[:8],
        "accounts_above_celebrity_threshold": sum(1 for f in followers if f > threshold),
        "median_followers": ordered[len(ordered) // 2],
        "mean_following": round(sum(following) / len(following), 1),
        "max_following": max(following),
    }
    world = World(users=users, graph=graph, followers_of=graph.followers_of(), followers=followers,
                  threshold=threshold)
    return world, figures


def _page_figures(result: dict[str, Any]) -> dict[str, Any]:
    timings = result["timings"]
    seconds = result["seconds"]
    return {
        "pages": len(timings), "seconds": round(seconds, 2),
        "pages_per_second": round(len(timings) / seconds, 1) if seconds else None,
        "latency_ms": _summary([ms for _, ms in timings]),
        "first_page_latency_ms": _summary([ms for n, ms in timings if n == 1]),
        "next_page_latency_ms": _summary([ms for n, ms in timings if n > 1]),
        "empty_first_pages": result["empty"], "statuses": result["statuses"],
        "errors": result["errors"], "error_count": result["error_count"], "late_visits": result["late"],
    }


def _per_page(transactions: float, pages: int, per_query: float) -> dict[str, Any]:
    return {"transactions_per_page": round(transactions / pages, 4) if pages else None,
            "queries_per_page": round(transactions / per_query / pages, 4) if pages else None}


async def read_phases(cluster: Cluster, readers: Child, reader_users: list[int], db: Database,
                      args: argparse.Namespace) -> dict[str, Any]:
    hubs = cluster.hubs
    cpu = CpuMeter(cluster, [readers])
    per_query = await calibrate(db)
    out: dict[str, Any] = {"transactions_per_pooled_query": per_query}
    # Cold: every timeline rebuilt from PostgreSQL, every cache empty.
    await asyncio.sleep(STATS_FLUSH_S)
    s0 = await db.read()
    before = await scrape(hubs, CACHE_METRICS)
    print(f"feed: cold pass, {len(reader_users)} readers", file=sys.stderr, flush=True)
    cpu.start()
    cold = await readers.ask({"op": "closed", "users": reader_users, "concurrency": args.cold_concurrency,
                              "pages": args.pages, "limit": args.limit}, 1800)
    cold_cpu = cpu.stop(len(cold["timings"]))
    cold_cache = cache_figures(delta(before, await scrape(hubs, CACHE_METRICS)))
    await asyncio.sleep(STATS_FLUSH_S)
    s1 = await db.read()
    # Idle baseline, as long as the warm window will be (its pages at the rate, and the flush wait).
    window = chore_periods(len(reader_users) * args.pages / args.read_rate + 1.0 + STATS_FLUSH_S)
    print(f"feed: idle baseline {window:.0f} s", file=sys.stderr, flush=True)
    cpu.start()
    await asyncio.sleep(window - (time.monotonic() - s1.at))
    idle_cpu = cpu.stop(0)
    s2 = await db.read()
    print(f"feed: warm pass at {args.read_rate} pages/s", file=sys.stderr, flush=True)
    before = await scrape(hubs, CACHE_METRICS)
    lag = LoopLag(hubs)
    await lag.start()
    cpu.start()
    warm = await readers.ask({"op": "open", "users": reader_users, "rate": args.read_rate, "pages": args.pages,
                              "limit": args.limit}, 1800)
    warm_cpu = cpu.stop(len(warm["timings"]))
    warm_lag = await lag.stop()
    warm_cache = cache_figures(delta(before, await scrape(hubs, CACHE_METRICS)))
    length = max(window, chore_periods(time.monotonic() - s2.at + STATS_FLUSH_S))
    await asyncio.sleep(length - (time.monotonic() - s2.at))
    s3 = await db.read()
    cold_pages, warm_pages = len(cold["timings"]), len(warm["timings"])
    cold_db = net_of_idle(s0, s1, s1, s2)
    warm_db = net_of_idle(s2, s3, s1, s2)
    out["cold"] = {**_page_figures(cold), "concurrency": args.cold_concurrency, "cache": cold_cache, "cpu": cold_cpu,
                   "database": {**cold_db, **_per_page(cold_db["transactions"], cold_pages, per_query)}}
    out["idle_cpu"] = idle_cpu
    out["warm"] = {**_page_figures(warm), "rate": args.read_rate, "cache": warm_cache, "cpu": warm_cpu,
                   "loop_lag": warm_lag,
                   "database": {"transactions_in_window": s3.transactions - s2.transactions,
                                "window_seconds": round(s3.at - s2.at, 1),
                                "idle_baseline_transactions": s2.transactions - s1.transactions,
                                "idle_baseline_seconds": round(s2.at - s1.at, 1), "net": warm_db,
                                **_per_page(warm_db["transactions"], warm_pages, per_query)}}
    # The same warm pages at other rates, on a sample of the readers.
    out["warm_by_rate"] = {}
    for rate in sorted(args.other_rates):
        sample = random.Random(rate).sample(reader_users, min(len(reader_users), int(rate * args.rate_seconds
                                                                                       / args.pages)))
        print(f"feed: warm pages at {rate} pages/s", file=sys.stderr, flush=True)
        cpu.start()
        again = await readers.ask({"op": "open", "users": sample, "rate": rate, "pages": args.pages,
                                   "limit": args.limit}, 600)
        out["warm_by_rate"][f"{rate:g}"] = {"pages": len(again["timings"]),
                                            "latency_ms": _summary([ms for _, ms in again["timings"]]),
                                            "cpu": cpu.stop(len(again["timings"])), "error_count": again["error_count"]}
    return out


@dataclass
class Written:
    post_id: str
    author: int
    sent_ns: int  # wall clock, when the request left
    ms: float


async def write_posts(cluster: Cluster, world: World, authors: list[int], rate: float, seconds: float,
                      tag: str) -> tuple[list[Written], list[str]]:
    """Text posts by random ``authors`` at ``rate`` per second for ``seconds`` (open loop)."""
    rng = random.Random(tag)
    pools = [HttpPool("127.0.0.1", hub.port) for hub in cluster.hubs]
    written: list[Written] = []
    errors: list[str] = []

    async def one(n: int) -> None:
        author = rng.choice(authors)
        body = orjson.dumps({"body": f"{tag} {n} {uuid.uuid4().hex}", "visibility": "public"})
        sent = time.time_ns()
        started = time.perf_counter_ns()
        try:
            status, answer = await pools[n % len(pools)].request("POST", "/api/v1/posts",
                                                                 world.users[author].token, body)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        if status != 201:
            errors.append(f"{status}: {answer[:200]!r}")
            return
        written.append(Written(orjson.loads(answer)["id"], author, sent, _ms(started)))

    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    total = int(rate * seconds)
    for n in range(total):
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    for pool in pools:
        pool.close()
    return written, errors


AUTHOR_SIZES = ((5, 99), (100, 999), (1000, 10**9))


def push_latencies(world: World, written: list[Written], arrivals: dict[str, list[tuple[int, int]]],
                   connected: set[int]) -> dict[str, Any]:
    """Send-to-receipt of ``post.created`` at the connected followers of each post's author, in
    all and by the author's followers."""
    latencies: list[float] = []
    by_size: dict[tuple[int, int], list[float]] = {size: [] for size in AUTHOR_SIZES}
    posts_by_size: dict[tuple[int, int], int] = defaultdict(int)
    expected = lost = duplicated = 0
    for post in written:
        followers = set(world.followers_of[post.author]) & connected
        got: dict[int, int] = {}
        for user, at in arrivals.get(post.post_id, []):
            if user in got:
                duplicated += 1
            elif user in followers:
                got[user] = at
        expected += len(followers)
        lost += len(followers - set(got))
        mine = [(at - post.sent_ns) / 1e6 for at in got.values()]
        latencies.extend(mine)
        size = next(s for s in AUTHOR_SIZES if s[0] <= world.followers[post.author] <= s[1] or s == AUTHOR_SIZES[-1])
        by_size[size].extend(mine)
        posts_by_size[size] += 1
    return {**_summary(latencies), "posts": len(written), "expected": expected, "lost": lost,
            "duplicated": duplicated,
            "by_author_followers": {f"{lo}-{hi}" if hi < 10**9 else f"{lo}+": {"posts": posts_by_size[(lo, hi)],
                                                                               **_summary(by_size[(lo, hi)])}
                                    for lo, hi in AUTHOR_SIZES}}


async def big_post(cluster: Cluster, world: World, readers: Child, sockets: Child | None, author: int,
                   sample: list[int], connected: set[int], args: argparse.Namespace, label: str) -> dict[str, Any]:
    """One post by ``author``: when each sampled follower's first page held it, and when each
    connected follower's socket got ``post.created``."""
    needle = f"{label}-{uuid.uuid4().hex}"
    commits = EventCommits(cluster.hubs)
    await commits.start()
    fanout_before = await scrape(cluster.hubs, FANOUT_METRICS)
    readers.pipe.send({"op": "poll", "users": sample, "needle": needle, "lanes": args.poll_lanes, "timeout": 30.0})
    await asyncio.sleep(0.5)  # the pollers are going
    pool = HttpPool("127.0.0.1", cluster.hubs[0].port)
    sent = time.time_ns()
    started = time.perf_counter_ns()
    status, answer = await pool.request("POST", "/api/v1/posts", world.users[author].token,
                                        orjson.dumps({"body": f"{needle} from a big account", "visibility": "public"}))
    post_ms = _ms(started)
    pool.close()
    if status != 201:
        raise RuntimeError(f"{label} post answered {status}: {answer[:300]!r}")
    post_id = orjson.loads(answer)["id"]
    polled = await readers.recv(60)
    seen_ms = sorted((at - sent) / 1e6 for at in polled["seen"].values())
    everyone = len(seen_ms) == len(sample)
    # The post reached a follower's timeline after that follower's last read without it went out
    # (or the POST left), and before the first read with it came back.
    missed_ms = [max(0.0, (polled["missed"].get(user, sent) - sent) / 1e6) for user in polled["seen"]]
    result: dict[str, Any] = {
        "followers": world.followers[author], "post_latency_ms": round(post_ms, 2),
        "timeline": {"sampled_followers": len(sample), "saw_it": len(seen_ms),
                     "to_last_ms": round(seen_ms[-1], 2) if seen_ms and everyone else None,
                     "to_last_at_least_ms": round(max(missed_ms), 2) if missed_ms and everyone else None,
                     "p50_ms": round(percentile(seen_ms, 0.5), 2) if seen_ms else None,
                     "polls": polled["polls"],
                     "poll_cycle_ms": round(1000 * polled["seconds"] * len(sample) / polled["polls"], 1)
                     if polled["polls"] else None,
                     "errors": polled["errors"]},
    }
    if sockets is not None:
        followers = set(world.followers_of[author]) & connected
        got: dict[int, int] = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            collected = await sockets.ask({"op": "collect"}, 60)
            for user, at in collected["arrivals"].get(post_id, []):
                if user in followers:
                    got.setdefault(user, at)
            if len(got) >= len(followers):
                break
            await asyncio.sleep(0.5)
        pushed = sorted((at - sent) / 1e6 for at in got.values())
        result["push"] = {**_summary(pushed), "connected_followers": len(followers),
                          "received": len(got), "to_last_ms": round(pushed[-1], 2) if pushed else None}
    result["event_commits"] = await commits.stop()
    fanout = delta(fanout_before, await scrape(cluster.hubs, FANOUT_METRICS))
    count = fanout.get(("amaro_feed_fanout_seconds_count", ""), 0.0)
    # The hub's own time to put the post into timelines (its author's, and each follower's home
    # unless the author is above the threshold), inside the POST.
    result["hub_fanout_ms"] = round(1000 * fanout.get(("amaro_feed_fanout_seconds_sum", ""), 0.0) / count, 2) \
        if count else None
    return result


async def mixed_phase(cluster: Cluster, world: World, readers: Child, reader_users: list[int],
                      args: argparse.Namespace, rng: random.Random) -> tuple[dict[str, Any], Child | None, set[int]]:
    hubs = cluster.hubs
    candidates = [u for u in range(world.graph.users) if u != world.graph.star]
    chosen = sorted(rng.sample(candidates, min(args.sockets, len(candidates))))
    spec = SocketSpec([(u, world.users[u].id, world.users[u].token, hubs[u % len(hubs)].ws_url) for u in chosen])
    sockets = Child(_socket_entry, spec, "feed-sockets") if chosen else None
    result: dict[str, Any] = {}
    connected: set[int] = set()
    if sockets is not None:
        print(f"feed: opening {len(chosen)} sockets", file=sys.stderr, flush=True)
        ready = await sockets.recv(600)
        result["sockets"] = {"open": ready["ready"], "failed": ready["failed"],
                             "connect_seconds": round(ready["seconds"], 1)}
        connected = set(chosen)
        await sockets.ask({"op": "collect"}, 60)  # nothing counted before the phase
    writers = [u for u in candidates if 5 <= world.followers[u] <= world.threshold]
    visits = int(args.mixed_seconds * args.read_rate / args.pages)
    users = [rng.choice(reader_users) for _ in range(visits)]
    print(f"feed: mixed {args.mixed_seconds:.0f} s: reads {args.read_rate}/s, posts {args.write_rate}/s",
          file=sys.stderr, flush=True)
    before = await scrape(hubs, CACHE_METRICS)
    cpu = CpuMeter(cluster, [readers, *([sockets] if sockets is not None else [])])
    commits = EventCommits(hubs)
    await commits.start()
    lag = LoopLag(hubs)
    await lag.start()
    cpu.start()
    readers.pipe.send({"op": "open", "users": users, "rate": args.read_rate, "pages": args.pages,
                       "limit": args.limit})
    written, write_errors = await write_posts(cluster, world, writers, args.write_rate, args.mixed_seconds, "mixed")
    reads = await readers.recv(600)
    result["cpu"] = cpu.stop(len(reads["timings"]))
    result["loop_lag"] = await lag.stop()
    await asyncio.sleep(2.0)  # the last posts' feed frames land
    result["event_commits"] = await commits.stop()
    result["reads"] = {**_page_figures(reads), "rate": args.read_rate}
    result["writes"] = {"posts": len(written), "rate": args.write_rate, "errors": write_errors[:5],
                        "error_count": len(write_errors), "authors": len(writers),
                        "post_latency_ms": _summary([w.ms for w in written])}
    result["cache"] = cache_figures(delta(before, await scrape(hubs, CACHE_METRICS)))
    if sockets is not None:
        collected = await sockets.ask({"op": "collect"}, 60)
        result["live_push_ms"] = push_latencies(world, written, collected["arrivals"], connected)
        result["feed_frames"] = collected["kinds"]
        result["socket_errors"] = collected["errors"]
    return result, sockets, connected


_EXPECTED_HOME = """
SELECT p.id::text AS id FROM posts p
WHERE p.state = 'published' AND p.feed_seq IS NOT NULL
  AND (p.author_id = $1
       OR (p.visibility IN ('public', 'followers')
           AND EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $1 AND f.followee_id = p.author_id)))
ORDER BY p.feed_seq DESC LIMIT $2"""


async def verify_pages(cluster: Cluster, world: World, users: list[int], pages: int, limit: int) -> dict[str, Any]:
    """Each user's first ``pages`` home pages over HTTP against the same posts read straight from
    PostgreSQL (the seeded world has no private account and no block: a followed author's public
    and followers-only posts, and one's own). A page may be short (the API passes over posts the
    reader may not see), so the answer must be the newest of the expected posts, in order, with
    nothing missing before its last one."""
    pools = [HttpPool("127.0.0.1", hub.port) for hub in cluster.hubs]
    conn = await asyncpg.connect(cluster.database_url)
    mismatched: list[dict[str, Any]] = []
    checked = short = 0
    try:
        for user in users:
            got: list[str] = []
            query = f"limit={limit}"
            for _ in range(pages):
                status, body = await pools[user % len(pools)].request("GET", f"{HOME}?{query}",
                                                                      world.users[user].token)
                if status != 200:
                    mismatched.append({"user": world.users[user].id, "status": status, "body": body[:200].decode()})
                    break
                answer = orjson.loads(body)
                got.extend(item["id"] for item in answer["items"])
                short += len(answer["items"]) < limit and answer["next_cursor"] is not None
                if not answer["next_cursor"]:
                    break
                query = f"limit={limit}&cursor={answer['next_cursor']}"
            expected = [r["id"] for r in await conn.fetch(_EXPECTED_HOME, uuid.UUID(world.users[user].id),
                                                          pages * limit)]
            checked += 1
            if got != expected[:len(got)] or (expected and not got):
                missing = [i for i in expected[:len(got)] if i not in set(got)]
                mismatched.append({"user": world.users[user].id, "got": len(got), "missing": missing[:3],
                                   "unexpected": [i for i in got if i not in set(expected)][:3]})
    finally:
        await conn.close()
        for pool in pools:
            pool.close()
    return {"users": checked, "pages_per_user": pages, "short_pages": short, "mismatched": len(mismatched),
            "examples": mismatched[:3]}


def warming_env(users: int) -> list[tuple[str, str, str]]:
    """The hubs' warming settings the warming phase needs: (variable, value, why)."""
    return [
        ("AMARO_FEED_WARM_INTERVAL", "2",
         "a warming round at every arrival flush of the node (5 s) rather than every 300 s (the minimum is 1 s): "
         "the warming phase waits seconds for the round after it seeds the history; until then every round "
         "finds nobody and takes no lock"),
        ("AMARO_FEED_WARM_BUDGET", str(max(users, DEFAULT_WARM_BUDGET)),
         "one round may warm every user of the warming phase (--warm-users)"),
        ("AMARO_FEED_WARM_MAX_LOAD", "100",
         "the load average per CPU of this 2-core machine after the seeding and the other phases (two hubs, "
         "PostgreSQL, Redis, the generator) is above the default 0.7: every round would skip as busy"),
    ]


def warming_slot(now: dt.datetime, margin_s: float, lead_s: float = WARM_LEAD_S) -> tuple[int, float]:
    """The hour slot the hubs' warming rounds will look at once the history is seeded (that of
    ``now + lead_s``, as ``Warmer.candidates_hour``), and how long to wait before seeding it: until
    the next 10-minute window starts if the current one ends within ``margin_s``. The slot can only
    change where a window does (an hour holds six of them), and a round in a new window takes a new
    lock and warms the slot's users again."""
    left = WARM_WINDOW_S - now.timestamp() % WARM_WINDOW_S
    wait = left + 1.0 if left < margin_s else 0.0
    return hour_of_week(now + dt.timedelta(seconds=wait + lead_s)), wait


def alternate(first: list[int], second: list[int], windows: int) -> list[tuple[int, list[int]]]:
    """Two groups read in ``windows`` windows each, in the order A B B A A B ...: (group 0 or 1,
    its users of that window). Neither group reads first, or later on average, more often."""
    order: list[tuple[int, list[int]]] = []
    for i in range(windows):
        pair = [(0, first[i::windows]), (1, second[i::windows])]
        order.extend(pair if i % 2 == 0 else pair[::-1])
    return [(group, users) for group, users in order if users]


def _warm_counts(counters: Counters) -> dict[str, int]:
    out = {"warmed": int(counters.get(("amaro_feed_warmed_total", ""), 0.0)),
           "entries": int(counters.get(("amaro_feed_warmed_entries_total", ""), 0.0)),
           "served": int(counters.get(("amaro_feed_warm_served_total", ""), 0.0))}
    for (name, labels), value in sorted(counters.items()):
        if name == "amaro_feed_warm_skipped_total" and value:
            out[f"skipped_{labels.removeprefix('reason=')}"] = int(value)
    return out


async def warming_phase(cluster: Cluster, world: World, readers: Child, sockets: Child | None, excluded: set[int],
                        args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    """Users with an arrival history in the coming hour slot, warmed by the hubs, and as many
    without one: what each group's first page costs when they arrive, and what warming served."""
    hubs = cluster.hubs
    phase_started = time.monotonic()
    at_start = await scrape(hubs, WARM_METRICS)
    out: dict[str, Any] = {}
    client = aioredis.Redis.from_url(cluster.redis_url)
    own_sockets: Child | None = None
    try:
        pool = [u for u in range(world.graph.users) if u != world.graph.star and u not in excluded]
        rng.shuffle(pool)
        async with client.pipeline(transaction=False) as pipe:
            for u in pool:
                pipe.exists(home_key(world.users[u].id))
            present = await pipe.execute()
        cold = [u for u, there in zip(pool, present, strict=True) if not there]
        n = min(args.warm_users, len(cold) // 2)
        warmed, control = cold[:n], cold[n:2 * n]
        following = world.graph.following()
        out["users"] = {"considered": len(pool), "cold": len(cold), "with_a_home_key": len(pool) - len(cold),
                        "warmed_group": n, "control_group": n,
                        "mean_following": {"warmed": round(sum(following[u] for u in warmed) / n, 1) if n else None,
                                           "control": round(sum(following[u] for u in control) / n, 1) if n else None}}
        if not n:
            out["note"] = "no cold user left outside the other phases: nothing to warm"
            return out
        how, wait = warming_slot(dt.datetime.now(dt.UTC), WARM_WINDOW_MARGIN_S)
        if wait:
            print(f"feed: warming waits {wait:.0f} s for the next 10-minute window", file=sys.stderr, flush=True)
            await asyncio.sleep(wait)
        slot = f"warm:{{hours}}:{how}"  # feed.warming's key of the users seen in hour slot ``how``
        candidates_before = int(await client.zcount(slot, 2, "+inf"))
        print(f"feed: warming {n} users (hour slot {how}), {n} in the control group", file=sys.stderr, flush=True)
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
        before = await scrape(hubs, WARM_METRICS + CACHE_METRICS)
        by_hub_before = [await scrape([h], WARM_METRICS) for h in hubs]
        async with client.pipeline(transaction=False) as pipe:
            for u in warmed:  # seen in this hour slot in two earlier weeks
                pipe.zincrby(slot, 2, world.users[u].id)
            await pipe.execute()
        seeded = time.monotonic()
        out["history"] = {"hour_of_week": how, "lead_s": WARM_LEAD_S, "waited_for_window_s": round(wait, 1),
                          "candidates_before": candidates_before,
                          "candidates_after": int(await client.zcount(slot, 2, "+inf")),
                          "load_per_cpu_at_seeding": round(load, 2)}
        # Wait for a round: until the warmed count has grown by n, stopped growing, or the bound.
        first_at: float | None = None
        done_at: float | None = None
        grown, last_change = 0, seeded
        while True:
            now_counts = await scrape(hubs, WARM_METRICS)
            t = time.monotonic()
            now_grown = int(now_counts.get(("amaro_feed_warmed_total", ""), 0.0)
                            - before.get(("amaro_feed_warmed_total", ""), 0.0))
            if now_grown != grown:
                grown, last_change = now_grown, t
                if first_at is None:
                    first_at = t
            if grown >= n:
                done_at = t
                break
            if t - seeded >= args.warm_wait or (grown and t - last_change > WARM_STALL_S):
                break
            await asyncio.sleep(0.5)
        after = await scrape(hubs, WARM_METRICS + CACHE_METRICS)
        by_hub = [_warm_counts(delta(b, await scrape([h], WARM_METRICS)))["warmed"]
                  for h, b in zip(hubs, by_hub_before, strict=True)]
        round_counts = _warm_counts(delta(before, after))
        async with client.pipeline(transaction=False) as pipe:
            for u in warmed:
                pipe.zscore(home_key(world.users[u].id), BUILT)
            for u in control:
                pipe.exists(home_key(world.users[u].id))
            for u in [*warmed, *control]:
                pipe.exists(f"warm:warmed:{{{world.users[u].id}}}")
            checks = await pipe.execute()
        out["warming"] = {
            "warmed": round_counts["warmed"], "entries": round_counts["entries"],
            "by_hub": by_hub, "complete": done_at is not None,
            "first_after_s": round(first_at - seeded, 1) if first_at is not None else None,
            "took_s": round((done_at or last_change) - first_at, 1) if first_at is not None else None,
            "seeded_to_done_s": round(done_at - seeded, 1) if done_at is not None else None,
            "skipped": {k.removeprefix("skipped_"): v for k, v in round_counts.items() if k.startswith("skipped_")},
            "timeline_rebuilds": cache_figures(delta(before, after))["rebuilds"],
            "warmed_homes_built": sum(1 for c in checks[:n] if c is not None),
            "warmed_markers": sum(1 for c in checks[2 * n:3 * n] if c),
            "control_markers": sum(1 for c in checks[3 * n:] if c),
            "control_homes_still_absent": sum(1 for c in checks[n:2 * n] if not c)}
        print(f"feed: warmed {round_counts['warmed']} users; they and the control group arrive",
              file=sys.stderr, flush=True)
        # Arrivals: a socket each (both groups interleaved), then the first home page over HTTP.
        arriving = [u for pair in zip(warmed, control, strict=True) for u in pair]
        if sockets is None:
            own_sockets = sockets = Child(_socket_entry, SocketSpec([]), "feed-arrivals")
            await sockets.recv(120)
        opened = await sockets.ask({"op": "open", "users": [
            (u, world.users[u].id, world.users[u].token, hubs[u % len(hubs)].ws_url) for u in arriving]}, 600)
        sockets_at = time.monotonic()
        out["arrivals"] = {"sockets_opened": opened["ready"], "failed": opened["failed"],
                           "seconds": round(opened["seconds"], 2), "errors": opened["errors"],
                           "settle_s": WARM_SETTLE_S}
        await asyncio.sleep(WARM_SETTLE_S)  # the hubs done with the sockets' hello, sub and presence
        names = ("warmed", "control")
        timings: dict[str, list[float]] = {name: [] for name in names}
        counts: dict[str, Counters] = {name: defaultdict(float) for name in names}
        faults: dict[str, dict[str, int]] = {name: {"errors": 0, "empty": 0} for name in names}
        windows = alternate(warmed, control, WARM_READ_WINDOWS)
        by_window: list[dict[str, Any]] = []
        for group, users in windows:
            name = names[group]
            b = await scrape(hubs, CACHE_METRICS)
            got = await readers.ask({"op": "closed", "users": users, "concurrency": args.cold_concurrency,
                                     "pages": 1, "limit": args.limit}, 600)
            for key, value in delta(b, await scrape(hubs, CACHE_METRICS)).items():
                counts[name][key] += value
            timings[name].extend(ms for _, ms in got["timings"])
            by_window.append({"group": name, **_summary([ms for _, ms in got["timings"]])})
            faults[name]["errors"] += got["error_count"]
            faults[name]["empty"] += got["empty"]
        first_page: dict[str, Any] = {"concurrency": args.cold_concurrency, "limit": args.limit,
                                      "windows": " ".join(names[g][0].upper() for g, _ in windows)}
        for name in names:
            figures = cache_figures(counts[name])
            first_page[name] = {**_summary(timings[name]), "timeline_rebuilds": figures["rebuilds"],
                                "deep_reads": figures["deep_reads"], "cache_loads": figures["loads"],
                                "cache_hit_ratio": figures["hit_ratio"], "empty_first_pages": faults[name]["empty"],
                                "error_count": faults[name]["errors"]}
        first_page["by_window"] = by_window
        out["first_page"] = first_page
        # The hubs flush arrivals every 5 s: a warmed user's first one counts as served.
        while True:
            served = _warm_counts(delta(before, await scrape(hubs, WARM_METRICS)))["served"]
            if served >= n or time.monotonic() - sockets_at > WARM_FLUSH_WAIT_S:
                break
            await asyncio.sleep(0.5)
        async with client.pipeline(transaction=False) as pipe:
            for u in warmed:
                pipe.exists(f"warm:warmed:{{{world.users[u].id}}}")
            left = sum(1 for there in await pipe.execute() if there)
        phase = _warm_counts(delta(at_start, await scrape(hubs, WARM_METRICS)))
        out["served"] = {"served": served, "of_warmed": round_counts["warmed"], "warmed_arrived": n,
                         "after_sockets_s": round(time.monotonic() - sockets_at, 1),
                         "ratio": round(served / round_counts["warmed"], 3) if round_counts["warmed"] else None,
                         "warmed_markers_left": left}
        out["phase"] = {**phase, "seconds": round(time.monotonic() - phase_started, 1)}
        out["run_totals"] = _warm_counts(await scrape(hubs, WARM_METRICS))
        return out
    finally:
        await client.aclose()
        if own_sockets is not None:
            own_sockets.stop()


def _target(value: float | None, target: float, *, above: bool = False, tolerance: float = 0.0) -> dict[str, Any]:
    """``value`` against ``target`` (under it, or over it with ``above``; ``tolerance`` for a target
    of 0 measured by a difference of two counts)."""
    if value is None:
        return {"target": target, "value": None, "met": None}
    met = value > target if above else (value <= target + tolerance if tolerance else value < target)
    return {"target": target, "value": value, "met": met, **({"tolerance": tolerance} if tolerance else {})}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    extra = node_env(args.node_env)
    threshold = args.celebrity_followers
    if threshold != DEFAULT_CELEBRITY_FOLLOWERS:
        extra.setdefault("AMARO_FEED_CELEBRITY_FOLLOWERS", str(threshold))
    threshold = int(extra.get("AMARO_FEED_CELEBRITY_FOLLOWERS", threshold))
    # No upload happens here: the media sweep (every 60 s by default, not a multiple of the windows
    # the idle baseline is subtracted over) runs once as the hubs start instead.
    extra.setdefault("AMARO_MEDIA_CLEANUP_INTERVAL", "3600")
    overrides: dict[str, str] = {}  # variable -> why the benchmark sets it (not given with --node-env)
    if args.warm_users > 0:
        for key, value, why in warming_env(args.warm_users):
            if key not in extra:
                extra[key], overrides[key] = value, why
    async with Cluster(hubs_wanted=args.hubs, extra_env=extra) as cluster:
        result: dict[str, Any] = {"benchmark": "feed", "config": {
            "users": args.users + 1, "posts": args.posts, "mean_following": args.mean_following,
            "hubs": args.hubs, "readers": args.readers, "pages_per_visit": args.pages, "page_limit": args.limit,
            "cold_concurrency": args.cold_concurrency, "read_rate": args.read_rate, "sockets": args.sockets,
            "write_rate": args.write_rate, "mixed_seconds": args.mixed_seconds, "poll_sample": args.poll_sample,
            "other_rates": args.other_rates, "rate_seconds": args.rate_seconds, "poll_lanes": args.poll_lanes,
            "celebrity_followers": threshold, "warm_users": args.warm_users, "warm_wait_s": args.warm_wait,
            "node_env": extra, "node_env_why": overrides, "quick": args.quick}}
        print(f"feed: seeding {args.users + 1} users, {args.posts} posts", file=sys.stderr, flush=True)
        world, result["seed"] = await seed(cluster, args, threshold)
        reader_users = _pick_readers(world, args.readers, rng)
        hubs = cluster.hubs
        reader_spec = ReaderSpec([("127.0.0.1", h.port) for h in hubs],
                                 [(u.id, u.token, i % len(hubs)) for i, u in enumerate(world.users)])
        readers = Child(_reader_entry, reader_spec, "feed-readers")
        sockets: Child | None = None
        try:
            await readers.recv(120)
            admin = getattr(cluster, "_admin_db_url")  # noqa: B009 - the cluster's own admin URL
            async with Database(admin, cluster.database_url) as db:
                result.update(await read_phases(cluster, readers, reader_users, db, args))
            result["mixed"], sockets, connected = await mixed_phase(cluster, world, readers, reader_users, args, rng)
            sample = rng.sample(reader_users, min(args.poll_sample, len(reader_users)))
            star = world.graph.star
            print("feed: the star posts", file=sys.stderr, flush=True)
            result["star_post"] = await big_post(cluster, world, readers, sockets, star, sample, connected, args,
                                                 "star")
            pushed = [u for u in range(world.graph.users) if u != star and world.followers[u] <= threshold]
            big = max(pushed, key=lambda u: world.followers[u])
            readers_set = set(reader_users)
            big_sample = [u for u in rng.sample(world.followers_of[big], len(world.followers_of[big]))
                          if u in readers_set][:args.poll_sample]
            print(f"feed: an account with {world.followers[big]} followers posts", file=sys.stderr, flush=True)
            result["pushed_post"] = await big_post(cluster, world, readers, sockets, big, big_sample, connected,
                                                   args, "pushed")
            print("feed: checking pages against PostgreSQL", file=sys.stderr, flush=True)
            result["pages_checked"] = await verify_pages(cluster, world, rng.sample(reader_users, min(100, len(
                reader_users))), args.pages, args.limit)
            if args.warm_users > 0:
                print("feed: warming", file=sys.stderr, flush=True)
                result["warming"] = await warming_phase(cluster, world, readers, sockets,
                                                        set(reader_users) | connected, args, rng)
        finally:
            if sockets is not None:
                sockets.stop()
            readers.stop()
        result["targets"] = {
            "warm_p99_ms": _target(result["warm"]["latency_ms"].get("p99"), TARGETS["warm_p99_ms"]),
            # The idle window's chores are subtracted: a few transactions either way are noise.
            "warm_queries_per_page": _target(result["warm"]["database"]["queries_per_page"],
                                             TARGETS["warm_queries_per_page"], tolerance=0.005),
            "warm_cache_hit_ratio": _target(result["warm"]["cache"]["hit_ratio"], TARGETS["warm_cache_hit_ratio"],
                                            above=True),
            "star_post_to_last_follower_timeline_ms": _target(result["star_post"]["timeline"]["to_last_ms"],
                                                              TARGETS["star_post_to_last_follower_timeline_ms"]),
            "live_push_p99_ms": _target(result["mixed"].get("live_push_ms", {}).get("p99"),
                                        TARGETS["live_push_p99_ms"]),
        }
        result["cores"] = psutil.cpu_count()
        return result


#: ``--quick``: a small world (flags given on the command line keep their values).
QUICK = {"users": 1000, "posts": 10_000, "readers": 300, "sockets": 200, "mixed_seconds": 6.0, "poll_sample": 20,
         "read_rate": 150.0, "other_rates": [50.0], "rate_seconds": 4.0, "warm_users": 100}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hubs", type=int, default=2)
    parser.add_argument("--users", type=int, default=10_000, help="users besides the star account they all follow")
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--mean-following", type=float, default=40.0,
                        help="mean of the accounts each user follows besides the star (a Pareto law)")
    parser.add_argument("--celebrity-followers", type=int, default=DEFAULT_CELEBRITY_FOLLOWERS,
                        help="the hubs' AMARO_FEED_CELEBRITY_FOLLOWERS (--quick: half the users)")
    parser.add_argument("--readers", type=int, default=2000, help="users whose home timelines are read")
    parser.add_argument("--pages", type=int, default=2, help="pages per visit (the first, then by cursor)")
    parser.add_argument("--limit", type=int, default=20, help="posts per page")
    parser.add_argument("--other-rates", type=lambda v: [float(x) for x in v.split(",") if x], default=[50.0, 100.0],
                        help="warm pages per second of the extra warm passes after the main one (comma-separated)")
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="length of each extra warm pass")
    parser.add_argument("--cold-concurrency", type=int, default=8, help="cold readers at a time (closed loop)")
    parser.add_argument("--read-rate", type=float, default=200.0, help="warm pages per second (open loop)")
    parser.add_argument("--sockets", type=int, default=2000, help="users with a live socket on user:<me>")
    parser.add_argument("--write-rate", type=float, default=10.0, help="posts per second in the mixed phase")
    parser.add_argument("--mixed-seconds", type=float, default=20.0)
    parser.add_argument("--poll-sample", type=int, default=40,
                        help="followers polling their timeline for a big account's post")
    parser.add_argument("--poll-lanes", type=int, default=4,
                        help="polls in flight (each hub busy with them all the time: more would slow the post)")
    parser.add_argument("--warm-users", type=int, default=500,
                        help="users given an arrival history and warmed in the last phase, and as many in its "
                             "control group (0: no warming phase)")
    parser.add_argument("--warm-wait", type=float, default=60.0,
                        help="seconds the warming phase waits at most for the hubs to warm them")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="a small world: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    parser.add_argument("--node-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment of every hub")
    parser.set_defaults(full_defaults={key: parser.get_default(key) for key in QUICK})


def main(args: argparse.Namespace) -> int:
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == args.full_defaults[key]:
                setattr(args, key, value)
        if args.celebrity_followers == DEFAULT_CELEBRITY_FOLLOWERS:
            args.celebrity_followers = args.users // 2
    result = asyncio.run(run(args))
    emit(result, args.json)
    failures = (result["warm"]["error_count"] + result["cold"]["error_count"] + result["mixed"]["reads"]["error_count"]
                + result["mixed"]["writes"]["error_count"])
    return 0 if failures == 0 else 1
