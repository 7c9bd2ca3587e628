"""Prometheus metrics for NARA-1r workers (registered once, process-wide)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_SECONDS = (0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300, 600, 1800)

QUEUE_DEPTH = Gauge("nara_queue_depth", "Jobs not yet delivered to any worker (consumer group lag)")
PENDING = Gauge("nara_pending_jobs", "Jobs delivered but not acknowledged")
JOB_AGE = Histogram("nara_job_age_seconds", "Age of a job when a worker starts it", buckets=_SECONDS)
TIME_TO_GOOD_ENOUGH = Histogram(
    "nara_time_to_good_enough_seconds", "Job start to the good_enough event", buckets=_SECONDS
)
TIME_TO_UPGRADED = Histogram(
    "nara_time_to_upgraded_seconds", "Job start to the upgraded event", buckets=_SECONDS
)
FAILURES = Counter("nara_failures_total", "Failed jobs by reason", ["reason"])
RETRIES = Counter("nara_retries_total", "Attempts released for a retry", ["reason"])
RECLAIMED = Counter("nara_reclaimed_total", "Jobs reclaimed from idle consumers")
ENCODE_SPEED = Histogram(
    "nara_encode_speed_ratio", "Seconds of media encoded per wall second", ["phase"],
    buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
IN_FLIGHT = Gauge("nara_jobs_in_flight", "Jobs running in this worker")
