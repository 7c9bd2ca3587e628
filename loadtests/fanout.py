"""``python -m loadtests fanout --json FILE``: cross-node fan-out of the realtime hub.

Starts its own cluster (2+ hub processes on one Redis and PostgreSQL), then:

1. **Fan-out.** Opens ``--subscribers`` authenticated sockets spread over the hubs, in private
   rooms (2 members, one on each of two hubs, so every delivery crosses nodes) and shared rooms
   (``--room-size`` members spread over every hub). Members send chat messages at ``--rate`` per
   second in total for ``--warmup`` then ``--seconds`` seconds; every member's socket records what
   it receives. Prints deliveries per second, end-to-end latency p50/p99/p999 (send to receipt, same
   clock) of the messages sent after the warm-up (the warm-up's apart), hub CPU microseconds per
   delivered frame, lost and duplicated events (before client dedupe, every message), and when
   the deliveries over 20 ms arrived, per second.
2. **Idle sockets.** Opens ``--idle`` more authenticated sockets to one hub and reports its
   resident memory growth per idle connection.

The load generator must not be what is measured. It runs in ``--procs`` processes (2 by default:
the box has 2 cores), each owning whole rooms (every member's socket, its sends and its receipts),
so each process's tally is exact by itself and the totals are sums. Sockets are the SDK's lean
``Wire`` carrying msgpack maps (``loadtests/sockets.py``: no per-message task or queue) on uvloop.
The report includes the generator's own CPU and the hubs' CPU while idle
(all sockets open and subscribed, nothing sent), so the per-delivery figure can be read with and
without the fixed costs (heartbeats, presence refresh).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import random
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import psutil

from feed.rooms import create_room
from loadtests.cluster import Cluster, Hub, SeededUser, cpu_seconds, node_env, percentile, quantiles
from loadtests.report import emit
from loadtests.sockets import Frame, Socket, settle


@dataclass
class Member:
    user: SeededUser
    hub: Hub
    socket: Socket | None = None


#: Deliveries slower than this are kept with the time they arrived, so a report can say when.
SLOW_MS = 20.0


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    slow: list[tuple[float, int]] = field(default_factory=list)  # (ms, received at, ns): over SLOW_MS
    received: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # mid -> users
    duplicates: int = 0
    frames: int = 0
    errors: list[str] = field(default_factory=list)


async def connect(member: Member, tally: Callable[[], Tally] | None, *, open_timeout: float = 30.0) -> None:
    """Open ``member``'s socket; chat deliveries are recorded into ``tally()`` (a caller may swap
    tallies between phases), or dropped without one."""
    member.socket = await Socket.open(member.hub.ws_url, member.user.token, timeout_s=open_timeout)
    if tally is not None:
        record_into(member, tally)


def record_into(member: Member, current: Callable[[], Tally]) -> None:
    """Record the chat deliveries and errors ``member``'s socket receives into ``current()``."""
    assert member.socket is not None
    uid = member.user.id

    def record(frame: Frame, now_ns: int) -> None:
        tally = current()
        kind = frame.get("t")
        if kind == "chat.msg":
            tally.frames += 1
            seen = tally.received[frame["mid"]]
            if uid in seen:
                tally.duplicates += 1
                return
            seen.add(uid)
            sent_ns = int(frame["body"].split(":", 1)[0])
            latency_ms = (now_ns - sent_ns) / 1e6
            tally.latencies_ms.append(latency_ms)
            if latency_ms > SLOW_MS:
                tally.slow.append((latency_ms, now_ns))
        elif kind == "error":
            tally.errors.append(f"{frame.get('code')}: {frame.get('message')}")

    member.socket.on_frame = record


async def request(member: Member, frame: Frame, wait_s: float = 30.0) -> Frame:
    assert member.socket is not None
    return await member.socket.ask(frame, wait_s)


async def bounded_gather(coros: list[Any], limit: int) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(coro: Any) -> None:
        async with gate:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


# -- the fan-out clients (run in worker processes) -----------------------------------------------------


