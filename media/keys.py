"""Every Redis key and object key media/ uses (the job stream's keys are in jobs.py). Braces pin
related Redis keys to one Redis Cluster slot."""

from __future__ import annotations


def upload_lock(upload_id: str) -> str:
    return f"media:{{upload:{upload_id}}}:lock"


def user_slots(user_id: str) -> str:
    return f"media:{{user:{user_id}}}:active"


def object_key(upload_id: str) -> str:
    return f"originals/{upload_id[:2]}/{upload_id}"


def tail_key(object_key: str, offset: int, nonce: str) -> str:
    # The nonce keeps a writer that lost its lock from overwriting the committed tail at this offset.
    return f"staging/{object_key}.tail.{offset}.{nonce}"


def staged_tail_key(object_key: str, offset: int, nonce: str, token: str) -> str:
    """A tail holding only the partial chunk; the whole chunks before it are staged in the store
    under ``token`` (``media.store.PartStager``)."""
    return f"{tail_key(object_key, offset, nonce)}.staged-{token}"


def staged_token(key: str) -> str | None:
    _, sep, token = key.rpartition(".staged-")
    return token if sep and token.isalnum() else None


def segmented_tail_key(object_key: str, offset: int, nonce: str) -> str:
    """A tail listing the segments that hold the whole chunks before it, and holding the partial
    chunk (media/staging.py)."""
    return f"{tail_key(object_key, offset, nonce)}.segments"


def is_segmented(key: str) -> bool:
    return key.endswith(".segments")


def segment_prefix(object_key: str) -> str:
    return f"staging/{object_key}.segment."


def segment_key(object_key: str, number: int, start: int, nonce: str) -> str:
    """Sealed bytes of part ``number`` from ``start`` on, as one request staged them."""
    return f"{segment_prefix(object_key)}{number}.{start}.{nonce}"
