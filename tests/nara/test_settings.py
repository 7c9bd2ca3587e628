"""NaraSettings defaults and the derived timeouts and backoff; where ffmpeg and ffprobe come from.
(Reading AMARO_NARA_* variables is the composition root's: tests/amaro.)"""

from __future__ import annotations

from pathlib import Path

from nara.settings import NaraSettings
from nara.tools import locate


def test_defaults() -> None:
    s = NaraSettings()
    assert (s.concurrency, s.max_attempts, s.claim_idle_s, s.keys.jobs) == (1, 3, 60.0, "nara:{jobs}")
    assert (s.limits.max_width, s.limits.max_fps, s.limits.max_duration_s) == (8192, 240.0, 900.0)
    assert s.backoff(1) == 5.0 and s.backoff(2) == 10.0 and s.backoff(10) == 60.0
    assert s.phase2_timeout(10.0, load=8.0) == 60.0 + 8.0 * 10.0 * 8.0


def test_tool_overrides(tmp_path: Path) -> None:
    ffmpeg, ffprobe = tmp_path / "ffmpeg", tmp_path / "ffprobe"
    ffmpeg.write_text("")
    ffprobe.write_text("")
    tools = locate(ffmpeg=ffmpeg, ffprobe=ffprobe)
    assert (tools.ffmpeg, tools.ffprobe) == (ffmpeg, ffprobe)