@dataclass
class GenTally:
    """What one worker process saw. Every member of a room lives in the same process, so
    ``expected`` (from the acks) and ``received`` (from the sockets) describe the same messages."""

    latencies_ms: list[float] = field(default_factory=list)  # of messages sent after the warm-up
    warmup_latencies_ms: list[float] = field(default_factory=list)
    measure_from_ns: int = 0  # wall clock: messages sent before this are the warm-up's
    slow_at: list[float] = field(default_factory=list)  # wall-clock arrival of each delivery over SLOW_MS
    expected: dict[str, int] = field(default_factory=dict)  # mid -> members that must receive it
    received: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # mid -> distinct receivers
    duplicates: int = 0
    frames: int = 0
    acks_failed: int = 0
    errors: list[str] = field(default_factory=list)


def generator_tally(tally: GenTally) -> Callable[[Frame, int], None]:
    """What one generator socket does with each frame that is not an answer: tally chat
    deliveries (exact per process: a room's every member lives in the same one) and errors. One
    per socket: a message it sees twice is a duplicate."""
    seen: set[str] = set()

    def on_frame(frame: Frame, now_ns: int) -> None:
        kind = frame.get("t")
        if kind == "chat.msg":
            tally.frames += 1
            mid = frame["mid"]
            if mid in seen:
                tally.duplicates += 1
                return
            seen.add(mid)
            tally.received[mid] += 1
            sent_ns = int(frame["body"].split(":", 1)[0])
            latency_ms = (now_ns - sent_ns) / 1e6
            (tally.latencies_ms if sent_ns >= tally.measure_from_ns else tally.warmup_latencies_ms).append(latency_ms)
            if latency_ms > SLOW_MS:
                tally.slow_at.append(now_ns / 1e9)
        elif kind == "error":
            tally.errors.append(f"{frame.get('code')}: {frame.get('message')}")

    return on_frame


@dataclass
class RoomSpec:
    room_id: str
    members: list[tuple[str, str, str]]  # (user id, token, hub ws url)


@dataclass
class WorkerSpec:
    rooms: list[RoomSpec]
    rate: float
    seconds: float  # measured, after ``warmup`` seconds of the same traffic
    warmup: float
    shared_share: float  # fraction of sends that go to shared rooms (when both kinds exist)
    seed: int


