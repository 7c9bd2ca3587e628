"""One job, two phases: "good enough" as soon as the first low segments exist, then "upgraded".

The pipeline owns the order of work and the output key layout; ffmpeg details live in
:mod:`nara.transcode`, decisions in :mod:`nara.planner`, delivery in the worker. A job raises a
:class:`nara.errors.NaraError` on failure; the worker decides between retry and a failed event.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import structlog

from nara import metrics
from nara import transcode as tx
from nara.catalog import PROCESSING, Catalog, NullCatalog
from nara.complexity import measure
from nara.errors import EncodeFailed, StorageFailed, Truncated
from nara.events import GOOD_ENOUGH, UPGRADED, EventSink, announce
from nara.hls import (
    MediaPlaylist,
    VariantStats,
    avc_codecs_from_segment,
    master_playlist,
    parse_media_playlist,
    storyboard_vtt,
    variant_stats,
)
from nara.job import Job
from nara.planner import Audience, Plan, Rendition, first_id, first_rendition, plan, plan_from_dict
from nara.probe import Probe, probe
from nara.settings import NaraSettings
from nara.storage import IMMUTABLE, REVALIDATE, MediaStore
from nara.tools import Tools

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t", ".jpg": "image/jpeg",
    ".webp": "image/webp", ".mp4": "video/mp4", ".vtt": "text/vtt", ".json": "application/json",
}


class Outputs:
    """Immutable key layout: ``media/<upload>/<plan_id>/...``. A re-run with the same plan writes
    the same keys, so a reclaimed job overwrites its own outputs and never duplicates them."""

    def __init__(self, upload_id: str, plan_id: str) -> None:
        self.prefix = f"media/{upload_id}/{plan_id}"

    @staticmethod
    def plan_key(upload_id: str) -> str:
        return f"media/{upload_id}/plan.json"

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}"


@dataclass
class Context:
    settings: NaraSettings
    tools: Tools
    store: MediaStore
    sink: EventSink
    audience: Audience = field(default_factory=Audience)
    catalog: Catalog = field(default_factory=NullCatalog)


async def _emit(ctx: Context, job: Job, phase: str, data: dict[str, object], p: Probe,
                the_plan: Plan | None = None) -> None:
    """Catalog first, then the event: a client that hears it finds the media row already there."""
    await ctx.catalog.record(job, phase, data, probe=p, plan=the_plan)
    await announce(ctx.sink, job.user_id, job.upload_id, job.post_id, phase, data)


async def _put(ctx: Context, key: str, path: Path, cache: str = IMMUTABLE) -> str:
    await ctx.store.put_file(key, path, CONTENT_TYPES.get(path.suffix, "application/octet-stream"), cache)
    return key


async def _placeholder(ctx: Context, image: Path, work: Path, demuxer: str | None) -> str:
    out = work / "placeholder.jpg"
    limits = ctx.settings.limits
    await tx.run_ffmpeg(tx.placeholder_args(ctx.tools, image, out, limits, demuxer),
                        timeout_s=limits.probe_timeout_s, limits=limits, what="placeholder")
    data = await asyncio.to_thread(out.read_bytes)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


async def _load_or_make_plan(ctx: Context, job: Job, src: Path, work: Path, p: Probe) -> Plan:
    stored = await ctx.store.get_bytes(Outputs.plan_key(job.upload_id))
    if stored:
        # A retry reuses the first attempt's plan: same plan id, same output keys.
        return plan_from_dict(orjson.loads(stored))
    bpp = await measure(src, work, p, ctx.tools, ctx.settings.limits)
    made = plan(p, bpp, job.uplink_bps, ctx.audience, ctx.settings.policy)
    path = work / "plan.json"
    await asyncio.to_thread(path.write_bytes, made.to_json())
    await _put(ctx, Outputs.plan_key(job.upload_id), path, REVALIDATE)
    return made


async def run_job(job: Job, ctx: Context) -> dict[str, object]:
    """Run both phases for ``job``; returns the upgraded event's data. Raises NaraError."""
    log = structlog.get_logger("nara").bind(job_id=job.job_id, upload_id=job.upload_id)
    started = time.monotonic()
    work = ctx.settings.workdir / job.job_id
    await asyncio.to_thread(shutil.rmtree, work, True)
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    try:
        src = work / "source"  # no extension: demuxers are chosen by content, never by name
        await ctx.store.fetch_to(job.object_key, src)
        fetched = (await asyncio.to_thread(src.stat)).st_size
        if job.size and fetched != job.size:
            raise StorageFailed(f"fetched {fetched} bytes of {job.object_key}, the upload had {job.size}")
        p = await probe(src, ctx.tools, ctx.settings.limits)
        log.info("probed", kind=p.kind, width=p.width, height=p.height, fps=p.fps, duration=p.duration_s)
        await ctx.catalog.record(job, PROCESSING, {"kind": p.kind}, probe=p)
        if p.kind == "image":
            the_plan = await _load_or_make_plan(ctx, job, src, work, p)
            return await _image(job, ctx, src, work, p, the_plan, Outputs(job.upload_id, the_plan.plan_id),
                                started)
        # Phase 1 needs only the probe: the complexity sample and the full plan come after it.
        first, _ = first_rendition(p, job.uplink_bps, ctx.settings.policy)
        fast = Outputs(job.upload_id, f"fast-{first_id(first, ctx.settings.policy.segment_s)}")
        poster_key = await _phase1(job, ctx, src, work, p, first, fast, started)
        log.info("good_enough", seconds=round(time.monotonic() - started, 3))
        the_plan = await _load_or_make_plan(ctx, job, src, work, p)
        data = await _phase2(job, ctx, src, work, p, the_plan, Outputs(job.upload_id, the_plan.plan_id),
                             started, poster_key)
        log.info("upgraded", seconds=round(time.monotonic() - started, 3))
        return data
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


