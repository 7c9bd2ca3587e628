"""Probe an untrusted upload with ffprobe in a guarded child process.

:func:`parse_probe` is pure (ffprobe's JSON in, a :class:`Probe` or a MediaRejected out) so every
limit is unit-testable; :func:`probe` is the thin I/O edge around it.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from nara.errors import (
    FpsOutOfRange,
    NotMedia,
    NoVideoStream,
    PlaylistRejected,
    TooHeavy,
    TooLargeDimensions,
    TooLong,
    TooManyFrames,
    Truncated,
    UnsupportedFormat,
)
from nara.guard import Completed, Limits, input_args, run_guarded, sniff
from nara.tools import Tools

Kind = Literal["video", "image"]

_IMAGE_FORMATS = frozenset({"png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe"})
_PLAYLIST_DEMUXERS = ("hls", "concat", "dash", "applehttp", "ffmetadata", "image2")
_WHITELIST_RE = re.compile(r"\[(?P<demuxer>[\w,]+) @ [^\]]*\] Format not on whitelist")


@dataclass(frozen=True, slots=True)
class Probe:
    """What the planner needs to know about a source. ``width``/``height`` are as displayed,
    i.e. after applying ``rotation`` (clockwise degrees, one of 0, 90, 180, 270)."""

    kind: Kind
    container: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    fps: float
    duration_s: float
    frames: int
    codec: str
    profile: str
    pix_fmt: str
    bitrate: int
    size_bytes: int
    has_audio: bool
    audio_codec: str = ""
    audio_channels: int = 0
    audio_sample_rate: int = 0
    audio_bitrate: int = 0
    # Absolute stream indexes: "0:v:0" could be an attached cover picture, never the clip.
    video_index: int = 0
    audio_index: int = 1

    @property
    def video_ref(self) -> str:
        return f"0:{self.video_index}"

    @property
    def audio_ref(self) -> str:
        return f"0:{self.audio_index}"

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def load(self) -> float:
        """Decode cost per media second relative to 1080p30 (wall-time limits scale with it)."""
        return self.pixels * max(self.fps, 1.0) / (1920 * 1080 * 30)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(value: object, default: float = 0.0) -> float:
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return default


def _rate(value: object) -> float:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(rate) if rate > 0 else 0.0


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise display rotation in multiples of 90 degrees."""
    for side in stream.get("side_data_list") or []:
        if isinstance(side, dict) and "rotation" in side:
            # The display matrix angle is counter-clockwise: an iPhone portrait clip says -90.
            return int(-round(_num(side["rotation"]) / 90.0) * 90) % 360
    rotate = (stream.get("tags") or {}).get("rotate")
    if rotate is not None:
        # The legacy tag is already clockwise.
        return int(round(_num(rotate) / 90.0) * 90) % 360
    return 0


