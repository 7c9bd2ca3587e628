"""ffmpeg argument builders (pure) and the growing phase-1 playlist on real ffmpeg."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nara import transcode as tx
from nara.guard import ALLOWED_DEMUXERS, Limits
from nara.hls import MediaPlaylist, parse_media_playlist, storyboard_vtt
from nara.planner import Audience, first_rendition, plan
from nara.probe import probe
from nara.tools import Tools

from .conftest import make_clip
from .test_planner import src


def _assert_guarded(argv: list[str], limits: Limits) -> None:
    i = argv.index("-i")
    assert argv[i + 1].startswith("file:")
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"
    allowed = argv[argv.index("-format_whitelist") + 1].split(",")
    assert set(allowed) == set(ALLOWED_DEMUXERS)
    assert not {"hls", "concat", "image2", "dash"} & set(allowed)
    assert argv.index("-protocol_whitelist") < i and argv.index("-format_whitelist") < i
    assert argv[argv.index("-threads") + 1] == str(limits.threads)
    assert "-max_pixels" in argv[:i]


def test_every_builder_guards_its_input(tmp_path: Path) -> None:
    tools = Tools(Path("/bin/ffmpeg"), Path("/bin/ffprobe"))
    limits = Limits(threads=2)
    s = tmp_path / "source"
    p = src(1280, 720)
    the_plan = plan(p, 0.1, None, Audience())
    builders = [
        tx.phase1_args(tools, s, tmp_path / "fast" / "index.m3u8", tmp_path / "poster.jpg",
                       first_rendition(p, None)[0], 2.0, p, limits),
        tx.phase2_args(tools, s, tmp_path, the_plan, p, limits, tmp_path / "pv.mp4", tmp_path / "sb.jpg"),
        tx.placeholder_args(tools, s, tmp_path / "ph.jpg", limits),
    ]
    for argv in builders:
        _assert_guarded(argv, limits)


def test_ladder_args_align_keyframes_and_cap_rates(tmp_path: Path) -> None:
    tools = Tools(Path("/bin/ffmpeg"), Path("/bin/ffprobe"))
    p = src(1280, 720, fps=60.0)
    the_plan = plan(p, 0.1, None, Audience())
    argv = tx.phase2_args(tools, tmp_path / "source", tmp_path, the_plan, p, Limits())
    assert argv.count("-force_key_frames") == len(the_plan.ladder)
    assert all(argv[i + 1] == "expr:gte(t,n_forced*2)" for i, a in enumerate(argv) if a == "-force_key_frames")
    assert argv.count("-sc_threshold") == len(the_plan.ladder)
    graph = argv[argv.index("-filter_complex") + 1]
    assert f"split={len(the_plan.ladder)}" in graph and "loudnorm" in graph
    for r in the_plan.ladder:
        assert f"fps={r.fps:g},scale={r.width}:{r.height}" in graph
        assert f"{r.video_kbps}k" in argv
        assert str(tmp_path / r.name / "index.m3u8") in argv
    assert argv.count("vod") == len(the_plan.ladder)


def test_phase1_is_an_event_playlist(tmp_path: Path) -> None:
    tools = Tools(Path("/bin/ffmpeg"), Path("/bin/ffprobe"))
    p = src(640, 360)
    the_plan = plan(p, 0.1, None, Audience())
    assert the_plan.first is not None
    argv = tx.phase1_args(tools, tmp_path / "source", tmp_path / "index.m3u8", tmp_path / "poster.jpg",
                          the_plan.first, the_plan.segment_s, p, Limits())
    assert argv[argv.index("-hls_playlist_type") + 1] == "event"
    assert "atomic_writing" in " ".join(argv) and "signalstats" in " ".join(argv)
    assert argv[argv.index("-hls_time") + 1] == "2"
    assert "independent_segments+temp_file" in argv


def test_codecs_from_sps() -> None:
    from nara.hls import avc_codecs_from_segment

    ts = b"\x47" * 10 + b"\x00\x00\x00\x01\x67\x64\x00\x28\xac" + b"\x00" * 10
    assert avc_codecs_from_segment(ts, True) == "avc1.640028,mp4a.40.2"
    assert avc_codecs_from_segment(ts, False) == "avc1.640028"
    assert avc_codecs_from_segment(b"\x47" * 400, False) is None


def test_media_playlist_parse_and_vtt() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00000.ts\n#EXTINF:1.5,\nseg_00001.ts\n"
    m = parse_media_playlist(text)
    assert [s.uri for s in m.segments] == ["seg_00000.ts", "seg_00001.ts"] and not m.ended
    assert parse_media_playlist(text + "#EXT-X-ENDLIST\n").ended
    vtt = storyboard_vtt(3, 1.0, 2, 160, 90, "sb.jpg", 2.5)
    assert vtt.startswith("WEBVTT")
    assert "00:00:01.000 --> 00:00:02.000\nsb.jpg#xywh=160,0,160,90" in vtt
    assert "00:00:02.000 --> 00:00:02.500\nsb.jpg#xywh=0,90,160,90" in vtt


@pytest.fixture(scope="module")
def long_clip(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("long")
    clip = make_clip(tools, d / "long.mp4", seconds=30.0, size="640x360")
    bare = d / "source"
    bare.write_bytes(clip.read_bytes())
    return bare


async def test_phase1_playlist_grows_before_encode_ends(
    long_clip: Path, tools: Tools, limits: Limits, tmp_path: Path
) -> None:
    p = await probe(long_clip, tools, limits)
    the_plan = plan(p, 0.1, None, Audience())
    playlist = tmp_path / "fast" / "index.m3u8"
    playlist.parent.mkdir()
    seen: list[tuple[float, MediaPlaylist]] = []

    async def on_update(current: MediaPlaylist) -> None:
        # Every segment the playlist names must already be complete on disk.
        for seg in current.segments:
            assert (playlist.parent / seg.uri).stat().st_size > 0
        seen.append((time.monotonic(), current))

    assert the_plan.first is not None
    argv = tx.phase1_args(tools, long_clip, playlist, tmp_path / "poster.jpg", the_plan.first,
                          the_plan.segment_s, p, limits)
    started = time.monotonic()
    wall = await tx.encode_growing(argv, playlist, on_update, timeout_s=60, limits=limits, poll_s=0.02)
    ended_at = started + wall
    first_at, first = seen[0]
    assert not first.ended and len(first.segments) >= 1
    assert first_at < ended_at - 0.1
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in first.text
    counts = [len(m.segments) for _, m in seen]
    assert counts == sorted(counts) and len(set(counts)) >= 3
    last = seen[-1][1]
    assert last.ended and abs(last.duration_s - p.duration_s) <= the_plan.segment_s


async def test_encode_timeout_kills_ffmpeg(long_clip: Path, tools: Tools, limits: Limits, tmp_path: Path) -> None:
    from nara.errors import ToolTimeout

    p = await probe(long_clip, tools, limits)
    the_plan = plan(p, 0.1, None, Audience())
    out = tmp_path / "ladder"
    for r in the_plan.ladder:
        (out / r.name).mkdir(parents=True)
    started = time.monotonic()
    with pytest.raises(ToolTimeout):
        await tx.run_ffmpeg(tx.phase2_args(tools, long_clip, out, the_plan, p, limits),
                            timeout_s=0.5, limits=limits, what="ladder")
    assert time.monotonic() - started < 3.0
