"""``python -m loadtests uploads --json FILE``: big paced uploads must not slow realtime chat.

Replays the beta crash: a cluster of ``--hubs`` hub processes, then

1. **Baseline.** Socket users in 2-member rooms (one member per hub when there are two) exchange
   chat messages at ``--chat-rate`` per second; after ``--warmup-seconds`` unmeasured, send-to-receipt
   latency is recorded for ``--baseline-seconds``, and again for as long after the uploads (the
   baseline pools both, so a drift of the machine does not pass for an effect of the uploads).
2. **Uploads.** ``--uploads`` tus uploads of ``--size-mb`` each start at once, every client paced to
   ``--mbps`` by a token bucket on the sending side (bytes generated on the fly behind a valid MP4
   ``ftyp`` box, never a whole file in memory; PATCH requests of ``--patch-mb``). The upload clients
   run in a child process so their work does not delay the chat clients' event loop. The same chat
   traffic runs until the last upload ends; every upload is then verified with HEAD (Upload-Offset
   equals Upload-Length).

Prints upload throughput (total and per upload), completion, hub RSS (before, and max sampled during
the run), chat latency p50/p99 without and with the uploads, and the headline ratio
``p99_with / p99_without`` (target under 1.5). Exits 0 when every upload completed and no chat
message was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import psutil

from feed.rooms import create_room
from loadtests.cluster import Cluster, Hub, cpu_seconds, lag_summary, loop_lag, node_env, quantiles
from loadtests.fanout import Member, Tally, bounded_gather, connect, record_into, request
from loadtests.histograms import StageMeter
from loadtests.report import emit

MB = 1_000_000
TUS = {"Tus-Resumable": "1.0.0"}
# A valid ISO base media ``ftyp`` box (major brand isom), so the upload sniffer accepts the bytes.
FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
BLOCK = 64 * 1024


class TokenBucket:
    """Sender-side pacing: ``take(n)`` waits until ``n`` bytes may leave at ``rate`` bytes/s."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    async def take(self, n: int) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= n:
                self.tokens -= n
                return
            await asyncio.sleep((n - self.tokens) / self.rate)


def pseudo_bytes(seed: int) -> bytes:
    """One 1 MiB block of seeded random bytes; uploads stream slices of it, so memory stays flat."""
    return random.Random(seed).randbytes(1 << 20)


async def body(pool: bytes, start: int, end: int, bucket: TokenBucket) -> AsyncIterator[bytes]:
    """Bytes ``start..end`` of the synthetic file: ``FTYP`` then the pool repeated, paced."""
    offset = start
    while offset < end:
        n = min(BLOCK, end - offset)
        await bucket.take(n)
        if offset < len(FTYP):
            head = FTYP[offset:offset + n]
            chunk = head + b"\0" * (n - len(head)) if len(head) < n else head
        else:
            at = offset % len(pool)
            chunk = pool[at:at + n]
            if len(chunk) < n:
                chunk += pool[:n - len(chunk)]
        offset += n
        yield chunk


@dataclass(frozen=True)
class UploadJob:
    base_url: str
    token: str
    size: int
    rate_bps: float
    patch_bytes: int
    seed: int


async def upload_one(http: httpx.AsyncClient, job: UploadJob) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {job.token}", **TUS}
    started = time.monotonic()
    created = await http.post(f"{job.base_url}/uploads/", headers={
        **auth, "Upload-Length": str(job.size), "Upload-Metadata": "filename cmF3Lm1wNA==",  # raw.mp4
    })
    if created.status_code != 201:
        return {"completed": False, "error": f"POST {created.status_code}: {created.text[:200]}"}
    location = created.headers["location"]
    pool = pseudo_bytes(job.seed)
    bucket = TokenBucket(job.rate_bps / 8, burst=2 * BLOCK)
    offset, retries, patches = 0, 0, 0
    error = ""
    while offset < job.size and retries < 5:
        end = min(job.size, offset + job.patch_bytes)
        try:
            response = await http.patch(location, headers={
                **auth, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(end - offset),
            }, content=body(pool, offset, end, bucket))
        except httpx.TransportError as exc:
            response, error = None, repr(exc)
        if response is not None and response.status_code == 204:
            offset = int(response.headers["upload-offset"])
            patches += 1
            continue
        if response is not None:
            error = f"PATCH {response.status_code}: {response.text[:200]}"
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
        retries += 1  # resume from the server's offset, as a tus client does
        head = await http.head(location, headers=auth)
        offset = int(head.headers.get("upload-offset", offset))
    last_byte = time.monotonic()
    head = await http.head(location, headers=auth)
    verified = int(head.headers.get("upload-offset", -1))
    seconds = last_byte - started
    return {
        "completed": verified == job.size == int(head.headers.get("upload-length", -1)),
        "bytes": job.size, "verified_offset": verified, "seconds": round(seconds, 2),
        "mb_per_s": round(job.size / MB / seconds, 3) if seconds else None,
        "patches": patches, "retries": retries, "error": error,
    }


