"""Prometheus metrics of the hub. Served by the node's ``/metrics`` endpoint (amaro/http.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram


def bound(metric: Any) -> Callable[[str], Any]:
    """``metric.labels(value)`` with the child kept: the hot paths (one call per delivery batch or
    received frame) skip prometheus_client's label lookup and lock. For small, fixed label sets."""
    children: dict[str, Any] = {}

    def child(value: str) -> Any:
        found = children.get(value)
        if found is None:
            found = children[value] = metric.labels(value)
        return found

    return child

#: Latency buckets shared by the hub's time histograms: fine below 10 ms, where chat lives, so a
#: p99 read off them (the benchmarks do) is not rounded to the next factor of two.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)

CONNECTIONS = Gauge("amaro_hub_connections", "Open authenticated sockets on this node")
FRAMES_IN = Counter("amaro_hub_frames_in_total", "Frames received from clients", ["type"])
FRAMES_OUT = Counter("amaro_hub_frames_out_total", "Frames queued to clients", ["type"])
FANOUT_LAG = Histogram(
    "amaro_hub_fanout_lag_seconds", "Publish to local enqueue, across nodes", buckets=LATENCY_BUCKETS,
)
DROPS = Counter("amaro_hub_drops_total", "Frames dropped instead of delivered", ["reason"])
DISCONNECTS = Counter("amaro_hub_disconnects_total", "Sockets closed by the server", ["reason"])
OUTBOX_BYTES = Histogram(
    "amaro_hub_outbox_bytes", "Bytes written per coalesced socket write (1 in 16 sampled)",
    buckets=(256, 1024, 4096, 16384, 65536, 262144, 1048576),
)
OUTBOX_FRAMES = Histogram(
    "amaro_hub_outbox_frames", "Frames per coalesced socket write (1 in 16 sampled)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
REDIS_OP = Histogram(
    "amaro_hub_redis_seconds", "Round-trip time of the hub's Redis operations", ["op"], buckets=LATENCY_BUCKETS,
)
RECOVERIES = Counter("amaro_hub_recoveries_total", "Resumes by outcome and source", ["outcome"])
GAP_FILLS = Counter("amaro_hub_gap_fills_total", "Out-of-order or missed routed events refilled", ["source"])
BATCH_ITEMS = Histogram(
    "amaro_hub_batch_items", "Items per group-commit batch (one PostgreSQL transaction)", ["writer"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
COMMIT_SECONDS = Histogram(
    "amaro_hub_commit_seconds", "Duration of one group-commit batch's PostgreSQL transaction", ["writer"],
    buckets=LATENCY_BUCKETS,
)

frames_in = bound(FRAMES_IN)
frames_out = bound(FRAMES_OUT)
drops = bound(DROPS)
