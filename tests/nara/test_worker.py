"""The worker on real Redis Streams and real ffmpeg: delivery, failures, reclaim after a crash."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from media.app import close_store, open_store
from media.crypto import DataKey, encrypt_bytes, header_key
from media.jobs import JobQueue, MediaJob
from media.jobs import enqueue as enqueue_job
from media.keyring import Keyring
from media.worker_store import WorkerStore
from nara.job import Job
from nara.keys import NaraKeys
from nara.pipeline import Context
from nara.settings import NaraSettings
from nara.storage import LocalStore, MediaStore
from nara.tools import Tools
from nara.worker import Worker
from tests.conftest import ServiceUrls, make_settings, node_env

from .conftest import make_clip, png_claiming
from .sinks import Recorded, RecordingSink


def _settings(tmp_path: Path, nk: NaraKeys, consumer: str, **kw: object) -> NaraSettings:
    base: dict[str, object] = {"block_ms": 200, "reclaim_interval_s": 0.2, "claim_idle_s": 30.0,
                               "backoff_s": 0.2}
    base.update(kw)
    return NaraSettings(consumer=consumer, workdir=tmp_path / f"work-{consumer}", keys=nk,
                        **base)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)


async def _upload(store: LocalStore, upload_id: str, source: Path) -> Job:
    dest = store.path_of(f"uploads/{upload_id}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(source.read_bytes())
    return Job(upload_id, upload_id, "user-1", "post-1", f"uploads/{upload_id}", "video/mp4",
               dest.stat().st_size, 4_000_000)


async def enqueue(redis: Redis, job: Job, nk: NaraKeys) -> bool:
    """Queue ``job`` as media/ does (a JobQueue of the workers' namespace names their stream)."""
    return await enqueue_job(redis, JobQueue(nk.namespace), MediaJob(
        upload_id=job.upload_id, user_id=job.user_id, post_id=job.post_id, object_key=job.object_key,
        content_type=job.content_type, size=job.size, uplink_bps=job.uplink_bps))


async def _pending(redis: Redis, nk: NaraKeys) -> int:
    info = await redis.xpending(nk.jobs, nk.group)
    return int(info["pending"])


async def test_enqueue_is_idempotent_per_upload(redis_ns: tuple[Redis, NaraKeys]) -> None:
    redis, nk = redis_ns
    job = Job("u-1", "u-1", "user", "post", "uploads/u-1")
    assert await enqueue(redis, job, nk) is True
    assert await enqueue(redis, job, nk) is False
    assert await redis.xlen(nk.jobs) == 1
    entry = (await redis.xrange(nk.jobs))[0][1]
    assert Job.from_map(msgpack.unpackb(entry[b"job"])) == job


async def test_worker_runs_job_and_acks(
    redis_ns: tuple[Redis, NaraKeys], tools: Tools, clips: dict[str, Path], tmp_path: Path
) -> None:
    redis, nk = redis_ns
    store, sink = LocalStore(tmp_path / "store"), RecordingSink()
    settings = _settings(tmp_path, nk, "w1")
    worker = Worker(settings, redis, Context(settings, tools, store, sink))
    async with running(worker):
        job = await _upload(store, "up-ok", clips["av"])
        await enqueue(redis, job, nk)
        await sink.wait_for("up-ok", "upgraded", timeout=60)
        async with asyncio.timeout(5):
            while await _pending(redis, nk):
                await asyncio.sleep(0.05)
    assert sink.phases("up-ok") == ["good_enough", "upgraded"]
    assert await redis.xlen(nk.jobs) == 0  # acknowledged and deleted
    assert await redis.xlen(nk.dead) == 0


def _bad_payload(name: str, clips: dict[str, Path]) -> bytes:
    return {
        "random": lambda: bytes(range(256)) * 100,
        "empty": lambda: b"",
        "hls": lambda: b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n/etc/hostname\n#EXT-X-ENDLIST\n",
        "concat": lambda: b"ffconcat version 1.0\nfile '/etc/hostname'\n",
        "truncated": lambda: clips["av"].read_bytes()[:20_000],
        "audio_only": lambda: clips["audio_only"].read_bytes(),
        "fps1000": lambda: clips["fps1000"].read_bytes(),
        "huge_png": lambda: png_claiming(30000, 30000),
    }[name]()


@pytest.mark.parametrize(("name", "reason"), [
    ("random", "not_media"), ("empty", "empty"), ("hls", "playlist_rejected"),
    ("concat", "playlist_rejected"), ("truncated", "truncated"), ("audio_only", "no_video_stream"),
    ("fps1000", "fps_out_of_range"), ("huge_png", "too_large_dimensions"),
])
async def test_bad_input_fails_fast_with_reason_and_dead_letter(
    name: str, reason: str, redis_ns: tuple[Redis, NaraKeys], tools: Tools, clips: dict[str, Path],
    tmp_path: Path,
) -> None:
    redis, nk = redis_ns
    store, sink = LocalStore(tmp_path / "store"), RecordingSink()
    settings = _settings(tmp_path, nk, "w1")
    worker = Worker(settings, redis, Context(settings, tools, store, sink))
    bad = tmp_path / f"{name}.mp4"
    bad.write_bytes(_bad_payload(name, clips))
    before = REGISTRY.get_sample_value("nara_failures_total", {"reason": reason}) or 0.0
    async with running(worker):
        await enqueue(redis, await _upload(store, f"up-{name}", bad), nk)
        started = asyncio.get_running_loop().time()
        failed = await sink.wait_for(f"up-{name}", "failed", timeout=15)
        assert asyncio.get_running_loop().time() - started < 5.0
    assert failed.data["reason"] == reason
    assert sink.phases(f"up-{name}") == ["failed"]
    assert REGISTRY.get_sample_value("nara_failures_total", {"reason": reason}) == before + 1
    dead = await redis.xrange(nk.dead)
    assert len(dead) == 1 and dead[0][1][b"reason"] == reason.encode()
    assert await _pending(redis, nk) == 0


async def test_retryable_failure_is_retried_then_dead_lettered(
    redis_ns: tuple[Redis, NaraKeys], tools: Tools, tmp_path: Path
) -> None:
    """A missing input object is a storage failure: retried with backoff, bounded, then dead."""
    redis, nk = redis_ns
    store, sink = LocalStore(tmp_path / "store"), RecordingSink()
    settings = _settings(tmp_path, nk, "w1", claim_idle_s=0.6, max_attempts=3, backoff_s=0.1)
    worker = Worker(settings, redis, Context(settings, tools, store, sink))
    async with running(worker):
        await enqueue(redis, Job("up-gone", "up-gone", "user", "post", "uploads/missing"), nk)
        failed = await sink.wait_for("up-gone", "failed", timeout=20)
    assert failed.data["reason"] == "storage_failed"
    dead = await redis.xrange(nk.dead)
    assert len(dead) == 1 and dead[0][1][b"attempts"] == b"3"
    assert await redis.get(nk.last_error("up-gone")) == b"storage_failed"


async def test_crashed_worker_job_is_reclaimed_and_completed_once(
    redis_ns: tuple[Redis, NaraKeys], tools: Tools, tmp_path: Path
) -> None:
    redis, nk = redis_ns
    store = LocalStore(tmp_path / "store")
    clip = make_clip(tools, tmp_path / "long.mp4", seconds=20.0, size="640x360")
    job = await _upload(store, "up-crash", clip)

    sink_a = RecordingSink()
    settings_a = _settings(tmp_path, nk, "worker-a", claim_idle_s=1.0)
    worker_a = Worker(settings_a, redis, Context(settings_a, tools, store, sink_a))
    stop_a = asyncio.Event()
    task_a = asyncio.create_task(worker_a.run(stop_a))
    await enqueue(redis, job, nk)
    await sink_a.wait_for("up-crash", "good_enough", timeout=30)
    # Crash mid-job: the task dies without acknowledging; ffmpeg's process group is killed.
    task_a.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task_a
    assert sink_a.phases("up-crash") == ["good_enough"]
    assert await _pending(redis, nk) == 1

    sink_b, upgraded = await _reclaimed_by_worker_b(redis, nk, tools, store, tmp_path, "up-crash")
    assert sink_b.phases("up-crash") == ["good_enough", "upgraded"]
    assert await redis.xlen(nk.dead) == 0

    _assert_outputs_once(store, "up-crash", str(upgraded.data["plan_id"]))


async def _reclaimed_by_worker_b(redis: Redis, nk: NaraKeys, tools: Tools, store: MediaStore, tmp_path: Path,
                                 upload_id: str) -> tuple[RecordingSink, Recorded]:
    """Run a second worker until it took over ``upload_id``'s job and finished it."""
    sink_b = RecordingSink()
    settings_b = _settings(tmp_path, nk, "worker-b", claim_idle_s=1.0)
    worker_b = Worker(settings_b, redis, Context(settings_b, tools, store, sink_b))
    async with running(worker_b):
        upgraded = await sink_b.wait_for(upload_id, "upgraded", timeout=90)
        async with asyncio.timeout(5):
            while await _pending(redis, nk):
                await asyncio.sleep(0.05)
    return sink_b, upgraded


def _assert_outputs_once(store: LocalStore, upload_id: str, plan_id: str) -> None:
    """One phase-1 directory, one ladder directory, and every stored segment named by a playlist."""
    media = store.path_of(f"media/{upload_id}")
    dirs = {p.name for p in media.iterdir() if p.is_dir()}
    fast = [d for d in dirs if d.startswith("fast-")]
    assert len(dirs) == 2 and plan_id in dirs and len(fast) == 1, dirs
    for playlist in media.rglob("index.m3u8"):
        listed = {line for line in playlist.read_text().splitlines() if line and not line.startswith("#")}
        stored = {p.name for p in playlist.parent.iterdir() if p.suffix == ".ts"}
        assert stored == listed, playlist
        assert "#EXT-X-ENDLIST" in playlist.read_text()
    assert not [p for p in media.rglob("*") if p.name.endswith(".tmp")]


def _ffmpeg_pids(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker`` (e.g. a worker's work directory)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            state = (proc / "stat").read_text().split(") ", 1)[1][:1]
        except OSError:
            continue
        if marker in cmdline and "ffmpeg" in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


async def test_sigkilled_worker_process_job_reclaimed(
    redis_ns: tuple[Redis, NaraKeys], service_urls: ServiceUrls, tools: Tools, tmp_path: Path
) -> None:
    """A real worker process (``amaro worker``) is SIGKILLed mid-encode: its ffmpeg dies with it,
    the job stays pending, and another worker reclaims it with XAUTOCLAIM and completes it."""
    import signal
    import sys

    redis, nk = redis_ns
    # The worker process reads originals from the media store (encrypted with the data folder's
    # keyring) and writes outputs back there; worker B below uses the same store and keyring.
    settings = make_settings(service_urls, tmp_path / "data", node_id="proc-a")
    media_store = await open_store(settings.media)
    keyring = Keyring.load(settings.media)
    clip = make_clip(tools, tmp_path / "long.mp4", seconds=20.0, size="640x360")
    data_key = DataKey.generate(keyring)
    await media_store.put("uploads/up-kill", encrypt_bytes(data_key, clip.read_bytes()))
    await media_store.put(header_key("uploads/up-kill"), data_key.header.encode())
    job = Job("up-kill", "up-kill", "user-1", "post-1", "uploads/up-kill", "video/mp4", clip.stat().st_size,
              4_000_000)
    store = LocalStore(settings.media.local_dir)  # outputs are stored as given: read them as files
    work_a = tmp_path / "work-proc-a"
    env = node_env(settings, AMARO_NARA_KEY_NAMESPACE=nk.namespace, AMARO_NARA_WORKDIR=str(work_a),
                   AMARO_NARA_CLAIM_IDLE_S="1", AMARO_NARA_CONSUMER="proc-a")
    log = (tmp_path / "proc-a.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "amaro", "worker", env=env, stdout=log, stderr=log, cwd=Path(__file__).parents[2]
    )
    try:
        try:
            await enqueue(redis, job, nk)
            async with asyncio.timeout(30):
                # Mid-job: the ladder encode (phase 2) of worker A is running.
                while not [p for p in _ffmpeg_pids(str(work_a / "up-kill" / "ladder"))]:
                    await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            log.close()
        async with asyncio.timeout(0.5):  # parent-death signal: no orphan keeps encoding
            while _ffmpeg_pids(str(work_a)):
                await asyncio.sleep(0.05)
        assert await _pending(redis, nk) == 1

        sink_b, upgraded = await _reclaimed_by_worker_b(redis, nk, tools, WorkerStore(media_store, keyring),
                                                        tmp_path, "up-kill")
    finally:
        await close_store(media_store)
    assert sink_b.phases("up-kill") == ["good_enough", "upgraded"]
    _assert_outputs_once(store, "up-kill", str(upgraded.data["plan_id"]))


async def test_worker_survives_losing_its_stream_and_group(
    redis_ns: tuple[Redis, NaraKeys], tools: Tools, clips: dict[str, Path], tmp_path: Path
) -> None:
    """After a Redis restart without persistence the group is gone (NOGROUP): the worker
    recreates it and keeps consuming instead of silently stopping."""
    redis, nk = redis_ns
    store, sink = LocalStore(tmp_path / "store"), RecordingSink()
    settings = _settings(tmp_path, nk, "w1")
    worker = Worker(settings, redis, Context(settings, tools, store, sink))
    async with running(worker):
        async with asyncio.timeout(5):
            while not await redis.exists(nk.jobs):
                await asyncio.sleep(0.02)
        await redis.delete(nk.jobs)
        await enqueue(redis, await _upload(store, "up-after", clips["av"]), nk)
        await sink.wait_for("up-after", "upgraded", timeout=60)


async def test_concurrency_limit_is_respected(
    redis_ns: tuple[Redis, NaraKeys], tools: Tools, clips: dict[str, Path], tmp_path: Path
) -> None:
    redis, nk = redis_ns
    store, sink = LocalStore(tmp_path / "store"), RecordingSink()
    settings = _settings(tmp_path, nk, "w1", concurrency=2)
    worker = Worker(settings, redis, Context(settings, tools, store, sink))
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(worker.in_flight))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        async with running(worker):
            for i in range(4):
                await enqueue(redis, await _upload(store, f"up-c{i}", clips["av"]), nk)
            for i in range(4):
                await sink.wait_for(f"up-c{i}", "upgraded", timeout=60)
    finally:
        watcher.cancel()
    assert peak == 2
