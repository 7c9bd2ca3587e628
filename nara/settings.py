"""NARA-1r settings, built once from AMARO_NARA_* variables at start-up and passed down."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nara.guard import Limits
from nara.keys import NaraKeys
from nara.planner import Policy
from realtime.config import env_float as _float
from realtime.config import env_int as _int
from realtime.cpus import background_cpus


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NaraSettings:
        env = os.environ if env is None else env
        base = cls()
        side = _int(env, "AMARO_NARA_MAX_DIMENSION", base.limits.max_width)
        limits = Limits(
            max_width=side,
            max_height=side,
            max_pixels=_int(env, "AMARO_NARA_MAX_PIXELS", base.limits.max_pixels),
            max_duration_s=_float(env, "AMARO_NARA_MAX_DURATION_S", base.limits.max_duration_s),
            max_fps=_float(env, "AMARO_NARA_MAX_FPS", base.limits.max_fps),
            max_frames=_int(env, "AMARO_NARA_MAX_FRAMES", base.limits.max_frames),
            max_total_pixels=_int(env, "AMARO_NARA_MAX_TOTAL_PIXELS", base.limits.max_total_pixels),
            max_input_bytes=_int(env, "AMARO_NARA_MAX_INPUT_BYTES", base.limits.max_input_bytes),
            probe_timeout_s=_float(env, "AMARO_NARA_PROBE_TIMEOUT_S", base.limits.probe_timeout_s),
            threads=_int(env, "AMARO_NARA_THREADS", base.limits.threads),
            nice=_int(env, "AMARO_NARA_NICE", base.limits.nice),
            max_memory_bytes=_int(env, "AMARO_NARA_MAX_MEMORY_BYTES", base.limits.max_memory_bytes),
            # The long encodes keep off the first CPU (realtime/cpus.py).
            ladder_cpus=background_cpus(env.get("AMARO_NARA_LADDER_CPUS", "auto"), name="AMARO_NARA_LADDER_CPUS"),
        )
        crf = _int(env, "AMARO_NARA_CRF", base.policy.crf)
        policy = Policy(
            crf=crf,
            crf_low_rungs=crf + (base.policy.crf_low_rungs - base.policy.crf),
            preset=env.get("AMARO_NARA_PRESET", base.policy.preset),
            segment_s=_float(env, "AMARO_NARA_SEGMENT_S", base.policy.segment_s),
        )
        return cls(
            consumer=env.get("AMARO_NARA_CONSUMER") or base.consumer,
            concurrency=_int(env, "AMARO_NARA_CONCURRENCY", base.concurrency),
            workdir=Path(env["AMARO_NARA_WORKDIR"]) if env.get("AMARO_NARA_WORKDIR") else base.workdir,
            claim_idle_s=_float(env, "AMARO_NARA_CLAIM_IDLE_S", base.claim_idle_s),
            max_attempts=_int(env, "AMARO_NARA_MAX_ATTEMPTS", base.max_attempts),
            backoff_s=_float(env, "AMARO_NARA_BACKOFF_S", base.backoff_s),
            shutdown_grace_s=_float(env, "AMARO_NARA_SHUTDOWN_GRACE_S", base.shutdown_grace_s),
            limits=limits,
            policy=policy,
            keys=NaraKeys.from_env(env),
        )

    def phase1_timeout(self, duration_s: float, load: float = 1.0) -> float:
        """Wall-time limit of phase 1; ``load`` is the source's pixel rate relative to 1080p30."""
        return self.phase1_timeout_base_s + self.phase1_timeout_per_media_s * duration_s * max(1.0, load)

    def phase2_timeout(self, duration_s: float, load: float = 1.0) -> float:
        return self.phase2_timeout_base_s + self.phase2_timeout_per_media_s * duration_s * max(1.0, load)

    def backoff(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` (attempts count from 1)."""
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempt - 1)))