async def upload_all(jobs: Sequence[UploadJob]) -> list[dict[str, Any]]:
    timeout = httpx.Timeout(60.0, connect=10.0)
    async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=len(jobs) + 2)) as http:
        results = await asyncio.gather(*(upload_one(http, job) for job in jobs), return_exceptions=True)
    return [r if isinstance(r, dict) else {"completed": False, "error": repr(r)} for r in results]


def upload_process(jobs: Sequence[UploadJob]) -> list[dict[str, Any]]:
    """Entry point of the child process that runs the upload clients."""
    return asyncio.run(upload_all(jobs))


def uploader_ready() -> int:
    """Run once in the child before the measured phase: it has started and imported this module
    (with httpx), so its start-up, 0.5 s of a CPU, is not counted as an effect of the uploads."""
    return len(pseudo_bytes(0))


@dataclass
class Chat:
    """Chat traffic between members of 2-member rooms; one ``Tally`` per phase."""

    rooms: list[tuple[str, list[Member]]]
    rate: float
    tally: Tally = field(default_factory=Tally)
    expected: dict[str, int] = field(default_factory=dict)
    acks_ms: list[float] = field(default_factory=list)  # send to ack: sender's hub, commit, publish
    failed: int = 0

    async def send_one(self, room_id: str, members: list[Member]) -> None:
        sender = random.choice(members)
        sent_ns = time.time_ns()
        body = f"{sent_ns}:{uuid.uuid4().hex[:8]}"
        try:
            ack = await request(sender, {"t": "chat.send", "room": room_id, "cmid": uuid.uuid4().hex, "body": body})
        except (TimeoutError, ConnectionError):
            self.failed += 1
            return
        self.acks_ms.append((time.time_ns() - sent_ns) / 1e6)
        if ack.get("t") != "chat.ack":
            self.failed += 1
            self.tally.errors.append(str(ack)[:200])
            return
        self.expected[ack["mid"]] = len(members)

    async def run(self, until: asyncio.Event | None, seconds: float) -> dict[str, Any]:
        """Send at ``rate`` until ``until`` is set (or for ``seconds``), then let deliveries land."""
        self.tally, self.expected, self.failed, self.acks_ms = Tally(), {}, 0, []
        started = time.monotonic()
        started_ns = time.time_ns()
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        while (until is None and time.monotonic() - started < seconds) or (until is not None and not until.is_set()):
            delay = started + n / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            room_id, members = random.choice(self.rooms)
            task = asyncio.create_task(self.send_one(room_id, members))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        elapsed = time.monotonic() - started
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if all(len(self.tally.received.get(mid, ())) >= k for mid, k in self.expected.items()):
                break
            await asyncio.sleep(0.1)
        lost = sum(max(0, k - len(self.tally.received.get(mid, ()))) for mid, k in self.expected.items())
        summary = phase_summary(elapsed, len(self.expected), self.failed, lost, self.tally.duplicates,
                                self.tally.latencies_ms, self.tally.errors, self.acks_ms)
        # The slowest deliveries and when they arrived (seconds into the phase): an outlier
        # that always lands at the same moment (uploads finishing, say) points at its cause.
        summary["slowest"] = [{"ms": round(ms, 2), "at_s": round((at - started_ns) / 1e9, 2)}
                              for ms, at in sorted(self.tally.slow, reverse=True)[:5]]
        return summary


def phase_summary(elapsed: float, published: int, failed: int, lost: int, duplicated: int,
                  latencies_ms: Sequence[float], errors: Sequence[str],
                  acks_ms: Sequence[float] = ()) -> dict[str, Any]:
    """The figures of one chat phase; ``_latencies`` and ``_acks`` (raw, for ``merge_phases``) are
    dropped before the report is printed. ``latency_ms`` is send to delivery on every member's
    socket (the headline); ``ack_ms`` is send to the sender's ack, the part of it spent before
    the fan-out (the sender's hub, the commit, the publish)."""
    lat, acks = sorted(latencies_ms), sorted(acks_ms)
    return {
        "seconds": round(elapsed, 1), "published": published, "publish_failed": failed,
        "delivered": len(lat), "lost": lost, "duplicated": duplicated,
        "latency_ms": quantiles(lat), "ack_ms": quantiles(acks),
        "errors": list(errors[:5]), "_latencies": lat, "_acks": acks,
    }


