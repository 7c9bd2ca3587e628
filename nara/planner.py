"""NARA-1r's decision: which renditions to make for one upload, and why.

:func:`plan` is a pure function of the probe, the measured complexity, the uploader's uplink and
audience statistics. Every choice it makes is written to ``Plan.reasons`` so the plan stored with
the media explains itself. Nothing here touches ffmpeg, files or the network.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

from nara.probe import Probe

Profile = Literal["baseline", "main", "high"]


@dataclass(frozen=True, slots=True)
class Rung:
    """A candidate ladder step, defined on the short side so portrait clips get the same rungs."""

    short_side: int
    kbps: int  # cap for typical content at <= 30 fps
    profile: Profile
    level: str


DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung(240, 350, "baseline", "3.0"),
    Rung(360, 700, "baseline", "3.0"),
    Rung(480, 1200, "main", "3.1"),
    Rung(720, 2500, "main", "3.1"),
    Rung(1080, 4500, "high", "4.1"),
    Rung(1440, 8000, "high", "5.0"),
    Rung(2160, 14000, "high", "5.1"),
)


@dataclass(frozen=True, slots=True)
class Audience:
    """Who watches: defaults now; the telemetry issue will feed measured values per region."""

    device_shares: dict[str, float] = field(
        default_factory=lambda: {"phone": 0.72, "tablet": 0.08, "desktop": 0.15, "tv": 0.05}
    )
    # The largest short side worth sending to each device class.
    device_short_side: dict[str, int] = field(
        default_factory=lambda: {"phone": 1080, "tablet": 1440, "desktop": 1440, "tv": 2160}
    )
    # Viewers' download bandwidth percentiles in bit/s.
    bandwidth_p10_bps: int = 1_500_000
    bandwidth_p50_bps: int = 8_000_000
    bandwidth_p90_bps: int = 30_000_000
    min_device_share: float = 0.04


@dataclass(frozen=True, slots=True)
class Policy:
    """Operator knobs (from settings), not per-upload inputs."""

    ladder: tuple[Rung, ...] = DEFAULT_LADDER
    segment_s: float = 2.0
    preset: str = "veryfast"
    # bits per pixel per frame of the complexity sample on "typical" content (see complexity.py)
    reference_bpp: float = 0.10
    min_complexity_factor: float = 0.5
    max_complexity_factor: float = 1.6
    bandwidth_headroom: float = 1.4
    slow_uplink_bps: int = 2_000_000
    # Capped CRF: quality target per rung; the planned bitrate is only the cap (-maxrate).
    crf: int = 23
    crf_low_rungs: int = 24
    crf_fast: int = 26
    image_widths: tuple[int, ...] = (320, 640, 1080, 2048)


@dataclass(frozen=True, slots=True)
class Rendition:
    name: str
    width: int
    height: int
    fps: float
    gop_frames: int
    crf: int
    video_kbps: int  # planned cap: -maxrate
    bufsize_kbps: int
    profile: Profile
    level: str
    preset: str
    audio_kbps: int

    @property
    def codecs(self) -> str:
        """The RFC 6381 codecs string for the master playlist."""
        # Constraint flags as x264 writes them (baseline = constrained baseline, 0xc0); the
        # master playlist prefers the bytes read back from the encoded stream.
        profile_idc = {"baseline": "42c0", "main": "4d40", "high": "6400"}[self.profile]
        level_idc = round(float(self.level) * 10)
        video = f"avc1.{profile_idc}{level_idc:02x}"
        return f"{video},mp4a.40.2" if self.audio_kbps else video


@dataclass(frozen=True, slots=True)
class Plan:
    kind: Literal["video", "image"]
    segment_s: float
    first: Rendition | None
    ladder: tuple[Rendition, ...]
    image_widths: tuple[int, ...]
    complexity_factor: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)

    @property
    def plan_id(self) -> str:
        """Stable hash of the plan: output keys derive from it, so a re-run writes the same keys."""
        return hashlib.sha256(self.to_json()).hexdigest()[:16]


def _even(x: float) -> int:
    return max(2, round(x / 2.0) * 2)


def _size_for(probe: Probe, short_side: int) -> tuple[int, int]:
    landscape = probe.width >= probe.height
    src_short = min(probe.width, probe.height)
    scale = short_side / src_short
    if landscape:
        return _even(probe.width * scale), _even(short_side)
    return _even(short_side), _even(probe.height * scale)


MIN_OUTPUT_FPS = 15.0


def _target_fps(src: float, short_side: int) -> float:
    if src < MIN_OUTPUT_FPS:
        # Slideshows and timelapses: duplicated frames cost x264 almost nothing and keep a
        # keyframe, hence a segment boundary, every segment_s.
        return MIN_OUTPUT_FPS
    if src >= 50 and short_side >= 720:
        return round(min(src, 60.0), 3)
    if src > 30.5:
        # Halve high-rate sources (60 -> 30, 50 -> 25) so frames stay evenly spaced.
        half = src / 2.0
        return round(half if half <= 30.5 else 30.0, 3)
    return round(src, 3)


def _gop(fps: float, segment_s: float) -> int:
    return max(1, round(fps * segment_s))


_HIGH_RATE_LEVEL = {720: "4.0", 1080: "4.2", 1440: "5.1", 2160: "5.2"}


def _profile_for(rung: Rung, fps: float) -> tuple[Profile, str]:
    if fps > 30.5:
        # 60 fps needs a higher level at the same resolution.
        return rung.profile, _HIGH_RATE_LEVEL.get(rung.short_side, rung.level)
    return rung.profile, rung.level


def complexity_factor(bpp: float | None, policy: Policy) -> float:
    if bpp is None or bpp <= 0:
        return 1.0
    raw = float((bpp / policy.reference_bpp) ** 0.75)
    return round(min(policy.max_complexity_factor, max(policy.min_complexity_factor, raw)), 3)


def _audio_kbps(probe: Probe, short_side: int) -> int:
    if not probe.has_audio:
        return 0
    return 128 if short_side >= 720 else 96 if short_side >= 480 else 64


def first_rendition(probe: Probe, uplink_bps: int | None, policy: Policy | None = None
                    ) -> tuple[Rendition, str]:
    """The fast phase-1 rendition and why. Depends only on the probe and the uplink, never on
    the complexity sample, so phase 1 starts the moment the probe is done."""
    policy = policy or Policy()
    slow = uplink_bps is not None and uplink_bps < policy.slow_uplink_bps
    src_short = min(probe.width, probe.height)
    side = min(240 if slow else 360, src_short)
    rung = next((r for r in reversed(policy.ladder) if r.short_side <= side), policy.ladder[0])
    width, height = _size_for(probe, side)
    fps = min(_target_fps(probe.fps, side), 30.0)
    first = Rendition(
        name="fast", width=width, height=height, fps=fps, gop_frames=_gop(fps, policy.segment_s),
        crf=policy.crf_fast, video_kbps=rung.kbps, bufsize_kbps=rung.kbps * 2, profile="baseline", level="3.1",
        # Decoding a big source is the cost here; the cheapest encoder preset keeps up with it.
        preset="ultrafast" if src_short >= 1080 else "veryfast",
        audio_kbps=64 if probe.has_audio else 0,
    )
    if uplink_bps is None:
        network = "uplink unknown"
    else:
        network = f"uplink {uplink_bps // 1000} kbps" + (" is slow" if slow else "")
    why = f"fast first rendition {width}x{height}@{fps:g} {first.preset} ({network})"
    return first, why


def first_id(first: Rendition, segment_s: float) -> str:
    """Stable id of the phase-1 output (its keys must not wait for the full plan)."""
    doc = orjson.dumps({"first": asdict(first), "segment_s": segment_s}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(doc).hexdigest()[:16]


def plan(probe: Probe, bpp: float | None, uplink_bps: int | None, audience: Audience,
         policy: Policy | None = None) -> Plan:
    """Decide renditions for one upload.

    ``bpp`` is the complexity sample's bits per pixel per frame (None when not measured);
    ``uplink_bps`` is the uploader's measured upload speed (None when unknown).
    """
    policy = policy or Policy()
    reasons: list[str] = []
    if probe.kind == "image":
        widths = (*(w for w in policy.image_widths if w < probe.width), min(probe.width, 4096))
        reasons.append(f"image {probe.width}x{probe.height}: variants {list(widths)}, never upscaled")
        return Plan("image", 0.0, None, (), widths, 1.0, tuple(reasons))

    src_short = min(probe.width, probe.height)
    factor = complexity_factor(bpp, policy)
    if bpp is None:
        reasons.append("complexity not measured: typical bitrates")
    else:
        reasons.append(f"complexity {bpp:.4f} bpp vs reference {policy.reference_bpp}: bitrates x{factor}")

    candidates = [r for r in policy.ladder if r.short_side <= src_short]
    if not candidates:
        lowest = policy.ladder[0]
        candidates = [Rung(_even(src_short), lowest.kbps, lowest.profile, lowest.level)]
        reasons.append(f"source short side {src_short} below the lowest rung: one rung at source size")
    skipped = [r.short_side for r in policy.ladder if r.short_side > src_short]
    if skipped:
        reasons.append(f"never upscale: skipped {skipped} above source {src_short}p")

    wanted = max(
        (side for dev, side in audience.device_short_side.items()
         if audience.device_shares.get(dev, 0.0) >= audience.min_device_share),
        default=candidates[-1].short_side,
    )
    if any(r.short_side > wanted for r in candidates):
        reasons.append(
            f"no audience device class above {audience.min_device_share:.0%} shows more than {wanted}p"
        )
        candidates = [r for r in candidates if r.short_side <= wanted] or candidates[:1]

    ladder: list[Rendition] = []
    ceiling_bps = audience.bandwidth_p90_bps / policy.bandwidth_headroom
    for rung in candidates:
        fps = _target_fps(probe.fps, rung.short_side)
        fps_boost = 1.4 if fps > 30.5 else 1.0
        kbps = round(rung.kbps * factor * fps_boost)
        if probe.bitrate and kbps * 1000 > probe.bitrate * 1.1 and ladder:
            reasons.append(f"{rung.short_side}p capped at the source bitrate {probe.bitrate // 1000} kbps")
            kbps = max(int(probe.bitrate * 1.1 / 1000), ladder[-1].video_kbps + 1)
        if ladder and kbps * 1000 > ceiling_bps:
            reasons.append(
                f"{rung.short_side}p ({kbps} kbps) dropped: above the audience p90 bandwidth with headroom"
            )
            break
        profile, level = _profile_for(rung, fps)
        width, height = _size_for(probe, rung.short_side)
        ladder.append(Rendition(
            name=f"{rung.short_side}p{round(fps) if fps > 30.5 else ''}",
            width=width, height=height, fps=fps, gop_frames=_gop(fps, policy.segment_s),
            crf=policy.crf if rung.short_side >= 720 else policy.crf_low_rungs,
            video_kbps=kbps, bufsize_kbps=kbps * 2, profile=profile, level=level,
            preset=policy.preset, audio_kbps=_audio_kbps(probe, rung.short_side),
        ))
    if probe.fps > 30.5:
        reasons.append(f"source {probe.fps:g} fps: " + ", ".join(f"{r.name}@{r.fps:g}" for r in ladder))
    if ladder[0].video_kbps * 1000 > audience.bandwidth_p10_bps / policy.bandwidth_headroom:
        reasons.append("lowest rung is above the audience p10 bandwidth: slow viewers will buffer")

    first, why = first_rendition(probe, uplink_bps, policy)
    reasons.append(why)
    reasons.append(f"GOP {policy.segment_s:g}s aligned across renditions, segments {policy.segment_s:g}s")
    return Plan("video", policy.segment_s, first, tuple(ladder), (), factor, tuple(reasons))


def _rendition(d: dict[str, Any]) -> Rendition:
    return Rendition(**{k: d[k] for k in Rendition.__dataclass_fields__})


def plan_from_dict(d: dict[str, Any]) -> Plan:
    """Rebuild a stored plan (a retried job reuses it so its output keys stay the same)."""
    first = d.get("first")
    return Plan(
        kind=d["kind"],
        segment_s=float(d["segment_s"]),
        first=_rendition(first) if first else None,
        ladder=tuple(_rendition(r) for r in d["ladder"]),
        image_widths=tuple(int(w) for w in d["image_widths"]),
        complexity_factor=float(d["complexity_factor"]),
        reasons=tuple(str(r) for r in d["reasons"]),
    )