async def _phase1(job: Job, ctx: Context, src: Path, work: Path, p: Probe, first: Rendition,
                  out: Outputs, started: float) -> str | None:
    """Encode the fast rendition; announce "good enough" once its first segments and the poster
    are stored. Returns the poster's key (None only if ffmpeg produced none)."""
    limits = ctx.settings.limits
    segment_s = ctx.settings.policy.segment_s
    poster = work / "poster.jpg"
    poster_key: str | None = None
    placeholder = ""
    fast = work / "fast"
    await asyncio.to_thread(fast.mkdir)
    playlist = fast / "index.m3u8"
    playlist_key = out.key("fast/index.m3u8")
    uploaded: set[str] = set()
    announced = False

    async def store_poster() -> bool:
        nonlocal poster_key, placeholder
        if poster_key is None and await asyncio.to_thread(poster.exists):
            placeholder = await _placeholder(ctx, poster, work, "jpeg_pipe")
            poster_key = await _put(ctx, out.key("poster.jpg"), poster)
        return poster_key is not None

    async def announce(complete: bool) -> None:
        nonlocal announced
        announced = True
        metrics.TIME_TO_GOOD_ENOUGH.observe(time.monotonic() - started)
        await _emit(ctx, job, GOOD_ENOUGH, {
            "kind": "video", "playlist": playlist_key,
            "poster": poster_key, "placeholder": placeholder, "width": p.width,
            "height": p.height, "duration_s": p.duration_s, "complete": complete,
        }, p)

    # A reclaimed job may find the previous attempt's phase-1 output: complete means skip the
    # encode; partial means never publish a shorter playlist than players may already hold.
    previous = parse_media_playlist((await ctx.store.get_bytes(playlist_key) or b"").decode())
    stored_poster = await ctx.store.get_bytes(out.key("poster.jpg")) if previous.ended else None
    if previous.segments and stored_poster:
        await asyncio.to_thread(poster.write_bytes, stored_poster)
        placeholder = await _placeholder(ctx, poster, work, "jpeg_pipe")
        poster_key = out.key("poster.jpg")
        await announce(True)
        return poster_key

    async def on_update(current: MediaPlaylist) -> None:
        for seg in current.segments:
            if seg.uri not in uploaded:
                await _put(ctx, out.key(f"fast/{seg.uri}"), fast / seg.uri)
                uploaded.add(seg.uri)
        if len(current.segments) < len(previous.segments) and not current.ended:
            return
        # Written by us from the snapshot, so the stored playlist never names a missing segment.
        snapshot = work / "fast_snapshot.m3u8"
        await asyncio.to_thread(snapshot.write_text, current.text)
        await ctx.store.put_file(playlist_key, snapshot, CONTENT_TYPES[".m3u8"], REVALIDATE)
        enough = len(current.segments) >= ctx.settings.first_segments
        # The poster scan covers the first seconds only, so waiting for it costs at most a segment.
        if not announced and ((enough and await store_poster()) or current.ended):
            await store_poster()
            await announce(current.ended)

    argv = tx.phase1_args(ctx.tools, src, playlist, poster, first, segment_s, p, limits)
    wall = await tx.encode_growing(argv, playlist, on_update,
                                   timeout_s=ctx.settings.phase1_timeout(p.duration_s, p.load), limits=limits,
                                   settled=lambda: announced)
    metrics.ENCODE_SPEED.labels("phase1").observe(p.duration_s / max(wall, 1e-3))
    final = parse_media_playlist(await asyncio.to_thread(playlist.read_text))
    if final.duration_s < p.duration_s - max(2 * segment_s, 0.5 * p.duration_s):
        raise Truncated(f"decoded {final.duration_s:.1f}s of a claimed {p.duration_s:.1f}s")
    return poster_key


