"""Upload metrics (Prometheus), exported by whichever role serves ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REQUESTS = Counter("amaro_media_requests_total", "tus requests by verb and status", ["verb", "status"])
BYTES = Counter("amaro_media_bytes_received_total", "Upload bytes committed")
ACTIVE = Gauge("amaro_media_active_requests", "Upload requests streaming on this node")
RESERVED = Gauge("amaro_media_reserved_bytes", "Buffer bytes reserved by streaming requests on this node")
HANDOFFS = Counter("amaro_media_handoffs_total", "Uploads handed to NARA")
REJECTED = Counter("amaro_media_rejected_total", "Uploads refused by content sniffing")
