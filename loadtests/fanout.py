"""``python -m loadtests fanout --json FILE``: cross-node fan-out of the realtime hub.

Starts its own cluster (2+ hub processes on one Redis and PostgreSQL), then:

1. **Fan-out.** Opens ``--subscribers`` authenticated sockets spread over the hubs, in private
   rooms (2 members, one on each of two hubs, so every delivery crosses nodes) and shared rooms
   (``--room-size`` members spread over every hub). Members send chat messages at ``--rate`` per
   second in total for ``--seconds``; every member's socket records what it receives. Prints
   deliveries per second, end-to-end latency p50/p99/p999 (send to receipt, same clock), hub CPU
   microseconds per delivered frame, and lost and duplicated events (before client dedupe).
2. **Idle sockets.** Opens ``--idle`` more authenticated sockets to one hub and reports its
   resident memory growth per idle connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgpack
import websockets
from websockets.asyncio.client import ClientConnection

from loadtests.cluster import Cluster, Hub, SeededUser, cpu_seconds, percentile
from loadtests.report import emit
from realtime.channels import create_room


@dataclass
class Member:
    user: SeededUser
    hub: Hub
    ws: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None
    next_id: int = 0
    acks: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    def request_id(self) -> int:
        self.next_id += 1
        return self.next_id


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    received: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # mid -> users
    duplicates: int = 0
    frames: int = 0
    errors: list[str] = field(default_factory=list)


async def connect(member: Member, tally: Tally | None, *, open_timeout: float = 30.0) -> None:
    ws = await websockets.connect(member.hub.ws_url, compression=None, open_timeout=open_timeout,
                                  max_size=1 << 20, ping_interval=None)
    await ws.send(msgpack.packb({"t": "hello", "versions": [1], "token": member.user.token}))
    welcome = msgpack.unpackb(await asyncio.wait_for(ws.recv(decode=False), open_timeout))
    if welcome.get("t") != "welcome":
        raise RuntimeError(f"handshake refused: {welcome}")
    member.ws = ws
    if tally is not None:
        member.reader = asyncio.create_task(read_loop(member, tally))


async def read_loop(member: Member, tally: Tally) -> None:
    assert member.ws is not None
    uid = member.user.id
    with contextlib.suppress(websockets.ConnectionClosed):
        async for data in member.ws:
            now_ns = time.time_ns()
            frame = msgpack.unpackb(data)
            kind = frame.get("t")
            rid = frame.get("id", 0)
            if rid and rid in member.acks:
                future = member.acks.pop(rid)
                if not future.done():
                    future.set_result(frame)
                continue
            if kind == "chat.msg":
                tally.frames += 1
                seen = tally.received[frame["mid"]]
                if uid in seen:
                    tally.duplicates += 1
                    continue
                seen.add(uid)
                sent_ns = int(frame["body"].split(":", 1)[0])
                tally.latencies_ms.append((now_ns - sent_ns) / 1e6)
            elif kind == "error":
                tally.errors.append(f"{frame.get('code')}: {frame.get('message')}")


async def request(member: Member, frame: dict[str, Any], wait_s: float = 30.0) -> dict[str, Any]:
    assert member.ws is not None
    rid = member.request_id()
    frame["id"] = rid
    future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    member.acks[rid] = future
    await member.ws.send(msgpack.packb(frame))
    return await asyncio.wait_for(future, wait_s)


async def bounded_gather(coros: list[Any], limit: int) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(coro: Any) -> None:
        async with gate:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


async def fanout_phase(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    hubs = cluster.hubs
    shared_members = (args.subscribers // 5 // args.room_size) * args.room_size
    private_members = args.subscribers - shared_members
    private_members -= private_members % 2
    users = await cluster.seed_users(private_members + shared_members)
    rooms: list[list[Member]] = []
    room_ids: list[str] = []
    cursor = 0
    for pair in range(private_members // 2):
        a, b = users[cursor], users[cursor + 1]
        cursor += 2
        rooms.append([Member(a, hubs[pair % len(hubs)]), Member(b, hubs[(pair + 1) % len(hubs)])])
    while cursor < len(users):
        group = users[cursor:cursor + args.room_size]
        cursor += args.room_size
        rooms.append([Member(u, hubs[i % len(hubs)]) for i, u in enumerate(group)])
    pool = await asyncpg.create_pool(cluster.database_url, min_size=1, max_size=4)
    try:
        for members in rooms:
            room_ids.append(await create_room(pool, members[0].user.id, [m.user.id for m in members]))
    finally:
        await pool.close()
    tally = Tally()
    everyone = [m for members in rooms for m in members]
    await bounded_gather([connect(m, tally) for m in everyone], 100)
    subs = []
    for room_id, members in zip(room_ids, rooms, strict=True):
        for m in members:
            subs.append(request(m, {"t": "sub", "ch": f"room:{room_id}"}))
    await bounded_gather(subs, 200)

    # Publishers: 80% of sends in private rooms, 20% in shared rooms, at the target total rate.
    private_rooms = [(rid, ms) for rid, ms in zip(room_ids, rooms, strict=True) if len(ms) == 2]
    shared_rooms = [(rid, ms) for rid, ms in zip(room_ids, rooms, strict=True) if len(ms) > 2]
    expected: dict[str, int] = {}
    acks_failed = 0
    send_tasks: set[asyncio.Task[None]] = set()

    async def send_one(room_id: str, members: list[Member]) -> None:
        nonlocal acks_failed
        sender = random.choice(members)
        body = f"{time.time_ns()}:{uuid.uuid4().hex[:8]}"
        try:
            ack = await request(sender, {"t": "chat.send", "room": room_id, "cmid": uuid.uuid4().hex, "body": body})
        except (TimeoutError, websockets.ConnectionClosed):
            acks_failed += 1
            return
        if ack.get("t") != "chat.ack":
            acks_failed += 1
            tally.errors.append(str(ack))
            return
        expected[ack["mid"]] = len(members)

    hub_procs = [h.ps() for h in hubs]
    print(f"fanout: publishing at {args.rate}/s for {args.seconds}s", file=sys.stderr, flush=True)
    cpu_before = cpu_seconds(hub_procs)
    started = time.monotonic()
    total = int(args.rate * args.seconds)
    for n in range(total):
        target = started + n / args.rate
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        use_shared = shared_rooms and (not private_rooms or random.random() < 0.2)
        room_id, members = random.choice(shared_rooms if use_shared else private_rooms)
        task = asyncio.create_task(send_one(room_id, members))
        send_tasks.add(task)
        task.add_done_callback(send_tasks.discard)
    publish_seconds = time.monotonic() - started
    if send_tasks:
        await asyncio.wait(send_tasks, timeout=60)
    # Let in-flight deliveries land: wait until every expected delivery arrived or 10 s passed.
    settle_deadline = time.monotonic() + 10
    while time.monotonic() < settle_deadline:
        if all(len(tally.received.get(mid, ())) >= n for mid, n in expected.items()):
            break
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started
    cpu_used = cpu_seconds(hub_procs) - cpu_before
    delivered = sum(min(len(tally.received.get(mid, ())), n) for mid, n in expected.items())
    lost = sum(max(0, n - len(tally.received.get(mid, ()))) for mid, n in expected.items())
    for m in everyone:
        if m.ws is not None:
            await m.ws.close()
        if m.reader is not None:
            m.reader.cancel()
    lat = sorted(tally.latencies_ms)
    return {
        "hubs": len(hubs),
        "sockets": len(everyone),
        "private_rooms": len(private_rooms),
        "shared_rooms": len(shared_rooms),
        "shared_room_size": args.room_size,
        "target_publish_rate": args.rate,
        "published": len(expected),
        "publish_failed": acks_failed,
        "achieved_publish_rate": round(len(expected) / publish_seconds, 1) if publish_seconds else 0,
        "delivered": delivered,
        "deliveries_per_second": round(delivered / elapsed, 1) if elapsed else 0,
        "latency_ms": {"p50": round(percentile(lat, 0.5), 2), "p99": round(percentile(lat, 0.99), 2),
                       "p999": round(percentile(lat, 0.999), 2), "max": round(lat[-1], 2) if lat else None},
        "hub_cpu_us_per_delivery": round(cpu_used * 1e6 / delivered, 2) if delivered else None,
        "lost": lost,
        "duplicated": tally.duplicates,
        "errors": tally.errors[:5],
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
        except (OSError, TimeoutError, RuntimeError, websockets.WebSocketException):
            failures += 1

    started = time.monotonic()
    await bounded_gather([open_one(m) for m in members], 200)
    connect_seconds = time.monotonic() - started
    await asyncio.sleep(2)
    rss_after = proc.memory_info().rss
    opened = count - failures
    for m in members:
        if m.ws is not None:
            with contextlib.suppress(Exception):
                await m.ws.close()
    return {
        "idle_sockets": opened,
        "idle_connect_failures": failures,
        "idle_connect_seconds": round(connect_seconds, 2),
        "hub_rss_before_mb": round(rss_before / 2**20, 1),
        "hub_rss_after_mb": round(rss_after / 2**20, 1),
        "bytes_per_idle_socket": round((rss_after - rss_before) / opened) if opened else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with Cluster(hubs_wanted=args.hubs) as cluster:
        result: dict[str, Any] = {"benchmark": "fanout"}
        result["fanout"] = await fanout_phase(cluster, args)
        if args.idle:
            result["idle"] = await idle_phase(cluster, args.idle)
        return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hubs", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--room-size", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2000.0, help="chat messages published per second in total")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=10000, help="idle sockets for the memory figure (0: skip)")


def main(args: argparse.Namespace) -> int:
    result = asyncio.run(run(args))
    emit(result, args.json)
    fan = result["fanout"]
    return 0 if fan["lost"] == 0 and fan["duplicated"] == 0 and fan["published"] > 0 else 1
