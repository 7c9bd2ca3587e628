"""The per-title complexity sample on real ffmpeg: busy content measures higher than calm content."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from nara.complexity import measure, sample_window
from nara.guard import Limits
from nara.planner import Audience, plan
from nara.probe import probe
from nara.tools import Tools

from .test_planner import src


def _clip(tools: Tools, path: Path, source: str) -> Path:
    subprocess.run(
        [str(tools.ffmpeg), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
         "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4",
         str(path)],
        check=True, timeout=60,
    )
    return path


async def test_busy_content_costs_more_bits(tools: Tools, limits: Limits, tmp_path: Path) -> None:
    calm = _clip(tools, tmp_path / "calm", "color=c=0x336699:size=640x360:rate=30")
    busy = _clip(tools, tmp_path / "busy", "testsrc2=size=640x360:rate=30,noise=alls=40:allf=t")
    bpp = {}
    for name, path in (("calm", calm), ("busy", busy)):
        p = await probe(path, tools, limits)
        value = await measure(path, tmp_path, p, tools, limits)
        assert value is not None and value > 0
        bpp[name] = value
    assert bpp["busy"] > 10 * bpp["calm"]
    calm_plan = plan(await probe(calm, tools, limits), bpp["calm"], None, Audience())
    busy_plan = plan(await probe(busy, tools, limits), bpp["busy"], None, Audience())
    assert calm_plan.ladder[-1].video_kbps < busy_plan.ladder[-1].video_kbps
    assert not list(tmp_path.glob("complexity.*"))  # the sample is cleaned up


def test_sample_window_is_centred_and_bounded() -> None:
    assert sample_window(src()) == (29.0, 2.0)
    assert sample_window(dataclasses.replace(src(), duration_s=1.0)) == (0.0, 1.0)
