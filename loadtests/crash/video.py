"""Phone-like raw videos for the uploaders, generated with the project's ffmpeg and cached.

A phone writes high-bitrate files: 1080p or 4K, H.264 or HEVC, portrait ones as landscape pixels
plus a display rotation. Here: lavfi `testsrc2` motion with temporal grain (so the encoder really
spends the bits, like a sensor's noise), a tone, `-preset ultrafast` at a constant bitrate for at
most `BASE_S` seconds, then a stream-copy remux that loops that base to the clip's length (4K HEVC
encodes at a few frames a second on two cores: a 200 MB file made whole would take ten minutes)
and sets the display rotation. Files are cached under a folder, named by
their parameters, and made once, before the run starts (ffmpeg runs as a child process).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from loadtests.crash.model import Clip
from loadtests.media import run_ffmpeg
from nara.tools import locate

GRAIN = 12
BASE_S = 4.0


def default_cache() -> Path:
    return Path(tempfile.gettempdir()) / "amaro-crash-clips"


async def _ffmpeg(args: list[str], timeout_s: float) -> None:
    await run_ffmpeg(["-loglevel", "error", *args], timeout_s, exe=str(locate().ffmpeg))


def _codec_args(clip: Clip) -> list[str]:
    rate = f"{clip.mbps:g}M"
    if clip.codec == "hevc":
        return ["-c:v", "libx265", "-preset", "ultrafast", "-b:v", rate, "-maxrate", rate,
                "-bufsize", f"{clip.mbps * 2:g}M", "-x265-params", "log-level=error:strict-cbr=1",
                "-tag:v", "hvc1"]
    return ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", rate, "-minrate", rate, "-maxrate", rate,
            "-bufsize", f"{clip.mbps * 2:g}M", "-x264-params", "nal-hrd=cbr"]


async def make_clip(clip: Clip, folder: Path, timeout_s: float = 1800.0) -> Path:
    """The clip's file, generated unless the cache has it."""
    out = folder / f"{clip.key}.mp4"
    if out.exists() and out.stat().st_size > 0:
        return out
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    coded = folder / f".{clip.key}.{os.getpid()}.coded.mp4"
    staged = folder / f".{clip.key}.{os.getpid()}.mp4"
    base = min(clip.seconds, BASE_S)
    try:
        await _ffmpeg([
            "-f", "lavfi", "-i", f"testsrc2=size={clip.width}x{clip.height}:rate={clip.fps}:duration={base:g}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={base:g}",
            "-vf", f"noise=alls={GRAIN}:allf=t", *_codec_args(clip), "-pix_fmt", "yuv420p", "-g", str(clip.fps),
            "-c:a", "aac", "-b:a", "128k", "-shortest", str(coded),
        ], timeout_s)
        rotation = ["-display_rotation:v:0", str(clip.rotate)] if clip.rotate else []
        await _ffmpeg(["-stream_loop", "-1", *rotation, "-i", str(coded), "-t", f"{clip.seconds:g}", "-c", "copy",
                       "-movflags", "+faststart", str(staged)], timeout_s)
        await asyncio.to_thread(staged.rename, out)  # whole files only: a cut-off run leaves no bad cache entry
    finally:
        for leftover in (coded, staged):
            leftover.unlink(missing_ok=True)
    return out


async def make_clips(clips: list[Clip], folder: Path) -> list[Path]:
    """One file per clip, distinct clips made one after the other (each ffmpeg uses every core)."""
    made: dict[str, Path] = {}
    for clip in clips:
        if clip.key not in made:
            made[clip.key] = await make_clip(clip, folder)
    return [made[c.key] for c in clips]
