"""What the upload path needs from object storage, as small protocols (tusd's DataStore spirit).

``ObjectStore`` is the core every backend provides: whole small objects (headers, staged tails) and
streamed reads of large ones. ``MultipartStore`` is the S3-style multipart capability the tus
handler writes originals with: parts are numbered from 1, any part may be uploaded again (the last
write wins) and only the parts named at completion form the object. Optional capabilities are
separate protocols the caller checks with ``isinstance`` (``BufferReader``, ``RangeReader``,
``Lister``, ``FilePutter``).

The tus handler and the crypto code import only this module, never a backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    etag: str


@runtime_checkable
class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes | bytearray) -> None:
        """Write a whole (small) object, replacing any previous one."""

    async def get(self, key: str) -> bytes:
        """Read a whole (small) object. Raises ``StoreError`` (code ``not_found``) if missing."""

    def stream(self, key: str, *, block_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        """Read an object in blocks of at most ``block_size`` bytes, never all at once."""

    async def delete(self, key: str) -> None:
        """Delete an object; deleting a missing object is not an error."""

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int | None:
        """The stored size in bytes, or None when the object does not exist."""


@runtime_checkable
class MultipartStore(Protocol):
    min_part_size: int

    async def create_multipart(self, key: str) -> str:
        """Start a multipart object; returns the store's id for it."""

    async def upload_part(self, key: str, multipart_id: str, number: int, data: bytes | bytearray) -> str:
        """Store part ``number`` (from 1); returns its etag. Uploading a number again replaces it."""

    async def complete_multipart(self, key: str, multipart_id: str, parts: Sequence[Part]) -> None:
        """Publish the object made of ``parts`` in order; until then nothing is readable at ``key``."""

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        """Drop every part; aborting an unknown or finished multipart is not an error."""


@runtime_checkable
class BufferReader(Protocol):
    async def get_buffer(self, key: str) -> bytearray:
        """``get`` into a fresh buffer the caller owns, filled a block at a time: the caller may
        keep and grow it without a copy (an upload's staged tail, up to a part)."""


async def read_buffer(store: ObjectStore, key: str) -> bytearray:
    """A whole object as a buffer of the caller's, without a second copy where the store can."""
    if isinstance(store, BufferReader):
        return await store.get_buffer(key)
    return bytearray(await store.get(key))


@runtime_checkable
class PartStager(Protocol):
    """A store that keeps an unfinished part's whole sealed chunks where the part will go (the
    local spool), so they are written once and never read back: the part is completed from its
    staging plus the bytes that follow (``complete_staged``), and ``upload_part`` skips a staged
    prefix equal to its own. The tus handler then stages only the partial chunk as a small object."""

    async def stage_part(self, key: str, multipart_id: str, number: int, data: bytes | bytearray | memoryview,
                         *, at: int, base: str | None) -> str | None:
        """Stage bytes ``[at, at + len(data))`` of part ``number``; those before ``at`` are the ones
        staged under ``base``. Returns the token of the first ``at + len(data)`` bytes, or None:
        then stage them another way."""

    async def read_staged(self, key: str, multipart_id: str, number: int, token: str, size: int) -> bytearray:
        """The first ``size`` bytes staged under ``token``; ``StoreError`` (``staged_missing``) if gone."""

    async def complete_staged(self, key: str, multipart_id: str, number: int, data: bytes | bytearray,
                              *, at: int, base: str) -> str | None:
        """Store part ``number`` as the ``at`` bytes staged under ``base`` followed by ``data``;
        returns its etag, or None when that staging cannot be completed in place (gone, or staged
        past by another writer): then upload the whole part."""


@runtime_checkable
class RangeReader(Protocol):
    async def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of an object."""


@runtime_checkable
class Lister(Protocol):
    def list_keys(self, prefix: str) -> AsyncIterator[str]: ...


@runtime_checkable
class FilePutter(Protocol):
    async def put_file(self, key: str, path: Path, *, content_type: str, cache_control: str) -> None:
        """Store a local file under ``key`` (streamed; large files go up in parts), with HTTP metadata."""


class MediaStore(ObjectStore, MultipartStore, Protocol):
    """The composition the upload path requires: a store with the multipart capability."""


def require_media_store(store: object) -> MediaStore:
    """Check at start-up that a backend provides what the handler needs (tusd's composer check)."""
    if not isinstance(store, ObjectStore) or not isinstance(store, MultipartStore):
        raise TypeError(f"{type(store).__name__} is not an object store with multipart uploads")
    return store
