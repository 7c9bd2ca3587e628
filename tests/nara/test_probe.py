"""Probe and guard on real ffprobe: valid clips and every kind of bad input, each time-bounded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nara import errors
from nara.guard import Limits
from nara.probe import Probe, parse_probe, probe
from nara.tools import Tools

from .conftest import png_claiming

BOUND_S = 5.0


async def _reject(path: Path, tools: Tools, limits: Limits) -> errors.NaraError:
    started = time.monotonic()
    with pytest.raises(errors.NaraError) as info:
        await probe(path, tools, limits)
    assert time.monotonic() - started < BOUND_S
    return info.value


async def test_probe_valid_clip(clips: dict[str, Path], tools: Tools, limits: Limits) -> None:
    p = await probe(clips["av"], tools, limits)
    assert isinstance(p, Probe)
    assert (p.kind, p.width, p.height, p.rotation) == ("video", 320, 240, 0)
    assert p.fps == 30.0
    assert abs(p.duration_s - 3.0) < 0.1
    assert p.codec == "h264" and p.pix_fmt == "yuv420p"
    assert p.has_audio and p.audio_codec == "aac" and p.audio_sample_rate == 48000
    assert p.frames == 90


async def test_probe_rotation_swaps_display_size(
    clips: dict[str, Path], tools: Tools, limits: Limits
) -> None:
    p = await probe(clips["rotated"], tools, limits)
    assert p.rotation in (90, 270)
    assert (p.width, p.height) == (240, 320)
    assert (p.coded_width, p.coded_height) == (320, 240)


async def test_probe_mpegts_upload(tools: Tools, limits: Limits, tmp_path: Path) -> None:
    """Regression: the static ffprobe 6.0 segfaults on MPEG-TS unless iconv is kept off gconv."""
    from .conftest import make_clip

    clip = make_clip(tools, tmp_path / "clip.ts", seconds=1.0)
    f = tmp_path / "source"
    f.write_bytes(clip.read_bytes())
    p = await probe(f, tools, limits)
    assert (p.container, p.width, p.height, p.has_audio) == ("mpegts", 320, 240, True)


async def test_zero_length(tmp_path: Path, tools: Tools, limits: Limits) -> None:
    f = tmp_path / "source"
    f.write_bytes(b"")
    assert (await _reject(f, tools, limits)).reason == "empty"


async def test_random_bytes_named_mp4(tmp_path: Path, tools: Tools, limits: Limits) -> None:
    f = tmp_path / "random.mp4"
    f.write_bytes(bytes((i * 7919 + 13) % 251 for i in range(50_000)))
    assert (await _reject(f, tools, limits)).reason == "not_media"


async def test_truncated(clips: dict[str, Path], tmp_path: Path, tools: Tools, limits: Limits) -> None:
    f = tmp_path / "source"
    f.write_bytes(clips["av"].read_bytes()[:20_000])
    assert (await _reject(f, tools, limits)).reason == "truncated"


async def test_truncated_faststart(tools: Tools, limits: Limits, tmp_path: Path) -> None:
    """The index is intact (moov first) but the media data is cut: refused before encoding."""
    from .conftest import make_clip

    clip = make_clip(tools, tmp_path / "fs.mp4", seconds=4.0, extra=("-movflags", "+faststart"))
    f = tmp_path / "source"
    data = clip.read_bytes()
    f.write_bytes(data[: len(data) * 2 // 5])
    assert (await _reject(f, tools, limits)).reason == "truncated"


async def test_audio_only(clips: dict[str, Path], tools: Tools, limits: Limits) -> None:
    err = await _reject(clips["audio_only"], tools, limits)
    assert err.reason == "no_video_stream"
    assert "audio-only" in err.detail


async def _secret(tmp_path: Path, clips: dict[str, Path]) -> Path:
    # A file outside the job input that a hostile playlist tries to pull in.
    secret = tmp_path / "outside" / "secret.mp4"
    secret.parent.mkdir()
    secret.write_bytes(clips["av"].read_bytes())
    return secret


@pytest.mark.parametrize("prefix", [b"", b"\n\n", b"\xef\xbb\xbf"])
async def test_hls_playlist_disguised(
    prefix: bytes, clips: dict[str, Path], tmp_path: Path, tools: Tools, limits: Limits
) -> None:
    secret = await _secret(tmp_path, clips)
    f = tmp_path / "clip.mp4"
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3,\n{secret}\n#EXT-X-ENDLIST\n"
    f.write_bytes(prefix + playlist.encode())
    atime = secret.stat().st_atime_ns
    assert (await _reject(f, tools, limits)).reason == "playlist_rejected"
    assert secret.stat().st_atime_ns == atime


async def test_hls_playlist_past_the_sniffer_still_rejected_by_demuxer_whitelist(
    clips: dict[str, Path], tmp_path: Path, tools: Tools, limits: Limits
) -> None:
    """Defence in depth: even if the sniffer missed it, the demuxer allow-list refuses hls."""
    from nara.guard import input_args, run_guarded
    from nara.probe import classify_failure

    secret = await _secret(tmp_path, clips)
    f = tmp_path / "clip.mp4"
    f.write_bytes(f"#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3,\n{secret}\n#EXT-X-ENDLIST\n".encode())
    atime = secret.stat().st_atime_ns
    done = await run_guarded(
        [str(tools.ffprobe), "-v", "error", "-of", "json", "-show_streams", *input_args(f)], timeout_s=5
    )
    assert done.returncode != 0
    assert classify_failure(done, b"").reason == "playlist_rejected"
    assert secret.stat().st_atime_ns == atime


async def test_concat_script_disguised(
    clips: dict[str, Path], tmp_path: Path, tools: Tools, limits: Limits
) -> None:
    secret = await _secret(tmp_path, clips)
    f = tmp_path / "video.mp4"
    f.write_bytes(f"ffconcat version 1.0\nfile '{secret}'\n".encode())
    assert (await _reject(f, tools, limits)).reason == "playlist_rejected"


def test_sniffer_markers(tmp_path: Path, limits: Limits) -> None:
    from nara.guard import sniff

    cases = {
        b"#EXTM3U\n": True, b"\r\n#extm3u\n": True, b"ffconcat version 1.0\n": True,
        b"garbage\n#EXTINF:2,\nfile.ts\n": True, b'<?xml version="1.0"?>\n<MPD xmlns="x">': True,
        b'<?xml version="1.0"?>\n<svg xmlns="x"/>': False, b"\x00\x00\x00\x18ftypmp42": False,
    }
    for payload, rejected in cases.items():
        f = tmp_path / "source"
        f.write_bytes(payload)
        if rejected:
            with pytest.raises(errors.PlaylistRejected):
                sniff(f, limits)
        else:
            assert sniff(f, limits) == (payload, len(payload))


async def test_absurd_png_dimensions(tmp_path: Path, tools: Tools, limits: Limits) -> None:
    f = tmp_path / "source"
    f.write_bytes(png_claiming(30000, 30000))
    assert (await _reject(f, tools, limits)).reason == "too_large_dimensions"


async def test_png_over_limit_but_decodable_size(tmp_path: Path, tools: Tools, limits: Limits) -> None:
    f = tmp_path / "source"
    f.write_bytes(png_claiming(9000, 100))
    assert (await _reject(f, tools, limits)).reason == "too_large_dimensions"


async def test_1000_fps_claim(clips: dict[str, Path], tools: Tools, limits: Limits) -> None:
    assert (await _reject(clips["fps1000"], tools, limits)).reason == "fps_out_of_range"


async def test_too_long_against_tighter_limits(clips: dict[str, Path], tools: Tools) -> None:
    err = await _reject(clips["six"], tools, Limits(max_duration_s=5.0))
    assert err.reason == "too_long"


async def test_probe_timeout_kills(clips: dict[str, Path], tools: Tools) -> None:
    err = await _reject(clips["av"], tools, Limits(probe_timeout_s=0.001))
    assert err.reason == "timeout"


def test_parse_limits_pure() -> None:
    doc = {
        "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "10.0"},
        "streams": [{"codec_type": "video", "width": 1920, "height": 1080, "avg_frame_rate": "30/1",
                     "codec_name": "h264", "side_data_list": [{"rotation": -90}]}],
    }
    p = parse_probe(doc, Limits())
    assert (p.width, p.height, p.rotation, p.frames, p.has_audio) == (1080, 1920, 90, 300, False)
    with pytest.raises(errors.TooManyFrames):
        parse_probe(doc, Limits(max_frames=100))
    with pytest.raises(errors.TooHeavy):
        parse_probe(doc, Limits(max_total_pixels=1920 * 1080 * 299))
    assert p.load == 1.0
    doc["streams"][0]["width"] = 30000  # type: ignore[index]
    with pytest.raises(errors.TooLargeDimensions):
        parse_probe(doc, Limits())


def test_image_probe_pure() -> None:
    doc = {"format": {"format_name": "png_pipe"},
           "streams": [{"codec_type": "video", "codec_name": "png", "width": 640, "height": 480,
                        "avg_frame_rate": "0/0", "r_frame_rate": "25/1"}]}
    p = parse_probe(doc, Limits())
    assert (p.kind, p.frames, p.duration_s) == ("image", 1, 0.0)


def test_cover_art_is_not_the_video() -> None:
    cover = {"index": 0, "codec_type": "video", "codec_name": "mjpeg", "width": 600, "height": 600,
             "disposition": {"attached_pic": 1}}
    video = {"index": 1, "codec_type": "video", "codec_name": "h264", "width": 1280, "height": 720,
             "avg_frame_rate": "25/1"}
    audio = {"index": 2, "codec_type": "audio", "codec_name": "aac", "channels": 2, "sample_rate": "44100"}
    fmt = {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "4.0"}
    p = parse_probe({"format": fmt, "streams": [cover, video, audio]}, Limits())
    assert (p.video_ref, p.audio_ref, p.width, p.fps) == ("0:1", "0:2", 1280, 25.0)
    with pytest.raises(errors.NoVideoStream):  # a song with its album cover
        parse_probe({"format": fmt, "streams": [cover, audio]}, Limits())
