"""Per-title complexity: a short constant-quality sample encode from the middle of the source.

The measure is bits per pixel per frame at a fixed CRF with x264 ultrafast: a talking head
compresses to a fraction of what a street dance with confetti needs, and the planner scales the
ladder's bitrates by it. Cheap on purpose: a 2 s sample at <= 360p costs well under a second.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nara.guard import Limits, input_args, run_guarded
from nara.probe import Probe
from nara.tools import Tools

SAMPLE_S = 2.0
SAMPLE_SHORT_SIDE = 360
SAMPLE_CRF = 23


def sample_window(probe: Probe, sample_s: float = SAMPLE_S) -> tuple[float, float]:
    """(start, length) of the sample: centred, never past the end."""
    length = min(sample_s, probe.duration_s)
    start = max(0.0, probe.duration_s / 2.0 - length / 2.0)
    return round(start, 3), round(length, 3)


def sample_size(probe: Probe) -> tuple[int, int]:
    short = min(probe.width, probe.height, SAMPLE_SHORT_SIDE)
    scale = short / min(probe.width, probe.height)
    return max(2, round(probe.width * scale / 2) * 2), max(2, round(probe.height * scale / 2) * 2)


def sample_args(tools: Tools, src: Path, out: Path, probe: Probe, threads: int) -> list[str]:
    start, length = sample_window(probe)
    width, height = sample_size(probe)
    return [
        str(tools.ffmpeg), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-threads", str(threads), "-ss", f"{start}", "-t", f"{length}", *input_args(src),
        "-map", probe.video_ref, "-an", "-sn", "-dn",
        "-vf", f"scale={width}:{height}:flags=bicubic,format=yuv420p",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", str(SAMPLE_CRF), "-threads", str(threads),
        "-f", "h264", f"file:{out}",
    ]


def bits_per_pixel(size_bytes: int, width: int, height: int, fps: float, seconds: float) -> float:
    frames = max(1.0, fps * seconds)
    return size_bytes * 8.0 / (width * height * frames)


async def measure(src: Path, workdir: Path, probe: Probe, tools: Tools, limits: Limits) -> float | None:
    """Bits per pixel per frame of the sample, or None for stills and clips too short to sample."""
    if probe.kind != "video" or probe.duration_s < 0.5:
        return None
    out = workdir / "complexity.h264"
    argv = sample_args(tools, src, out, probe, limits.threads)
    done = await run_guarded(argv, timeout_s=limits.probe_timeout_s * 2, nice=limits.nice,
                             # after good enough, off its path: background CPUs like the ladder
                             max_memory_bytes=limits.max_memory_bytes, cpus=limits.ladder_cpus)
    size = await asyncio.to_thread(lambda: out.stat().st_size if out.exists() else 0)
    await asyncio.to_thread(out.unlink, True)
    if done.returncode != 0 or size == 0:
        return None  # the full encode will report a real failure; the plan falls back to typical
    _, length = sample_window(probe)
    width, height = sample_size(probe)
    return round(bits_per_pixel(size, width, height, probe.fps, length), 5)
