"""The media job: the message media/ hands to the workers when an upload's last byte lands.

media/ owns this schema; NARA workers read it (``nara.job.Job.from_map``) and import nothing
of media/. A job is one entry of the Redis stream ``<namespace>:{jobs}`` whose field ``job`` holds a
msgpack map:

==============  =======  =============================================================
key             type     meaning
==============  =======  =============================================================
``job_id``      str      equals ``upload_id``: one job per upload
``upload_id``   str      the upload (a UUID); outputs go under ``media/<upload_id>/``
``user_id``     str      the uploader; media events go to ``user:<user_id>``
``post_id``     str      the post the media belongs to ("" for none)
``object_key``  str      the encrypted original in the object store
``content_type`` str     the sniffed type, e.g. ``video/mp4``
``size``        int      plaintext bytes
``uplink_bps``  int|nil  the uploader's measured uplink while bytes were arriving
==============  =======  =============================================================

Enqueueing is guarded: a key ``<namespace>:{jobs}:enqueued:<job_id>`` is set with the XADD in one
script (both keys share the ``{jobs}`` hash tag, one Redis Cluster slot), so a retried final PATCH
or a sweep that finishes a crashed hand-off never queues an upload twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
import redis.asyncio as aioredis

JOB_FIELD = "job"
GUARD_TTL_S = 30 * 24 * 3600

# Set-if-new then XADD, atomically (one hash slot: see above).
_ENQUEUE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  return redis.call('XADD', KEYS[1], '*', ARGV[3], ARGV[1])
end
return false
"""


@dataclass(frozen=True, slots=True)
class JobQueue:
    """Where jobs go: the stream workers of the same ``namespace`` read."""

    namespace: str = "nara"

    @property
    def stream(self) -> str:
        return f"{self.namespace}:{{jobs}}"

    def guard(self, job_id: str) -> str:
        return f"{self.namespace}:{{jobs}}:enqueued:{job_id}"


@dataclass(frozen=True, slots=True)
class MediaJob:
    upload_id: str
    user_id: str
    post_id: str
    object_key: str
    content_type: str
    size: int
    uplink_bps: int | None = None

    def encode(self) -> bytes:
        return bytes(msgpack.packb({
            "job_id": self.upload_id, "upload_id": self.upload_id, "user_id": self.user_id,
            "post_id": self.post_id, "object_key": self.object_key, "content_type": self.content_type,
            "size": self.size, "uplink_bps": self.uplink_bps,
        }))


async def enqueue(redis: aioredis.Redis, queue: JobQueue, job: MediaJob, *, guard_ttl_s: int = GUARD_TTL_S) -> bool:
    """Queue ``job`` unless it was queued before (while its guard lives). True if this call did."""
    result = await redis.eval(_ENQUEUE, 2, queue.stream, queue.guard(job.upload_id), job.encode(), guard_ttl_s,
                              JOB_FIELD)
    return isinstance(result, bytes)