def parse_probe(doc: dict[str, Any], limits: Limits, size_bytes: int = 0) -> Probe:
    """Turn ffprobe's ``-show_format -show_streams`` JSON into a Probe, enforcing ``limits``."""
    fmt = doc.get("format") or {}
    streams = [s for s in doc.get("streams") or [] if isinstance(s, dict)]
    if not fmt and not streams:
        raise NotMedia("ffprobe found no container")
    container = str(fmt.get("format_name", ""))
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    video = next(
        (
            s for s in streams
            if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    if video is None:
        if audio is not None:
            raise NoVideoStream("audio-only upload: the video path needs a picture")
        raise NoVideoStream("no video stream in the upload")

    coded_w, coded_h = int(_num(video.get("width"))), int(_num(video.get("height")))
    if coded_w <= 0 or coded_h <= 0:
        raise NotMedia("the video stream has no usable size")
    if (
        coded_w > limits.max_width
        or coded_h > limits.max_height
        or coded_w * coded_h > limits.max_pixels
    ):
        raise TooLargeDimensions(f"{coded_w}x{coded_h} exceeds {limits.max_width}x{limits.max_height}")
    rotation = _rotation(video)
    frames_info = [f for f in doc.get("frames") or [] if isinstance(f, dict)]
    if rotation == 0 and frames_info:
        # Still images carry EXIF orientation on the decoded frame, not on the stream.
        rotation = _rotation(frames_info[0])
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)

    is_image = container in _IMAGE_FORMATS
    duration = _num(fmt.get("duration")) or _num(video.get("duration"))
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    nb_frames = int(_num(video.get("nb_frames")))
    if container == "gif" and (nb_frames == 1 or duration <= 0.1):
        is_image = True
    if is_image:
        duration, fps, frames = 0.0, 0.0, 1
    else:
        if duration <= 0:
            raise Truncated("the video has no duration")
        if fps > limits.max_fps or fps < limits.min_fps:
            raise FpsOutOfRange(f"{fps:g} fps outside {limits.min_fps:g}..{limits.max_fps:g}")
        if duration > limits.max_duration_s:
            raise TooLong(f"{duration:.1f}s > {limits.max_duration_s:.0f}s")
        frames = nb_frames or round(duration * fps)
        if frames > limits.max_frames:
            raise TooManyFrames(f"{frames} frames > {limits.max_frames}")
        if coded_w * coded_h * frames > limits.max_total_pixels:
            # Each limit alone can pass while their product would tie a worker up for hours.
            raise TooHeavy(f"{coded_w}x{coded_h} x {frames} frames exceeds the decode budget")
        _check_complete(container, streams, duration, size_bytes or int(_num(fmt.get("size"))))

    return Probe(
        kind="image" if is_image else "video",
        container=container,
        width=width,
        height=height,
        coded_width=coded_w,
        coded_height=coded_h,
        rotation=rotation,
        fps=round(fps, 3),
        duration_s=round(duration, 3),
        frames=frames,
        codec=str(video.get("codec_name", "")),
        profile=str(video.get("profile", "")),
        pix_fmt=str(video.get("pix_fmt", "")),
        bitrate=int(_num(video.get("bit_rate")) or _num(fmt.get("bit_rate"))),
        size_bytes=size_bytes or int(_num(fmt.get("size"))),
        has_audio=audio is not None,
        audio_codec=str(audio.get("codec_name", "")) if audio else "",
        audio_channels=int(_num(audio.get("channels"))) if audio else 0,
        audio_sample_rate=int(_num(audio.get("sample_rate"))) if audio else 0,
        audio_bitrate=int(_num(audio.get("bit_rate"))) if audio else 0,
        video_index=int(_num(video.get("index"))),
        audio_index=int(_num(audio.get("index"), -1)) if audio else -1,
    )


def _check_complete(container: str, streams: list[dict[str, Any]], duration: float, size: int) -> None:
    """MP4's sample tables state every sample's size, so ffprobe's per-stream bit rates say how
    many bytes the file must hold: a cut-off upload is refused before any encode starts."""
    if not container.startswith("mov") or size <= 0:
        return
    claimed_bits = sum(_num(s.get("bit_rate")) * (_num(s.get("duration")) or duration) for s in streams)
    if claimed_bits > 0 and size * 8 < 0.9 * claimed_bits:
        raise Truncated(f"{size} bytes of about {int(claimed_bits / 8)} the file's index describes")


# Container signatures: a file that starts like media but cannot be opened was cut short.
def _looks_like_container(head: bytes) -> bool:
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide")
        or head.startswith((b"\x1a\x45\xdf\xa3", b"RIFF", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"OggS"))
        or (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47)
    )


def classify_failure(done: Completed, head: bytes) -> Exception:
    """Map a failed ffprobe run to the MediaRejected that tells the uploader why."""
    err = done.stderr.decode("utf-8", "replace")
    match = _WHITELIST_RE.search(err)
    if match:
        demuxer = match.group("demuxer")
        if demuxer.split(",")[0] in _PLAYLIST_DEMUXERS:
            return PlaylistRejected(f"{demuxer} input is never accepted from users")
        return UnsupportedFormat(f"container {demuxer!r} is not accepted")
    if "Invalid image size" in err or ("Picture size" in err and "is invalid" in err):
        return TooLargeDimensions("the frame size is invalid or absurd")
    if done.returncode == -1:
        return NotMedia("the probe output exceeded its cap")
    if _looks_like_container(head):
        return Truncated(f"the container could not be read: {done.stderr_tail(200)}")
    return NotMedia(f"not a media file: {done.stderr_tail(200)}")


async def probe(path: Path, tools: Tools, limits: Limits) -> Probe:
    """Probe ``path`` (an upload already on local disk) under the guard and limits."""
    head, size = await asyncio.to_thread(sniff, path, limits)
    argv = [
        str(tools.ffprobe), "-hide_banner", "-v", "error",
        "-of", "json", "-show_format", "-show_streams",
        # One decoded frame: where still images keep their EXIF orientation.
        "-show_frames", "-read_intervals", "%+#1",
        *input_args(path),
    ]
    done = await run_guarded(
        argv, timeout_s=limits.probe_timeout_s, nice=limits.nice, stdout_cap=limits.probe_output_cap,
        max_memory_bytes=limits.max_memory_bytes,
    )
    if done.returncode != 0:
        raise classify_failure(done, head)
    err = done.stderr.decode("utf-8", "replace")
    if "Invalid image size" in err:
        raise TooLargeDimensions("the frame size is invalid or absurd")
    try:
        doc = json.loads(done.stdout)
    except ValueError as exc:
        raise NotMedia("ffprobe output was not JSON") from exc
    if not isinstance(doc, dict):
        raise NotMedia("ffprobe output was not a JSON object")
    return parse_probe(doc, limits, size_bytes=size)
