"""A job as NARA-1r reads it from the stream. The schema is media/'s (``media/jobs.py``): a msgpack
map in field ``job`` of an entry of ``<namespace>:{jobs}``; this side checks it, trusting nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nara.errors import BadJob


@dataclass(frozen=True, slots=True)
class Job:
    """``job_id`` equals ``upload_id``: one job per upload."""

    job_id: str
    upload_id: str
    user_id: str
    post_id: str
    object_key: str
    content_type: str = ""
    size: int = 0
    uplink_bps: int | None = None

    @classmethod
    def from_map(cls, d: Mapping[Any, Any]) -> Job:
        try:
            job = cls(
                job_id=str(d["job_id"]), upload_id=str(d["upload_id"]), user_id=str(d["user_id"]),
                post_id=str(d.get("post_id") or ""), object_key=str(d["object_key"]),
                content_type=str(d.get("content_type") or ""), size=int(d.get("size") or 0),
                uplink_bps=int(d["uplink_bps"]) if d.get("uplink_bps") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadJob(f"malformed job: {exc!r}") from exc
        if not job.job_id or job.job_id != job.upload_id or "/" in job.upload_id or ".." in job.upload_id:
            raise BadJob("job_id must equal a plain upload_id")
        return job