async def _open(spec: WorkerSpec, tally: GenTally) -> list[tuple[RoomSpec, list[Socket]]]:
    loop = asyncio.get_running_loop()
    rooms: list[tuple[RoomSpec, list[Socket]]] = []
    gate = asyncio.Semaphore(100)

    async def open_one(token: str, url: str) -> Socket:
        async with gate:
            for attempt in range(5):
                try:
                    return await Socket.open(url, token, on_frame=generator_tally(tally))
                except (OSError, TimeoutError, ConnectionError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    for room in spec.rooms:
        rooms.append((room, []))
    clients = await asyncio.gather(*(open_one(t, url) for room in spec.rooms for _, t, url in room.members))
    it = iter(clients)
    for room, members in rooms:
        members.extend(next(it) for _ in room.members)
    # Subscribe every member, a few hundred requests in flight at a time.
    waiting: set[asyncio.Future[Frame]] = set()
    for room, members in rooms:
        for client in members:
            future: asyncio.Future[Frame] = loop.create_future()
            client.request({"t": "sub", "ch": f"room:{room.room_id}"}, settle(future))
            waiting.add(future)
            if len(waiting) >= 300:
                _, waiting = await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    answers = [f.result() for f in (await asyncio.wait(waiting, timeout=30))[0]] if waiting else []
    refused = [a for a in answers if a.get("t") != "sub.ok"]
    if refused:
        raise RuntimeError(f"subscribe refused: {refused[:3]}")
    return rooms


async def _publish(spec: WorkerSpec, rooms: list[tuple[RoomSpec, list[Socket]]], tally: GenTally,
                   start_at: float) -> dict[str, Any]:
    rng = random.Random(spec.seed)
    private = [r for r in rooms if len(r[1]) == 2]
    shared = [r for r in rooms if len(r[1]) > 2]
    outstanding = 0

    def on_ack(members: int) -> Any:
        def done(frame: Frame) -> None:
            nonlocal outstanding
            outstanding -= 1
            if frame.get("t") == "chat.ack":
                tally.expected[frame["mid"]] = members
            else:
                tally.acks_failed += 1
                tally.errors.append(str(frame)[:200])
        return done

    await asyncio.sleep(max(0.0, start_at - time.time()))
    tally.measure_from_ns = int((start_at + spec.warmup) * 1e9)
    started = time.monotonic()
    total = int(spec.rate * (spec.warmup + spec.seconds))
    sent = 0
    while sent < total:
        # Every send that is due now goes in this tick; then sleep until the next one is due.
        due = min(total, int((time.monotonic() - started) * spec.rate) + 1)
        while sent < due:
            use_shared = shared and (not private or rng.random() < spec.shared_share)
            room, members = rng.choice(shared if use_shared else private)
            sender = rng.choice(members)
            body = f"{time.time_ns()}:{uuid.uuid4().hex[:8]}"
            sender.request({"t": "chat.send", "room": room.room_id, "cmid": uuid.uuid4().hex, "body": body},
                           on_ack(len(members)))
            outstanding += 1
            sent += 1
        next_due = started + sent / spec.rate
        await asyncio.sleep(max(0.0, next_due - time.monotonic()))
    publish_seconds = time.monotonic() - started
    deadline = time.monotonic() + 60
    while outstanding > 0 and time.monotonic() < deadline:  # noqa: ASYNC110 - polled, no event per ack
        await asyncio.sleep(0.05)
    tally.acks_failed += max(0, outstanding)
    # Let in-flight deliveries land: until every expected delivery arrived, or 10 s.
    settle_deadline = time.monotonic() + 10
    while time.monotonic() < settle_deadline:
        if all(tally.received.get(mid, 0) >= n for mid, n in tally.expected.items()):
            break
        await asyncio.sleep(0.05)
    return {"publish_seconds": publish_seconds, "finished": time.monotonic()}


async def _worker(spec: WorkerSpec, pipe: Connection) -> None:
    tally = GenTally()
    loop = asyncio.get_running_loop()
    try:
        rooms = await _open(spec, tally)
    except Exception as exc:
        pipe.send({"error": f"{type(exc).__name__}: {exc}"})
        return
    pipe.send({"ready": sum(len(m) for _, m in rooms)})
    start_at = float(await loop.run_in_executor(None, pipe.recv))
    timing = await _publish(spec, rooms, tally, start_at)
    delivered = sum(min(tally.received.get(mid, 0), n) for mid, n in tally.expected.items())
    lost = sum(max(0, n - tally.received.get(mid, 0)) for mid, n in tally.expected.items())
    for _, members in rooms:
        for client in members:
            if client.wire is not None:
                client.wire.abort()
    pipe.send({
        "published": len(tally.expected), "acks_failed": tally.acks_failed, "delivered": delivered,
        "lost": lost, "duplicated": tally.duplicates, "latencies_ms": tally.latencies_ms,
        "warmup_latencies_ms": tally.warmup_latencies_ms,
        "slow_at": tally.slow_at, "errors": tally.errors[:5], "publish_seconds": timing["publish_seconds"],
    })


def slow_per_second(arrivals: list[float], start: float, seconds: float) -> dict[str, Any]:
    """Deliveries over ``SLOW_MS`` counted by the second of the run they arrived in (wall clock,
    from ``start``; arrivals after the last second, while the run settles, count in the last)."""
    buckets = [0] * max(1, int(seconds + 0.999))
    for at in arrivals:
        buckets[min(len(buckets) - 1, max(0, int(at - start)))] += 1
    return {"over_ms": SLOW_MS, "count": len(arrivals), "per_second": buckets}


def _worker_entry(spec: WorkerSpec, pipe: Connection) -> None:
    """Entry point of a load-generator process (spawned: no state inherited from the parent)."""
    try:
        import uvloop

        uvloop.run(_worker(spec, pipe))
    except ImportError:
        asyncio.run(_worker(spec, pipe))


async def _recv(pipe: Connection, timeout_s: float) -> Any:
    def wait() -> Any:
        if not pipe.poll(timeout_s):
            raise TimeoutError("load-generator process did not answer")
        return pipe.recv()

    return await asyncio.to_thread(wait)


def _service_cpu(cluster: Cluster) -> dict[str, float]:
    """CPU seconds so far of this cluster's Redis server and of the PostgreSQL backends serving
    its database, by pid (found by the socket path and database name on their command lines)."""
    redis_mark = urlsplit(cluster.redis_url).path or urlsplit(cluster.redis_url).netloc
    db_mark = urlsplit(cluster.database_url).path.strip("/")
    out: dict[str, float] = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or ())
            kind = "redis" if "redis-server" in cmd and redis_mark in cmd else (
                "postgres" if cmd.startswith("postgres:") and db_mark in cmd else "")
            if kind:
                times = proc.cpu_times()
                out[f"{kind}:{proc.pid}"] = times.user + times.system
        except (psutil.Error, TypeError):
            continue
    return out


