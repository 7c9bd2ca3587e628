"""Every Redis key NARA-1r uses, in one place.

The job stream ``<namespace>:{jobs}`` is where media/ puts its jobs (the schema is media/'s:
``media/jobs.py``); the composition root gives both sides the same namespace. Hash tags keep each
family in one Redis Cluster slot. ``namespace`` exists so tests (and a staging deployment sharing a
Redis) can run side by side without touching each other's keys.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "nara-workers"
JOB_FIELD = "job"  # the stream entry field holding the msgpack job map


@dataclass(frozen=True, slots=True)
class NaraKeys:
    namespace: str = "nara"
    group: str = GROUP

    @property
    def jobs(self) -> str:
        return f"{self.namespace}:{{jobs}}"

    @property
    def dead(self) -> str:
        return f"{self.namespace}:{{dead}}"

    def last_error(self, job_id: str) -> str:
        return f"{self.namespace}:{{jobs}}:error:{job_id}"


DEFAULT = NaraKeys()