async def _phase2(job: Job, ctx: Context, src: Path, work: Path, p: Probe, the_plan: Plan,
                  out: Outputs, started: float, poster_key: str | None) -> dict[str, object]:
    limits = ctx.settings.limits
    ladder_dir = work / "ladder"
    for r in the_plan.ladder:
        await asyncio.to_thread((ladder_dir / r.name).mkdir, parents=True)
    preview, sprite = work / "preview.mp4", work / "storyboard.jpg"
    t0 = time.monotonic()
    await tx.run_ffmpeg(tx.phase2_args(ctx.tools, src, ladder_dir, the_plan, p, limits, preview, sprite),
                        timeout_s=ctx.settings.phase2_timeout(p.duration_s, p.load), limits=limits,
                        what="ladder", ladder=True)
    metrics.ENCODE_SPEED.labels("phase2").observe(p.duration_s / max(time.monotonic() - t0, 1e-3))

    variants: list[VariantStats] = []
    renditions: list[dict[str, object]] = []
    for r in the_plan.ladder:
        rdir = ladder_dir / r.name
        media = parse_media_playlist(await asyncio.to_thread((rdir / "index.m3u8").read_text))
        if not media.ended or not media.segments:
            raise EncodeFailed(f"rendition {r.name} has no complete playlist")
        sizes = []
        for seg in media.segments:
            sizes.append((await asyncio.to_thread((rdir / seg.uri).stat)).st_size)
            await _put(ctx, out.key(f"{r.name}/{seg.uri}"), rdir / seg.uri)
        key = await _put(ctx, out.key(f"{r.name}/index.m3u8"), rdir / "index.m3u8")
        head = await asyncio.to_thread(_head_bytes, rdir / media.segments[0].uri)
        codecs = avc_codecs_from_segment(head, bool(r.audio_kbps) and p.has_audio)
        stats = variant_stats(r, f"{r.name}/index.m3u8", media, sizes, codecs)
        variants.append(stats)
        renditions.append({"name": r.name, "width": r.width, "height": r.height, "fps": r.fps,
                           "bandwidth": stats.peak_bps, "average_bandwidth": stats.average_bps,
                           "codecs": stats.codecs,
                           "playlist": key})
    master = work / "master.m3u8"
    await asyncio.to_thread(master.write_text, master_playlist(variants))

    geo = tx.storyboard_geometry(p)
    vtt = work / "storyboard.vtt"
    await asyncio.to_thread(vtt.write_text, storyboard_vtt(
        geo.count, geo.interval_s, geo.columns, geo.tile_w, geo.tile_h, "storyboard.jpg", p.duration_s))
    preview_key = await _put(ctx, out.key("preview.mp4"), preview)
    sprite_key = await _put(ctx, out.key("storyboard.jpg"), sprite)
    vtt_key = await _put(ctx, out.key("storyboard.vtt"), vtt)
    # Master last: once it exists, everything it points to does.
    master_key = await _put(ctx, out.key("master.m3u8"), master)
    data: dict[str, object] = {
        "kind": "video", "plan_id": the_plan.plan_id, "master": master_key, "renditions": renditions,
        "preview": preview_key, "storyboard": {"vtt": vtt_key, "sprite": sprite_key}, "poster": poster_key,
        "plan": Outputs.plan_key(job.upload_id), "reasons": list(the_plan.reasons),
    }
    metrics.TIME_TO_UPGRADED.observe(time.monotonic() - started)
    await _emit(ctx, job, UPGRADED, data, p, the_plan)
    return data


def _head_bytes(path: Path, size: int = 65536) -> bytes:
    with path.open("rb") as f:
        return f.read(size)


async def _image(job: Job, ctx: Context, src: Path, work: Path, p: Probe, the_plan: Plan,
                 out: Outputs, started: float) -> dict[str, object]:
    limits = ctx.settings.limits
    vdir = work / "variants"
    await asyncio.to_thread(vdir.mkdir)
    await tx.run_ffmpeg(tx.image_args(ctx.tools, src, vdir, the_plan.image_widths, p, limits),
                        timeout_s=ctx.settings.phase1_timeout(0), limits=limits, what="image")
    variants = []
    for w in the_plan.image_widths:
        variants.append({
            "width": w,
            "webp": await _put(ctx, out.key(f"{w}.webp"), vdir / f"{w}.webp"),
            "jpeg": await _put(ctx, out.key(f"{w}.jpg"), vdir / f"{w}.jpg"),
        })
    data: dict[str, object] = {
        "kind": "image", "plan_id": the_plan.plan_id, "width": p.width, "height": p.height,
        "variants": variants, "placeholder": await _placeholder(ctx, src, work, None),
    }
    metrics.TIME_TO_GOOD_ENOUGH.observe(time.monotonic() - started)
    await _emit(ctx, job, GOOD_ENOUGH, data, p, the_plan)
    # Stills have no second phase; "upgraded" still closes the item's lifecycle for clients.
    metrics.TIME_TO_UPGRADED.observe(time.monotonic() - started)
    await _emit(ctx, job, UPGRADED, data, p, the_plan)
    return data
