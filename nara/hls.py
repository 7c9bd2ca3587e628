"""HLS text: reading ffmpeg's growing media playlists and writing our own master playlist.

Pure functions. The master playlist is written by us, not by ffmpeg, so BANDWIDTH and
AVERAGE-BANDWIDTH come from the segments actually produced rather than from encoder settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nara.planner import Rendition


@dataclass(frozen=True, slots=True)
class Segment:
    uri: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    text: str
    segments: tuple[Segment, ...]
    ended: bool

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)


def parse_media_playlist(text: str) -> MediaPlaylist:
    segments: list[Segment] = []
    pending: float | None = None
    ended = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXTINF:"):
            pending = float(line[len("#EXTINF:"):].split(",", 1)[0] or 0.0)
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif line and not line.startswith("#") and pending is not None:
            segments.append(Segment(line, pending))
            pending = None
    return MediaPlaylist(text, tuple(segments), ended)


@dataclass(frozen=True, slots=True)
class VariantStats:
    rendition: Rendition
    uri: str
    peak_bps: int
    average_bps: int
    codecs: str = ""


def avc_codecs_from_segment(head: bytes, with_audio: bool) -> str | None:
    """RFC 6381 codecs string read from the first H.264 SPS in a segment (profile, constraint
    flags and level exactly as the encoder wrote them), or None if no SPS is found."""
    at = head.find(b"\x00\x00\x01\x67")
    if at < 0 or len(head) < at + 7:
        return None
    video = f"avc1.{head[at + 4:at + 7].hex()}"
    return f"{video},mp4a.40.2" if with_audio else video


def variant_stats(rendition: Rendition, uri: str, playlist: MediaPlaylist,
                  sizes: Sequence[int], codecs: str | None = None) -> VariantStats:
    """Peak and average bit rates of one variant from its segment sizes (in playlist order)."""
    total_bits = sum(sizes) * 8
    total_s = playlist.duration_s or 1.0
    peak = max(
        (size * 8 / seg.duration_s for size, seg in zip(sizes, playlist.segments, strict=True)
         if seg.duration_s >= 0.5),
        default=total_bits / total_s,
    )
    return VariantStats(rendition, uri, int(peak), int(total_bits / total_s), codecs or rendition.codecs)


def master_playlist(variants: Sequence[VariantStats]) -> str:
    """Master playlist, lowest bandwidth first, with the attributes players switch by."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: v.peak_bps):
        r = v.rendition
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={v.peak_bps},AVERAGE-BANDWIDTH={v.average_bps},"
            f"RESOLUTION={r.width}x{r.height},FRAME-RATE={r.fps:.3f},CODECS=\"{v.codecs or r.codecs}\""
        )
        lines.append(v.uri)
    return "\n".join(lines) + "\n"


def storyboard_vtt(count: int, interval_s: float, columns: int, tile_w: int, tile_h: int,
                   sprite_uri: str, duration_s: float) -> str:
    """WebVTT cues pointing into a sprite sheet with media fragments (#xywh)."""

    def stamp(t: float) -> str:
        ms = round(t * 1000)
        h, rem = divmod(ms, 3_600_000)
        m, rem = divmod(rem, 60_000)
        s, ms = divmod(rem, 1000)
        return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"

    out = ["WEBVTT", ""]
    for i in range(count):
        start = i * interval_s
        end = min(duration_s, (i + 1) * interval_s) if i == count - 1 else (i + 1) * interval_s
        x, y = (i % columns) * tile_w, (i // columns) * tile_h
        out += [f"{stamp(start)} --> {stamp(max(end, start + 0.001))}",
                f"{sprite_uri}#xywh={x},{y},{tile_w},{tile_h}", ""]
    return "\n".join(out)