def drop_raw(phase: dict[str, Any]) -> None:
    """Take out the raw lists ``merge_phases`` needs, before the phase is reported."""
    phase.pop("_latencies", None)
    phase.pop("_acks", None)


def merge_phases(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One phase made of two (the chat-only baseline is measured before and after the uploads, so
    that a slow drift of the machine does not pass for an effect of the uploads)."""
    return phase_summary(a["seconds"] + b["seconds"], a["published"] + b["published"],
                         a["publish_failed"] + b["publish_failed"], a["lost"] + b["lost"],
                         a["duplicated"] + b["duplicated"], [*a["_latencies"], *b["_latencies"]],
                         [*a["errors"], *b["errors"]], [*a["_acks"], *b["_acks"]]) | {
        "slowest_before": a.get("slowest", []), "slowest_after": b.get("slowest", [])}


async def open_chat(cluster: Cluster, users: int, rate: float) -> Chat:
    """Rooms of two (members on different hubs when there are two), sockets connected and subscribed.
    The socket readers record into whatever ``Tally`` the returned ``Chat`` holds at the time."""
    hubs = cluster.hubs
    seeded = await cluster.seed_users(users - users % 2)
    pairs = [(seeded[i], seeded[i + 1]) for i in range(0, len(seeded), 2)]
    pool = await asyncpg.create_pool(cluster.database_url, min_size=1, max_size=2)
    rooms: list[tuple[str, list[Member]]] = []
    try:
        for index, (a, b) in enumerate(pairs):
            room_id = await create_room(pool, a.id, [a.id, b.id])
            rooms.append((room_id, [Member(a, hubs[index % len(hubs)]), Member(b, hubs[(index + 1) % len(hubs)])]))
    finally:
        await pool.close()
    chat = Chat(rooms, rate)
    everyone = [m for _, ms in rooms for m in ms]
    await bounded_gather([connect(m, None) for m in everyone], 50)
    for m in everyone:
        record_into(m, lambda: chat.tally)
    await bounded_gather([request(m, {"t": "sub", "ch": f"room:{rid}"}) for rid, ms in rooms for m in ms], 50)
    return chat


async def close_chat(chat: Chat) -> None:
    for _, members in chat.rooms:
        for m in members:
            if m.socket is not None:
                with contextlib.suppress(Exception):
                    await m.socket.close()


class CpuMeter:
    """CPU used by the hubs (percent of one core) and by the whole machine (percent of all cores)
    between ``start()`` and ``stop()``."""

    def __init__(self, procs: Sequence[psutil.Process]) -> None:
        self.procs = list(procs)
        self.hub_cpu, self.at, self.busy = 0.0, 0.0, 0.0

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return float(t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "softirq", 0.0)
                     + getattr(t, "irq", 0.0))

    def start(self) -> None:
        self.hub_cpu, self.at, self.busy = cpu_seconds(self.procs), time.monotonic(), self._busy()

    def stop(self) -> dict[str, float]:
        wall = max(1e-6, time.monotonic() - self.at)
        cores = psutil.cpu_count() or 1
        return {"hubs_percent_of_one_core": round(100 * (cpu_seconds(self.procs) - self.hub_cpu) / wall, 1),
                "machine_percent_of_all_cores": round(100 * (self._busy() - self.busy) / wall / cores, 1)}


class LagMeter:
    """The hubs' event-loop lag (``amaro_event_loop_lag_seconds``) between ``start()`` and ``stop()``."""

    def __init__(self, hubs: Sequence[Hub]) -> None:
        self.hubs = list(hubs)
        self._at: list[dict[float, float]] = []

    async def start(self) -> None:
        self._at = [await loop_lag(h.http_url) for h in self.hubs]

    async def stop(self) -> dict[str, Any]:
        return {h.node_id: lag_summary(before, await loop_lag(h.http_url))
                for h, before in zip(self.hubs, self._at, strict=True)}


#: The chat path inside the hubs, phase by phase: the group commit's PostgreSQL transaction, the
#: Redis round trips appending to the channel's stream and routing to the nodes' inboxes (a batch
#: of one, at this rate), and the lag from publish to the receiving hub's enqueue.
HUB_STAGES = {
    "commit": ("amaro_hub_commit_seconds", "writer=chat"),
    "append": ("amaro_hub_redis_seconds", "op=publish"),
    "route": ("amaro_hub_redis_seconds", "op=route"),
    "fanout_lag": ("amaro_hub_fanout_lag_seconds", ""),
}


class RssSampler:
    """Max resident memory of each hub (with its children) sampled every ``every_s``, and the bytes
    each sent to storage between ``start`` and ``stop`` (``write_bytes``: what the upload path
    costs the disk, steady from run to run where latency on a shared VM is not).

    Children are looked up when sampling starts and when it ends, not at every sample: the lookup
    walks /proc (1.7 ms a hub here) in this process's event loop, the one that also receives and
    times the chat. Four lookups a second held 1-2% of the uploads phase's deliveries for up to
    3.4 ms, and only that phase's: a benchmark artefact in the headline ratio.
    """

    def __init__(self, hubs: Sequence[Hub], every_s: float = 0.25) -> None:
        self.hubs = list(hubs)
        self.every_s = every_s
        self.max_rss = {h.node_id: 0 for h in hubs}
        self.disk_written = {h.node_id: 0 for h in hubs}
        self._procs: dict[str, list[psutil.Process]] = {}
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def tree(hub: Hub) -> list[psutil.Process]:
        proc = hub.ps()
        return [proc, *proc.children(recursive=True)]

    @staticmethod
    def total(procs: Sequence[psutil.Process]) -> int:
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    @staticmethod
    def written(procs: Sequence[psutil.Process]) -> int:
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error, AttributeError):  # io_counters: not on every platform
                total += proc.io_counters().write_bytes
        return total

    @classmethod
    def rss(cls, hub: Hub) -> int:
        return cls.total(cls.tree(hub))

    def _look_up(self) -> None:
        for hub in self.hubs:
            with contextlib.suppress(psutil.Error):
                self._procs[hub.node_id] = self.tree(hub)

    def sample(self) -> None:
        for node_id, procs in self._procs.items():
            self.max_rss[node_id] = max(self.max_rss[node_id], self.total(procs))

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        self._look_up()
        for node_id, procs in self._procs.items():
            self.disk_written[node_id] = -self.written(procs)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._look_up()
        self.sample()
        for node_id, procs in self._procs.items():
            self.disk_written[node_id] += self.written(procs)
        return {k: round(v / 2**20, 1) for k, v in self.max_rss.items()}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # Each upload belongs to its own user: the per-user concurrent upload limit is not what is measured.
    async with Cluster(hubs_wanted=args.hubs, ingest_wanted=args.ingest,
                       extra_env=node_env(args.node_env)) as cluster:
        # Uploads go to the ingest nodes when there are any, else to the hubs (which then serve both).
        upload_nodes = cluster.ingests or cluster.hubs
        chat = await open_chat(cluster, args.chat_users, args.chat_rate)
        await chat.run(None, args.warmup_seconds)  # connection pools and caches warm up; not measured
        rss_before = {h.node_id: round(RssSampler.rss(h) / 2**20, 1) for h in [*cluster.hubs, *cluster.ingests]}
        meter = CpuMeter([h.ps() for h in cluster.hubs])
        lag = LagMeter(cluster.hubs)
        stages = StageMeter([h.http_url for h in cluster.hubs], HUB_STAGES)
        await lag.start()
        await stages.start()
        meter.start()
        baseline = await chat.run(None, args.baseline_seconds)
        baseline["cpu"] = meter.stop()
        stages_before = await stages.stop()
        lag_before = await lag.stop()

        uploaders = await cluster.seed_users(args.uploads)
        size = int(args.size_mb * MB)
        jobs = [UploadJob(upload_nodes[i % len(upload_nodes)].http_url, u.token, size, args.mbps * 1e6,
                          int(args.patch_mb * MB), seed=i) for i, u in enumerate(uploaders)]
        sampler = RssSampler([*cluster.hubs, *cluster.ingests])
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            await loop.run_in_executor(pool, uploader_ready)
            sampler.start()
            started = time.monotonic()
            meter.start()
            await lag.start()
            await stages.start()
            future = loop.run_in_executor(pool, upload_process, jobs)
            future.add_done_callback(lambda _: done.set())
            chat_task = asyncio.create_task(chat.run(done, 0))
            try:
                results = await asyncio.wait_for(future, args.timeout)
            except TimeoutError:
                done.set()
                results = [{"completed": False, "error": f"not finished in {args.timeout}s"}]
            wall = time.monotonic() - started
            during = await chat_task
            during["cpu"] = meter.stop()
            during["hub_loop_lag"] = await lag.stop()
            during["hub_stages"] = await stages.stop()
        rss_max = await sampler.stop()
        disk_written = sampler.disk_written
        await stages.start()
        meter.start()
        after = await chat.run(None, args.baseline_seconds)
        after_cpu = meter.stop()
        baseline = merge_phases(baseline, after) | {"cpu_before": baseline["cpu"], "cpu_after": after_cpu,
                                                    "hub_loop_lag_before": lag_before,
                                                    "hub_stages_before": stages_before,
                                                    "hub_stages_after": await stages.stop()}
        await close_chat(chat)
        for phase in (baseline, during):
            drop_raw(phase)

    completed = sum(1 for r in results if r.get("completed"))
    total_bytes = sum(int(r.get("verified_offset", 0)) for r in results if r.get("completed"))
    per_upload = [r["mb_per_s"] for r in results if r.get("mb_per_s")]
    p99_without = baseline["latency_ms"]["p99"]
    p99_with = during["latency_ms"]["p99"]
    ratio = round(p99_with / p99_without, 3) if p99_without and p99_without == p99_without else None
    return {
        "benchmark": "uploads",
        "headline": {"chat_p99_ratio_with_over_without": ratio, "target": 1.5,
                     "target_met": ratio is not None and ratio < 1.5},
        "config": {"node_env": node_env(args.node_env),
                   "hubs": args.hubs, "ingest_nodes": args.ingest, "uploads": args.uploads,
                   "size_mb": args.size_mb, "mbps_per_client": args.mbps,
                   "patch_mb": args.patch_mb, "chat_users": args.chat_users, "chat_rate": args.chat_rate},
        "uploads": {
            "completed": completed, "all_completed": completed == args.uploads == len(results),
            "bytes_verified": total_bytes, "wall_seconds": round(wall, 2),
            "total_mb_per_s": round(total_bytes / MB / wall, 3) if wall else None,
            "per_upload_mb_per_s": {"min": min(per_upload, default=None), "max": max(per_upload, default=None),
                                    "target": round(args.mbps / 8, 3)},
            "each": results,
            # Bytes the upload nodes sent to storage per byte uploaded: 1.0 plus the encryption's
            # 0.02 is the floor; staging a tail the store cannot keep in place costs more.
            "disk_bytes_per_uploaded_byte": round(sum(disk_written.values()) / total_bytes, 3) if total_bytes else None,
        },
        "node_rss_mb": {"before": rss_before, "max_during": rss_max},  # hubs and ingest nodes
        "node_disk_written_mb": {k: round(v / MB, 1) for k, v in disk_written.items()},
        "chat_without_uploads": baseline,  # before and after the uploads, pooled
        "chat_with_uploads": during,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hubs", type=int, default=2, choices=(1, 2))
    parser.add_argument("--ingest", type=int, default=0, choices=(0, 1, 2),
                        help="upload-only nodes (amaro ingest); the hubs then serve no uploads")
    parser.add_argument("--uploads", type=int, default=4, help="concurrent uploads, one user each")
    parser.add_argument("--size-mb", type=float, default=200.0, help="bytes per upload, in MB (10^6)")
    parser.add_argument("--mbps", type=float, default=20.0, help="uplink pace of each upload client, Mbit/s")
    parser.add_argument("--patch-mb", type=float, default=16.0, help="bytes per PATCH request, in MB")
    parser.add_argument("--chat-users", type=int, default=20, help="socket users chatting in rooms of two")
    parser.add_argument("--chat-rate", type=float, default=50.0, help="chat messages per second in total")
    parser.add_argument("--warmup-seconds", type=float, default=5.0, help="unmeasured chat before the baseline")
    parser.add_argument("--baseline-seconds", type=float, default=20.0,
                        help="chat-only phase, before and after the uploads")
    parser.add_argument("--node-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the hub processes (repeatable), e.g. a diagnosis knob")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on the uploads after this long")


def main(args: argparse.Namespace) -> int:
    result = asyncio.run(run(args))
    emit(result, args.json)
    ok = (result["uploads"]["all_completed"] and result["chat_without_uploads"]["lost"] == 0
          and result["chat_with_uploads"]["lost"] == 0 and result["chat_with_uploads"]["publish_failed"] == 0)
    return 0 if ok else 1