def _service_delta(before: dict[str, float], after: dict[str, float], kind: str) -> float:
    return sum(v - before.get(k, 0.0) for k, v in after.items() if k.startswith(kind))


async def _hub_metrics(hubs: list[Hub]) -> dict[str, Any]:
    """Means over the run from the hubs' /metrics: chat sends per group commit, and the Redis and
    fan-out times the hubs observed (cumulative since start: setup traffic is included)."""
    sums: dict[str, float] = defaultdict(float)
    wanted = {
        'amaro_hub_batch_items_sum{writer="chat"}': "batch_sum",
        'amaro_hub_batch_items_count{writer="chat"}': "batches",
        'amaro_hub_redis_seconds_sum{op="publish_many"}': "pm_sum",
        'amaro_hub_redis_seconds_count{op="publish_many"}': "pm",
        "amaro_hub_fanout_lag_seconds_sum": "lag_sum", "amaro_hub_fanout_lag_seconds_count": "lag",
    }
    async with httpx.AsyncClient() as http:
        for hub in hubs:
            try:
                text = (await http.get(f"{hub.http_url}/metrics", timeout=5)).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                name, _, value = line.rpartition(" ")
                if name in wanted:
                    sums[wanted[name]] += float(value)

    def mean(total: str, count: str, scale: float = 1.0) -> float | None:
        return round(sums[total] / sums[count] * scale, 2) if sums.get(count) else None

    return {"chat_sends_per_commit": mean("batch_sum", "batches"),
            "publish_many_ms": mean("pm_sum", "pm", 1000), "fanout_lag_ms": mean("lag_sum", "lag", 1000)}


