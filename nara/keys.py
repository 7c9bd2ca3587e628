"""Every Redis key NARA-1r uses, in one place.

Hash tags keep each family in one Redis Cluster slot: the job stream and its bookkeeping keys
share ``{jobs}`` so one script may touch them atomically. ``namespace`` exists so tests (and a
staging deployment sharing a Redis) can run side by side without touching each other's keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

GROUP = "nara-workers"
JOB_FIELD = "job"


@dataclass(frozen=True, slots=True)
class NaraKeys:
    namespace: str = "nara"
    group: str = GROUP

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NaraKeys:
        """Keys in the namespace ``AMARO_NARA_KEY_NAMESPACE`` names: workers read and uploads
        write the same stream."""
        e = os.environ if env is None else env
        return cls(namespace=e.get("AMARO_NARA_KEY_NAMESPACE") or "nara")

    @property
    def jobs(self) -> str:
        return f"{self.namespace}:{{jobs}}"

    @property
    def dead(self) -> str:
        return f"{self.namespace}:{{dead}}"

    def enqueued(self, job_id: str) -> str:
        return f"{self.namespace}:{{jobs}}:enqueued:{job_id}"

    def last_error(self, job_id: str) -> str:
        return f"{self.namespace}:{{jobs}}:error:{job_id}"


DEFAULT = NaraKeys()
JOBS_STREAM = DEFAULT.jobs  # "nara:{jobs}"
DEAD_STREAM = DEFAULT.dead  # "nara:{dead}"
