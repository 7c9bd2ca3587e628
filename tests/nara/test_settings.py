"""Settings come from AMARO_NARA_* variables once, with documented defaults."""

from __future__ import annotations

from pathlib import Path

from nara.settings import NaraSettings
from nara.tools import locate


def test_defaults() -> None:
    s = NaraSettings.from_env({})
    assert (s.concurrency, s.max_attempts, s.claim_idle_s, s.keys.jobs) == (1, 3, 60.0, "nara:{jobs}")
    assert (s.limits.max_width, s.limits.max_fps, s.limits.max_duration_s) == (8192, 240.0, 900.0)
    assert s.backoff(1) == 5.0 and s.backoff(2) == 10.0 and s.backoff(10) == 60.0
    assert s.phase2_timeout(10.0, load=8.0) == 60.0 + 8.0 * 10.0 * 8.0


def test_overrides() -> None:
    s = NaraSettings.from_env({
        "AMARO_NARA_CONCURRENCY": "3", "AMARO_NARA_CONSUMER": "w-7", "AMARO_NARA_WORKDIR": "/tmp/x",
        "AMARO_NARA_MAX_DURATION_S": "60", "AMARO_NARA_THREADS": "1", "AMARO_NARA_CRF": "25",
        "AMARO_NARA_KEY_NAMESPACE": "staging:nara", "AMARO_NARA_MAX_ATTEMPTS": "5",
    })
    assert (s.concurrency, s.consumer, s.workdir, s.max_attempts) == (3, "w-7", Path("/tmp/x"), 5)
    assert (s.limits.max_duration_s, s.limits.threads) == (60.0, 1)
    assert (s.policy.crf, s.policy.crf_low_rungs) == (25, 26)
    assert s.keys.jobs == "staging:nara:{jobs}" and s.keys.dead == "staging:nara:{dead}"


def test_tool_overrides(tmp_path: Path) -> None:
    ffmpeg, ffprobe = tmp_path / "ffmpeg", tmp_path / "ffprobe"
    ffmpeg.write_text("")
    ffprobe.write_text("")
    tools = locate({"AMARO_FFMPEG": str(ffmpeg), "AMARO_FFPROBE": str(ffprobe)})
    assert (tools.ffmpeg, tools.ffprobe) == (ffmpeg, ffprobe)