async def fanout_phase(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    hubs = cluster.hubs
    shared_members = round(args.subscribers * (1 - args.private_fraction)) // args.room_size * args.room_size
    private_members = args.subscribers - shared_members
    private_members -= private_members % 2
    users = await cluster.seed_users(private_members + shared_members)
    groups: list[list[tuple[SeededUser, Hub]]] = []
    cursor = 0
    for pair in range(private_members // 2):
        a, b = users[cursor], users[cursor + 1]
        cursor += 2
        groups.append([(a, hubs[pair % len(hubs)]), (b, hubs[(pair + 1) % len(hubs)])])
    while cursor < len(users):
        group = users[cursor:cursor + args.room_size]
        cursor += args.room_size
        groups.append([(u, hubs[i % len(hubs)]) for i, u in enumerate(group)])
    pool = await asyncpg.create_pool(cluster.database_url, min_size=1, max_size=4)
    try:
        specs = [RoomSpec(await create_room(pool, g[0][0].id, [u.id for u, _ in g]),
                          [(u.id, u.token, hub.ws_url) for u, hub in g]) for g in groups]
    finally:
        await pool.close()
    private_rooms = sum(1 for r in specs if len(r.members) == 2)
    shared_rooms = len(specs) - private_rooms

    # Whole rooms per process, dealt round-robin within each kind so every process gets the same mix.
    procs = max(1, args.procs)
    parts: list[list[RoomSpec]] = [[] for _ in range(procs)]
    for kind in (2, 0):
        same = [r for r in specs if (len(r.members) == 2) == (kind == 2)]
        for n, room in enumerate(same):
            parts[n % procs].append(room)
    ctx = multiprocessing.get_context("spawn")
    workers: list[tuple[BaseProcess, Connection]] = []
    for n, part in enumerate(parts):
        ours, theirs = ctx.Pipe()
        spec = WorkerSpec(part, args.rate / procs, args.seconds, args.warmup, 1 - args.private_fraction, seed=n)
        proc = ctx.Process(target=_worker_entry, args=(spec, theirs), name=f"fanout-gen-{n}", daemon=True)
        proc.start()
        workers.append((proc, ours))
    try:
        ready = await asyncio.gather(*(_recv(pipe, 300) for _, pipe in workers))
        failed = [r["error"] for r in ready if "error" in r]
        if failed:
            raise RuntimeError(f"load generator failed to open its sockets: {failed}")
        sockets = sum(int(r["ready"]) for r in ready)
        hub_procs = [h.ps() for h in hubs]
        gen_procs = [psutil.Process(proc.pid) for proc, _ in workers]
        # The hubs' idle cost (heartbeats, presence) with every socket open and subscribed.
        idle_before = cpu_seconds(hub_procs)
        await asyncio.sleep(args.idle_window)
        idle_cpu_per_s = (cpu_seconds(hub_procs) - idle_before) / args.idle_window
        print(f"fanout: publishing at {args.rate}/s for {args.warmup}s + {args.seconds}s from {procs} processes",
              file=sys.stderr, flush=True)
        cpu_before, gen_before = cpu_seconds(hub_procs), cpu_seconds(gen_procs)
        sys_before = sum(p.cpu_times().system for p in hub_procs)
        box_before, services_before = psutil.cpu_times(), _service_cpu(cluster)
        started = time.monotonic()
        start_at = time.time() + 0.2
        for _, pipe in workers:
            pipe.send(start_at)
        results = await asyncio.gather(*(_recv(pipe, args.warmup + args.seconds + 120) for _, pipe in workers))
        elapsed = time.monotonic() - started - 0.2
        cpu_used, gen_used = cpu_seconds(hub_procs) - cpu_before, cpu_seconds(gen_procs) - gen_before
        sys_used = sum(p.cpu_times().system for p in hub_procs) - sys_before
        box_after, services_after = psutil.cpu_times(), _service_cpu(cluster)
        box_busy = ((box_after.user + box_after.system + box_after.nice + box_after.irq + box_after.softirq)
                    - (box_before.user + box_before.system + box_before.nice + box_before.irq + box_before.softirq))
    finally:
        for child, pipe in workers:
            child.join(10)
            if child.is_alive():
                child.kill()
            pipe.close()
    hub_metrics = await _hub_metrics(hubs)
    published = sum(r["published"] for r in results)
    delivered = sum(r["delivered"] for r in results)
    publish_seconds = max(r["publish_seconds"] for r in results)
    lat = sorted(x for r in results for x in r["latencies_ms"])
    warm = sorted(x for r in results for x in r["warmup_latencies_ms"])
    net_cpu = max(0.0, cpu_used - idle_cpu_per_s * elapsed)
    return {
        "hubs": len(hubs),
        "sockets": sockets,
        "generator_processes": procs,
        "private_rooms": private_rooms,
        "shared_rooms": shared_rooms,
        "shared_room_size": args.room_size,
        "target_publish_rate": args.rate,
        "published": published,
        "publish_failed": sum(r["acks_failed"] for r in results),
        "achieved_publish_rate": round(published / publish_seconds, 1) if publish_seconds else 0,
        "delivered": delivered,
        "deliveries_per_second": round(delivered / elapsed, 1) if elapsed else 0,
        # The first seconds of traffic on hubs that were idle (plans, caches and pooled connections
        # warming up) are reported apart: ``latency_ms`` covers the messages sent after them.
        "warmup_seconds": args.warmup,
        "warmup_latency_ms": quantiles(warm),
        "latency_ms": {"p50": round(percentile(lat, 0.5), 2), "p99": round(percentile(lat, 0.99), 2),
                       "p999": round(percentile(lat, 0.999), 2), "max": round(lat[-1], 2) if lat else None},
        "hub_cpu_us_per_delivery": round(cpu_used * 1e6 / delivered, 2) if delivered else None,
        "hub_cpu_us_per_delivery_net_of_idle": round(net_cpu * 1e6 / delivered, 2) if delivered else None,
        "hub_cpu_percent": round(100 * cpu_used / elapsed, 1) if elapsed else None,
        # Kernel time: socket writes, and on loopback the receiving side's TCP work too.
        "hub_cpu_system_share": round(sys_used / cpu_used, 2) if cpu_used else None,
        "hub_idle_cpu_percent": round(100 * idle_cpu_per_s, 1),
        "generator_cpu_percent": round(100 * gen_used / elapsed, 1) if elapsed else None,
        "redis_cpu_percent": round(100 * _service_delta(services_before, services_after, "redis") / elapsed, 1),
        "postgres_backends_cpu_percent": round(
            100 * _service_delta(services_before, services_after, "postgres") / elapsed, 1),
        # Every process on the box (2 cores = 200%), including anything else running on it.
        "box_cpu_percent": round(100 * box_busy / elapsed, 1) if elapsed else None,
        "cores": psutil.cpu_count(),
        "hub_metrics": hub_metrics,
        # When the slow deliveries arrived, per second of the run: a tail that sits in a few
        # seconds is an event (a chore, a stall); one spread over every second is saturation.
        "slow_deliveries": slow_per_second([t for r in results for t in r["slow_at"]], start_at, elapsed),
        "lost": sum(r["lost"] for r in results),
        "duplicated": sum(r["duplicated"] for r in results),
        "errors": [e for r in results for e in r["errors"]][:5],
    }


async def idle_phase(cluster: Cluster, count: int) -> dict[str, Any]:
    hub = cluster.hubs[0]
    users = await cluster.seed_users(count)
    proc = hub.ps()
    await asyncio.sleep(0.5)
    rss_before = proc.memory_info().rss
    members = [Member(u, hub) for u in users]
    failures = 0

    async def open_one(m: Member) -> None:
        nonlocal failures
        try:
            await connect(m, None, open_timeout=60)
        except (OSError, TimeoutError, ConnectionError):
            failures += 1

    started = time.monotonic()
    await bounded_gather([open_one(m) for m in members], 200)
    connect_seconds = time.monotonic() - started
    await asyncio.sleep(2)
    rss_after = proc.memory_info().rss
    opened = count - failures
    for m in members:
        if m.socket is not None:
            with contextlib.suppress(Exception):
                await m.socket.close()
    return {
        "idle_sockets": opened,
        "idle_connect_failures": failures,
        "idle_connect_seconds": round(connect_seconds, 2),
        "hub_rss_before_mb": round(rss_before / 2**20, 1),
        "hub_rss_after_mb": round(rss_after / 2**20, 1),
        "bytes_per_idle_socket": round((rss_after - rss_before) / opened) if opened else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with Cluster(hubs_wanted=args.hubs, extra_env=node_env(args.node_env)) as cluster:
        result: dict[str, Any] = {"benchmark": "fanout", "config": {"node_env": node_env(args.node_env)}}
        result["fanout"] = await fanout_phase(cluster, args)
        if args.idle:
            result["idle"] = await idle_phase(cluster, args.idle)
        return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hubs", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--room-size", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2000.0, help="chat messages published per second in total")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds of sends")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of the same sends before the measured ones; their latencies are reported "
                             "apart (warmup_latency_ms); every message counts for lost and duplicated")
    parser.add_argument("--idle", type=int, default=10000, help="idle sockets for the memory figure (0: skip)")
    parser.add_argument("--private-fraction", type=float, default=0.8,
                        help="share of sockets in 2-member rooms (and of sends going there); 0: broadcast only")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes (whole rooms each)")
    parser.add_argument("--idle-window", type=float, default=2.0,
                        help="seconds of hub CPU measured with every socket open and nothing sent")
    parser.add_argument("--node-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment of every hub, e.g. AMARO_HUB_BATCH_WINDOW_MS=2")


def main(args: argparse.Namespace) -> int:
    result = asyncio.run(run(args))
    emit(result, args.json)
    fan = result["fanout"]
    return 0 if fan["lost"] == 0 and fan["duplicated"] == 0 and fan["published"] > 0 else 1
