"""run_job end to end on real ffmpeg, with a local store and a recording sink (no Redis)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from nara.errors import NaraError
from nara.guard import child_env
from nara.job import Job
from nara.pipeline import Context, Outputs, run_job
from nara.settings import NaraSettings
from nara.storage import LocalStore
from nara.tools import Tools

from .conftest import jpeg_with_orientation, make_clip
from .sinks import RecordingSink


def _ffprobe(tools: Tools, path: Path, *extra: str) -> dict[str, object]:
    out = subprocess.run(
        [str(tools.ffprobe), "-v", "error", "-of", "json", *extra, str(path)],
        check=True, capture_output=True, timeout=30, env=child_env(),
    )
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


@pytest.fixture
def ctx(tmp_path: Path, tools: Tools) -> Context:
    settings = NaraSettings(workdir=tmp_path / "work")
    return Context(settings, tools, LocalStore(tmp_path / "store"), RecordingSink())


async def _run(ctx: Context, source: Path, upload_id: str = "up1") -> tuple[dict[str, object], Path]:
    store = ctx.store
    assert isinstance(store, LocalStore)
    dest = store.path_of(f"uploads/{upload_id}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(source.read_bytes())
    job = Job(upload_id, upload_id, "u1", "p1", f"uploads/{upload_id}", "video/mp4", dest.stat().st_size)
    return await run_job(job, ctx), store.root


async def test_two_phases_master_playlist_and_extras(ctx: Context, tools: Tools, tmp_path: Path) -> None:
    clip = make_clip(tools, tmp_path / "wide.mp4", seconds=5.0, size="640x360")
    data, root = await _run(ctx, clip)
    sink = ctx.sink
    assert isinstance(sink, RecordingSink)
    assert sink.phases() == ["good_enough", "upgraded"]
    good = sink.events[0].data
    assert str(good["placeholder"]).startswith("data:image/jpeg;base64,")
    assert (root / str(good["poster"])).stat().st_size > 1000
    fast = (root / str(good["playlist"])).read_text()
    assert "#EXT-X-ENDLIST" in fast  # the stored growing playlist ended with the encode

    master = root / str(data["master"])
    text = master.read_text()
    for attr in ("BANDWIDTH=", "AVERAGE-BANDWIDTH=", "RESOLUTION=", "CODECS=", "FRAME-RATE="):
        assert attr in text
    renditions = data["renditions"]
    assert isinstance(renditions, list) and [r["name"] for r in renditions] == ["240p", "360p"]
    # CODECS read back from the encoded SPS: x264 baseline is constrained baseline, level 3.0.
    assert [r["codecs"] for r in renditions] == ["avc1.42c01e,mp4a.40.2"] * 2
    assert 'CODECS="avc1.42c01e,mp4a.40.2"' in text
    doc = _ffprobe(tools, master, "-show_streams")
    streams = doc["streams"]
    assert isinstance(streams, list)
    sizes = {(s["width"], s["height"]) for s in streams if s["codec_type"] == "video"}
    assert sizes == {(426, 240), (640, 360)}
    assert any(s["codec_type"] == "audio" for s in streams)
    for r in renditions:
        fmt = _ffprobe(tools, root / r["playlist"], "-show_format")["format"]
        assert isinstance(fmt, dict)
        assert abs(float(fmt["duration"]) - 5.0) <= 2.0  # within one segment of the source
    preview = _ffprobe(tools, root / str(data["preview"]), "-show_streams", "-show_format")
    assert isinstance(preview["streams"], list) and len(preview["streams"]) == 1  # muted
    assert isinstance(preview["format"], dict) and 2.5 <= float(preview["format"]["duration"]) <= 3.5
    board = data["storyboard"]
    assert isinstance(board, dict)
    vtt = (root / board["vtt"]).read_text()
    assert vtt.startswith("WEBVTT") and vtt.count("#xywh=") == 5
    sprite = _ffprobe(tools, root / board["sprite"], "-f", "jpeg_pipe", "-show_streams")["streams"]
    assert isinstance(sprite, list) and (sprite[0]["width"], sprite[0]["height"]) == (5 * 160, 90)
    plan_doc = json.loads((root / Outputs.plan_key("up1")).read_text())
    assert plan_doc["reasons"] and str(data["master"]).startswith(f"media/up1/{data['plan_id']}/")
    assert not (ctx.settings.workdir / "up1").exists()  # work directory cleaned


async def test_rotation_applied_and_not_signalled(ctx: Context, tools: Tools, clips: dict[str, Path]) -> None:
    data, root = await _run(ctx, clips["rotated"])
    renditions = data["renditions"]
    assert isinstance(renditions, list)
    top = renditions[-1]
    assert (top["width"], top["height"]) == (240, 320)
    doc = _ffprobe(tools, root / top["playlist"], "-show_streams")
    streams = doc["streams"]
    assert isinstance(streams, list)
    video = next(s for s in streams if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (240, 320)
    assert not any("rotation" in side for side in video.get("side_data_list", []))


async def test_poster_skips_black_opening(ctx: Context, tools: Tools, tmp_path: Path) -> None:
    clip = tmp_path / "fade.mp4"
    subprocess.run(
        [str(tools.ffmpeg), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "testsrc2=size=320x240:rate=30,fade=in:st=0:d=2.5", "-t", "4", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)],
        check=True, timeout=30,
    )
    await _run(ctx, clip)
    sink = ctx.sink
    assert isinstance(sink, RecordingSink)
    poster = ctx.store.path_of(str(sink.events[0].data["poster"]))  # type: ignore[attr-defined]
    frames = _ffprobe(tools, Path(f"movie={poster},signalstats"), "-f", "lavfi",
                      "-show_entries", "frame_tags=lavfi.signalstats.YAVG")["frames"]
    assert isinstance(frames, list)
    assert float(frames[0]["tags"]["lavfi.signalstats.YAVG"]) > 40


async def test_image_variants_and_placeholder(ctx: Context, tools: Tools, tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    subprocess.run(
        [str(tools.ffmpeg), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "testsrc2=size=800x600", "-frames:v", "1", str(png)],
        check=True, timeout=30,
    )
    data, root = await _run(ctx, png, "img1")
    sink = ctx.sink
    assert isinstance(sink, RecordingSink)
    assert sink.phases() == ["good_enough", "upgraded"]
    variants = data["variants"]
    assert isinstance(variants, list) and [v["width"] for v in variants] == [320, 640, 800]
    for v in variants:
        for fmt in ("webp", "jpeg"):
            info = _ffprobe(tools, root / v[fmt], "-show_streams")["streams"]
            assert isinstance(info, list) and info[0]["width"] == v["width"]
    assert str(data["placeholder"]).startswith("data:image/jpeg;base64,")


async def test_bad_input_raises_reason(ctx: Context, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n/etc/passwd\n")
    with pytest.raises(NaraError) as info:
        await _run(ctx, bad, "bad1")
    assert info.value.reason == "playlist_rejected"
    sink = ctx.sink
    assert isinstance(sink, RecordingSink) and sink.events == []


async def test_rerun_reuses_plan_and_keys(ctx: Context, clips: dict[str, Path]) -> None:
    """A retried or reclaimed job writes the same keys, and skips a phase 1 already finished."""
    first, root = await _run(ctx, clips["av"], "again")
    files_before = sorted(p.relative_to(root) for p in (root / "media").rglob("*") if p.is_file())
    second, _ = await _run(ctx, clips["av"], "again")
    files_after = sorted(p.relative_to(root) for p in (root / "media").rglob("*") if p.is_file())
    assert second["plan_id"] == first["plan_id"] and second["master"] == first["master"]
    assert files_after == files_before
    sink = ctx.sink
    assert isinstance(sink, RecordingSink)
    goods = [e for e in sink.events if e.phase == "good_enough"]
    assert len(goods) == 2 and goods[1].data["complete"] is True


async def test_dark_clip_still_gets_a_poster(ctx: Context, tools: Tools, tmp_path: Path) -> None:
    clip = tmp_path / "night.mp4"
    subprocess.run(
        [str(tools.ffmpeg), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "color=c=black:size=320x240:rate=30", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", str(clip)],
        check=True, timeout=30,
    )
    data, root = await _run(ctx, clip, "night")
    assert data["poster"] and (root / str(data["poster"])).stat().st_size > 0


async def test_phone_photo_orientation_applied(ctx: Context, tools: Tools, tmp_path: Path) -> None:
    """EXIF orientation 6 (a portrait phone photo stored landscape) is applied, never upscaled."""
    photo = jpeg_with_orientation(tools, tmp_path / "phone.jpg", 6)
    data, root = await _run(ctx, photo, "phone")
    assert (data["width"], data["height"]) == (300, 400)
    variants = data["variants"]
    assert isinstance(variants, list) and [v["width"] for v in variants] == [300]
    info = _ffprobe(tools, root / variants[0]["webp"], "-show_streams")["streams"]
    assert isinstance(info, list) and (info[0]["width"], info[0]["height"]) == (300, 400)
