"""The planner is pure: probes and statistics in, plans out. No ffmpeg here."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from nara.planner import Audience, Policy, complexity_factor, plan, plan_from_dict
from nara.probe import Probe


def src(width: int = 1920, height: int = 1080, fps: float = 30.0, *, audio: bool = True,
        bitrate: int = 20_000_000, rotation: int = 0) -> Probe:
    return Probe(kind="video", container="mov,mp4,m4a,3gp,3g2,mj2", width=width, height=height,
                 coded_width=width, coded_height=height, rotation=rotation, fps=fps, duration_s=60.0,
                 frames=int(60 * fps), codec="h264", profile="High", pix_fmt="yuv420p", bitrate=bitrate,
                 size_bytes=1, has_audio=audio, audio_codec="aac" if audio else "",
                 audio_channels=2 if audio else 0, audio_sample_rate=48000 if audio else 0)


@pytest.mark.parametrize(("w", "h"), [(1920, 1080), (1080, 1920), (1280, 720), (640, 360), (3840, 2160),
                                      (426, 240), (200, 120), (1000, 1000)])
def test_never_upscales_and_ladder_is_monotone(w: int, h: int) -> None:
    p = plan(src(w, h), 0.1, None, Audience())
    assert p.ladder
    for r in p.ladder:
        assert r.width <= w and r.height <= h
        assert r.width % 2 == 0 and r.height % 2 == 0
    sides = [min(r.width, r.height) for r in p.ladder]
    assert sides == sorted(sides) and len(set(sides)) == len(sides)
    rates = [r.video_kbps for r in p.ladder]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    assert p.first is not None and min(p.first.width, p.first.height) <= 360


def test_portrait_keeps_orientation() -> None:
    p = plan(src(1080, 1920), 0.1, None, Audience())
    assert all(r.height > r.width for r in p.ladder)
    assert p.ladder[-1].width == 1080 and p.ladder[-1].height == 1920


def test_reasons_explain_skipped_rungs() -> None:
    p = plan(src(1280, 720), 0.1, None, Audience())
    assert [r.name for r in p.ladder] == ["240p", "360p", "480p", "720p"]
    assert any("never upscale" in reason for reason in p.reasons)
    assert any("GOP 2s" in reason for reason in p.reasons)


def test_complexity_scales_bitrates() -> None:
    easy = plan(src(), 0.02, None, Audience())
    hard = plan(src(), 0.4, None, Audience())
    assert all(e.video_kbps < h.video_kbps for e, h in zip(easy.ladder, hard.ladder, strict=True))
    assert complexity_factor(None, Policy()) == 1.0
    assert complexity_factor(1e9, Policy()) == Policy().max_complexity_factor
    assert complexity_factor(1e-9, Policy()) == Policy().min_complexity_factor


def test_frame_rate_normalized() -> None:
    p60 = plan(src(fps=60.0), 0.1, None, Audience())
    by_name = {r.name: r for r in p60.ladder}
    assert by_name["1080p60"].fps == 60.0 and by_name["720p60"].fps == 60.0
    assert by_name["480p"].fps == 30.0 and by_name["240p"].fps == 30.0
    assert p60.first is not None and p60.first.fps == 30.0
    p50 = plan(src(fps=50.0), 0.1, None, Audience())
    assert {r.fps for r in p50.ladder if min(r.width, r.height) < 720} == {25.0}
    p24 = plan(src(fps=23.976), 0.1, None, Audience())
    assert {r.fps for r in p24.ladder} == {23.976}
    slideshow = plan(src(fps=0.5), 0.1, None, Audience())
    assert {r.fps for r in slideshow.ladder} == {15.0}
    assert all(r.gop_frames == 30 for r in slideshow.ladder)


def test_gop_is_two_seconds_everywhere() -> None:
    p = plan(src(fps=60.0), 0.1, None, Audience())
    assert p.first is not None
    for r in (*p.ladder, p.first):
        assert r.gop_frames == round(r.fps * p.segment_s)


def test_profiles_by_rung() -> None:
    p = plan(src(3840, 2160), 0.1, None, Audience(device_shares={"tv": 0.5, "phone": 0.5}))
    profiles = {min(r.width, r.height): r.profile for r in p.ladder}
    assert profiles[240] == profiles[360] == "baseline"
    assert profiles[480] == profiles[720] == "main"
    assert profiles[1080] == "high" and profiles[2160] == "high"
    assert p.ladder[0].codecs.startswith("avc1.42c0")


def test_audience_caps_top_rung() -> None:
    phones_only = Audience(device_shares={"phone": 1.0})
    p = plan(src(3840, 2160), 0.1, None, phones_only)
    assert max(min(r.width, r.height) for r in p.ladder) == 1080
    assert any("audience device class" in reason for reason in p.reasons)
    thin = Audience(bandwidth_p90_bps=3_000_000)
    p = plan(src(1920, 1080), 0.1, None, thin)
    assert all(r.video_kbps * 1000 <= 3_000_000 / Policy().bandwidth_headroom for r in p.ladder[1:])
    assert any("p90 bandwidth" in reason for reason in p.reasons)


def test_slow_uplink_makes_fast_rendition_smaller() -> None:
    fast = plan(src(), 0.1, 20_000_000, Audience())
    slow = plan(src(), 0.1, 500_000, Audience())
    assert fast.first is not None and slow.first is not None
    assert min(slow.first.width, slow.first.height) < min(fast.first.width, fast.first.height)
    assert any("uplink" in reason for reason in slow.reasons)


def test_no_audio_means_no_audio_bitrate() -> None:
    p = plan(src(audio=False), 0.1, None, Audience())
    assert all(r.audio_kbps == 0 for r in p.ladder)
    assert "mp4a" not in p.ladder[0].codecs


def test_plan_round_trips_and_hash_is_stable() -> None:
    p = plan(src(), 0.123, 5_000_000, Audience())
    again = plan_from_dict(orjson.loads(p.to_json()))
    assert again == p and again.plan_id == p.plan_id
    other = plan(src(), 0.3, 5_000_000, Audience())
    assert other.plan_id != p.plan_id


def test_image_plan() -> None:
    img = dataclasses.replace(src(800, 600), kind="image", fps=0.0, duration_s=0.0, frames=1)
    p = plan(img, None, None, Audience())
    assert p.kind == "image" and p.ladder == () and p.first is None
    assert p.image_widths == (320, 640, 800)
