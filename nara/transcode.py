"""ffmpeg argument lists (pure, tested directly) and the guarded runs that execute them.

Every untrusted input goes through ``guard.input_args`` (file protocol, demuxer allow-list) and
``-max_pixels``; every run goes through ``guard.run_guarded`` (own process group, nice, thread
cap, wall-time limit). Outputs land in the job's working directory; the pipeline uploads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from amaro.infra.cpus import pin
from nara.errors import EncodeFailed
from nara.guard import Completed, Limits, input_args, run_guarded
from nara.hls import MediaPlaylist, parse_media_playlist
from nara.planner import Plan, Rendition
from nara.probe import Probe
from nara.tools import Tools

# Poster: skip dark frames (limited-range black is Y=16), then let `thumbnail` pick the most
# representative of what is left in the first seconds.
POSTER_SCAN_S = 4.0
POSTER_SCAN_FPS = 4
POSTER_PICK = 8
POSTER_MIN_LUMA = 40
STORYBOARD_TILE_W = 160
STORYBOARD_COLUMNS = 10
STORYBOARD_MAX_TILES = 100
PREVIEW_S = 3.0


def _head(tools: Tools, limits: Limits) -> list[str]:
    return [str(tools.ffmpeg), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-threads", str(limits.threads), "-filter_threads", str(limits.threads)]


def _untrusted(src: Path, limits: Limits) -> list[str]:
    return ["-max_pixels", str(limits.max_pixels), *input_args(src)]


def _scale(width: int, height: int) -> str:
    # Autorotation (on by default) runs before this, so the frame is already upright.
    return f"scale={width}:{height}:flags=bicubic,setsar=1,format=yuv420p"


def _key_frames(segment_s: float) -> list[str]:
    # Time-based forced keyframes land on the same instants in every rendition, whatever its
    # frame rate, so segments of all variants start together and players switch cleanly.
    return ["-force_key_frames", f"expr:gte(t,n_forced*{segment_s:g})", "-sc_threshold", "0"]


def video_codec_args(r: Rendition, segment_s: float, threads: int) -> list[str]:
    return [
        "-c:v", "libx264", "-preset", r.preset, "-profile:v", r.profile, "-level:v", r.level,
        "-crf", str(r.crf), "-maxrate", f"{r.video_kbps}k", "-bufsize", f"{r.bufsize_kbps}k",
        "-g", str(r.gop_frames), "-keyint_min", str(r.gop_frames), *_key_frames(segment_s),
        "-threads", str(threads),
    ]


def audio_codec_args(r: Rendition) -> list[str]:
    return ["-c:a", "aac", "-b:a", f"{r.audio_kbps}k", "-ac", "2", "-ar", "48000"]


def hls_args(segment_s: float, playlist: Path, playlist_type: str) -> list[str]:
    """HLS muxer options. MPEG-TS segments: every HLS player reads them, and each segment
    stands alone, so a growing playlist is playable from its first segment."""
    return [
        "-f", "hls", "-hls_time", f"{segment_s:g}", "-hls_playlist_type", playlist_type,
        "-hls_flags", "independent_segments+temp_file", "-hls_segment_type", "mpegts",
        "-hls_segment_filename", str(playlist.parent / "seg_%05d.ts"), str(playlist),
    ]


def _poster_graph(probe: Probe, label_in: str, label_out: str) -> str:
    """Poster picker: skip dark frames, prefer the most representative bright one.

    Scans the first seconds at a few frames per second (cheap even for 4K), so the poster is
    ready about when the first segment is. A clip that is dark throughout still gets a poster:
    ``concat`` falls back to the best frame of all once the bright branch ends empty.
    """
    width = min(probe.width, 1280)
    height = max(2, round(probe.height * width / probe.width / 2) * 2)
    return (
        f"[{label_in}]trim=duration={POSTER_SCAN_S:g},fps={POSTER_SCAN_FPS},"
        f"scale={width}:{height}:flags=bicubic,setsar=1,split=2[pb][pa];"
        f"[pb]signalstats,metadata=mode=select:key=lavfi.signalstats.YAVG:value={POSTER_MIN_LUMA}"
        f":function=greater,thumbnail={POSTER_PICK}[bright];"
        f"[pa]thumbnail={POSTER_PICK * 2}[any];"
        f"[bright][any]concat=n=2:v=1:a=0[{label_out}]"
    )


def image_out_args(path: Path, quality: int = 3) -> list[str]:
    # atomic_writing: the pipeline may pick the poster up while ffmpeg is still running.
    return ["-frames:v", "1", "-q:v", str(quality), "-f", "image2", "-update", "1",
            "-atomic_writing", "1", f"file:{path}"]


def placeholder_args(tools: Tools, image: Path, out: Path, limits: Limits,
                     demuxer: str | None = None) -> list[str]:
    """A 16 px wide blurred JPEG, small enough to inline as base64 in an event.

    ``demuxer`` forces the input format (e.g. "jpeg_pipe" for our own poster, whose .jpg name
    would otherwise pick the image2 demuxer, which is not on the allow-list).
    """
    forced = ["-f", demuxer] if demuxer else []
    return [*_head(tools, limits), *forced, *_untrusted(image, limits), "-frames:v", "1",
            "-vf", "scale=16:-2:flags=area,gblur=sigma=1", "-q:v", "8", f"file:{out}"]


def phase1_args(tools: Tools, src: Path, playlist: Path, poster: Path, first: Rendition,
                segment_s: float, probe: Probe, limits: Limits) -> list[str]:
    """The fast rendition as a growing (EVENT) HLS playlist, and the poster, from one decode."""
    graph = ";".join([
        f"[{probe.video_ref}]split=2[f][p]",
        f"[f]fps={first.fps:g},{_scale(first.width, first.height)}[v]",
        _poster_graph(probe, "p", "poster"),
    ])
    argv = [*_head(tools, limits), *_untrusted(src, limits), "-filter_complex", graph,
            "-map", "[v]", *video_codec_args(first, segment_s, limits.threads)]
    if probe.has_audio and first.audio_kbps:
        argv += ["-map", probe.audio_ref, *audio_codec_args(first)]
    argv += ["-map_metadata", "-1", *hls_args(segment_s, playlist, "event")]
    return [*argv, "-map", "[poster]", "-map_metadata", "-1", *image_out_args(poster)]


@dataclass(frozen=True, slots=True)
class StoryboardGeometry:
    count: int
    interval_s: float
    columns: int
    rows: int
    tile_w: int
    tile_h: int


def storyboard_geometry(probe: Probe) -> StoryboardGeometry:
    interval = max(1.0, probe.duration_s / STORYBOARD_MAX_TILES)
    count = max(1, min(STORYBOARD_MAX_TILES, int(probe.duration_s / interval + 0.999)))
    columns = min(STORYBOARD_COLUMNS, count)
    rows = (count + columns - 1) // columns
    tile_h = max(2, round(STORYBOARD_TILE_W * probe.height / probe.width / 2) * 2)
    return StoryboardGeometry(count, round(interval, 3), columns, rows, STORYBOARD_TILE_W, tile_h)


def _preview_graph(probe: Probe, label_in: str, label_out: str) -> str:
    length = min(PREVIEW_S, probe.duration_s)
    start = max(0.0, min(probe.duration_s * 0.25, probe.duration_s - length))
    width = min(probe.width, 320) if probe.width >= probe.height else min(probe.width, 180)
    return (f"[{label_in}]trim=start={start:.3f}:duration={length:.3f},setpts=PTS-STARTPTS,fps=15,"
            f"scale={width}:-2:flags=bicubic,setsar=1,format=yuv420p[{label_out}]")


def _storyboard_graph(geo: StoryboardGeometry, label_in: str, label_out: str) -> str:
    return (f"[{label_in}]fps=1/{geo.interval_s:g},scale={geo.tile_w}:{geo.tile_h}:flags=bicubic,"
            f"setsar=1,tile={geo.columns}x{geo.rows}[{label_out}]")


def phase2_args(tools: Tools, src: Path, outdir: Path, plan: Plan, probe: Probe, limits: Limits,
                preview: Path | None = None, storyboard: Path | None = None) -> list[str]:
    """The whole ladder in one ffmpeg run: the source is decoded once and split, and the same
    decode feeds the animated preview (a short muted MP4 loop: smaller than an animated WebP,
    plays everywhere) and the storyboard sprite sheet."""
    n = len(plan.ladder)
    extra = [label for label, path in (("sp", preview), ("sb", storyboard)) if path is not None]
    graph = [f"[{probe.video_ref}]split={n + len(extra)}" + "".join(f"[s{i}]" for i in range(n))
             + "".join(f"[{label}]" for label in extra)]
    for i, r in enumerate(plan.ladder):
        graph.append(f"[s{i}]fps={r.fps:g},{_scale(r.width, r.height)}[v{i}]")
    if preview is not None:
        graph.append(_preview_graph(probe, "sp", "preview"))
    if storyboard is not None:
        graph.append(_storyboard_graph(storyboard_geometry(probe), "sb", "board"))
    with_audio = probe.has_audio and any(r.audio_kbps for r in plan.ladder)
    if with_audio:
        # Single-pass loudnorm to the usual streaming target; it resamples to 192 kHz internally.
        graph.append(f"[{probe.audio_ref}]loudnorm=I=-16:TP=-1.5:LRA=11,aresample=48000,"
                     f"asplit={n}" + "".join(f"[a{i}]" for i in range(n)))
    argv = [*_head(tools, limits), *_untrusted(src, limits), "-filter_complex", ";".join(graph)]
    for i, r in enumerate(plan.ladder):
        argv += ["-map", f"[v{i}]", *video_codec_args(r, plan.segment_s, limits.threads)]
        if with_audio:
            argv += ["-map", f"[a{i}]", *audio_codec_args(r)]
        argv += ["-map_metadata", "-1", *hls_args(plan.segment_s, outdir / r.name / "index.m3u8", "vod")]
    if preview is not None:
        argv += ["-map", "[preview]", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "30",
                 "-profile:v", "main", "-threads", str(limits.threads), "-movflags", "+faststart",
                 "-map_metadata", "-1", f"file:{preview}"]
    if storyboard is not None:
        argv += ["-map", "[board]", "-map_metadata", "-1", *image_out_args(storyboard, quality=5)]
    return argv


def image_args(tools: Tools, src: Path, outdir: Path, widths: tuple[int, ...], probe: Probe,
               limits: Limits) -> list[str]:
    """Every width as WebP and JPEG from one decode."""
    n = len(widths)
    graph = [f"[{probe.video_ref}]format=rgb24,split={n}" + "".join(f"[s{i}]" for i in range(n))]
    for i, w in enumerate(widths):
        graph.append(f"[s{i}]scale={w}:-2:flags=lanczos,split=2[w{i}][j{i}]")
    argv = [*_head(tools, limits), *_untrusted(src, limits), "-filter_complex", ";".join(graph)]
    for i, w in enumerate(widths):
        argv += ["-map", f"[w{i}]", "-frames:v", "1", "-c:v", "libwebp", "-quality", "80",
                 f"file:{outdir / f'{w}.webp'}"]
        argv += ["-map", f"[j{i}]", "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "3",
                 "-pix_fmt", "yuvj420p", f"file:{outdir / f'{w}.jpg'}"]
    return argv


async def run_ffmpeg(argv: list[str], *, timeout_s: float, limits: Limits, what: str,
                     ladder: bool = False, on_start: Callable[[int], None] | None = None) -> Completed:
    """Run an encode; a non-zero exit becomes EncodeFailed with ffmpeg's last words. The phase-2
    ``ladder`` encode runs on ``limits.ladder_cpus`` only."""
    done = await run_guarded(argv, timeout_s=timeout_s, nice=limits.nice, max_memory_bytes=limits.max_memory_bytes,
                             cpus=limits.ladder_cpus if ladder else "", on_start=on_start)
    if done.returncode != 0:
        raise EncodeFailed(f"{what}: ffmpeg exited {done.returncode}: {done.stderr_tail(300)}")
    return done


OnPlaylist = Callable[[MediaPlaylist], Awaitable[None]]


async def encode_growing(argv: list[str], playlist: Path, on_update: OnPlaylist, *, timeout_s: float,
                         limits: Limits, poll_s: float = 0.05, settled: Callable[[], bool] | None = None) -> float:
    """Run a growing-HLS encode and call ``on_update`` each time the playlist gains segments.

    ``on_update`` is awaited in order, never concurrently; the encode keeps running meanwhile.
    The last call carries the ended playlist (``#EXT-X-ENDLIST``). Returns the wall time.
    The encode starts on every CPU (its first segments decide the time to "good enough"); once
    ``settled()`` is true the rest is background work and moves to ``limits.ladder_cpus``.
    """
    started = time.monotonic()
    pids: list[int] = []
    encode = asyncio.create_task(run_ffmpeg(argv, timeout_s=timeout_s, limits=limits, what="phase 1",
                                            on_start=pids.append))
    count, ended, pinned = 0, False, settled is None
    try:
        while not ended:
            finished = encode.done()
            if finished:
                await encode  # raises EncodeFailed / ToolTimeout
            text = await asyncio.to_thread(_read_text, playlist)
            current = parse_media_playlist(text or "")
            if current.segments and (len(current.segments) > count or current.ended):
                count, ended = len(current.segments), current.ended
                await on_update(current)
                if not pinned and settled is not None and settled() and pids:
                    pinned = True
                    pin(pids[0], limits.ladder_cpus)
            if finished and not ended:
                raise EncodeFailed("phase 1 ended without a complete playlist")
            if not finished:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(encode), timeout=poll_s)
        await encode
        return time.monotonic() - started
    finally:
        if not encode.done():
            encode.cancel()
            with contextlib.suppress(BaseException):
                await encode


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
