"""An upload's unfinished part between requests: how it is staged, resumed from and completed.

The committed tail key (media/keys.py) names one of three shapes:

* a **whole tail**: one object with the part's sealed whole chunks and its sealed partial chunk;
* **staged in place** (``….staged-<token>``): the store keeps the whole chunks where the part
  will go (``PartStager``, the local spool) and the tail object holds the partial chunk;
* **segments** (``….segments``, any other store, S3 among them): each request stores the whole
  chunks it added as an object of its own; the tail object lists them and holds the partial chunk.
  A single growing tail object would be read and rewritten by every request that ends inside the
  part: with 500 KB requests (TUSKit's default), up to a part sixteen times per 8 MiB part.

In the last two a resuming request does not read the whole chunks: the assembler counts them as
``held`` (media/parts.py). In place they are never read: the store completes the part. Segments
are read once, at the start of the request that will complete the part (its Content-Length
reaches the part's end, or is not known): read at completion instead, they would sit beside the
request's own bytes and a request would hold up to two parts, not one.
Every object a staging creates has a random nonce in its key, so a writer that lost its lock never
overwrites what another committed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import msgpack

from media import keys
from media.config import CHUNK_SIZE
from media.crypto import TAG
from media.errors import CryptoError, StoreError
from media.parts import SealedPart
from media.runtime import MediaContext
from media.store import PartStager, read_buffer
from media.uploads import Upload

_MANIFEST_VERSION = 1
_READ_BLOCK = 256 * 1024


@dataclass(frozen=True, slots=True)
class Segment:
    key: str
    size: int


@dataclass(frozen=True, slots=True)
class Base:
    """What a request resumed from: the first ``size`` sealed bytes of part ``number``, held by
    the store under ``token`` (in place) or in ``segments``."""
    number: int
    size: int
    token: str | None = None
    segments: tuple[Segment, ...] = ()
    loaded: bool = False  # the segments were read into the restored buffer

    @property
    def held(self) -> int:
        """Bytes the assembler does not hold (``PartAssembler.restore(held=...)``)."""
        return 0 if self.loaded else self.size


@dataclass(frozen=True, slots=True)
class Staged:
    key: str  # the tail key to commit
    created: tuple[str, ...]  # objects written for it: deleted if the commit does not happen
    keeps_base: bool  # it builds on the base it was given, so the base's segments stay


def whole_chunks_before(offset: int, part_size: int) -> tuple[int, int]:
    """(part number, bytes of its whole sealed chunks) at ``offset`` inside a part."""
    return offset // part_size + 1, (offset % part_size) // CHUNK_SIZE * (CHUNK_SIZE + TAG)


def _pack_manifest(segments: tuple[Segment, ...], partial: bytes | bytearray) -> bytes:
    packed: bytes = msgpack.packb([_MANIFEST_VERSION, [[s.key, s.size] for s in segments], bytes(partial)])
    return packed


def _unpack_manifest(data: bytes, upload: Upload, size: int) -> tuple[tuple[Segment, ...], bytearray]:
    mismatch = CryptoError("the staged tail does not match the upload offset", code="tail_mismatch")
    try:
        version, listed, partial = msgpack.unpackb(data)
    except (ValueError, TypeError, msgpack.UnpackException):
        raise mismatch from None
    prefix = keys.segment_prefix(upload.object_key)
    if version != _MANIFEST_VERSION or not isinstance(listed, list) or not isinstance(partial, bytes):
        raise mismatch
    segments: list[Segment] = []
    for entry in listed:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and entry[0].startswith(prefix) and isinstance(entry[1], int) and entry[1] > 0):
            raise mismatch
        segments.append(Segment(entry[0], entry[1]))
    if sum(s.size for s in segments) != size:
        raise mismatch
    return tuple(segments), bytearray(partial)


async def read(ctx: MediaContext, upload: Upload, until: int | None) -> tuple[bytearray | None, Base | None]:
    """The committed tail for a request that may run to offset ``until`` (None: unknown): the
    bytes the assembler restores from, and what the store holds before them (``base.held``)."""
    if not upload.tail_key:
        return None, None
    tail = await read_buffer(ctx.store, upload.tail_key)
    number, size = whole_chunks_before(upload.offset, ctx.media.part_size)
    if keys.is_segmented(upload.tail_key):
        segments, partial = _unpack_manifest(bytes(tail), upload, size)
        base = Base(number, size, segments=segments)
        part_end = min(number * ctx.media.part_size, upload.length)
        if until is not None and until < part_end:
            return partial, base
        whole = await read_base(ctx, upload, base)
        whole += partial
        return whole, Base(number, size, segments=segments, loaded=True)
    token = keys.staged_token(upload.tail_key)
    if token is None:
        return tail, None
    if not isinstance(ctx.store, PartStager):
        raise CryptoError("the staged tail of this upload is in a store this node does not use", code="tail_missing")
    return tail, Base(number, size, token=token)


async def read_base(ctx: MediaContext, upload: Upload, base: Base) -> bytearray:
    """The ``base.size`` bytes the store holds, into a buffer the caller owns."""
    if base.token is not None:
        assert isinstance(ctx.store, PartStager)  # a token comes from a PartStager's tail
        return await ctx.store.read_staged(upload.object_key, upload.multipart_id, base.number, base.token,
                                           base.size)
    buf = bytearray()
    for segment in base.segments:
        async for block in ctx.store.stream(segment.key, block_size=_READ_BLOCK):
            buf += block  # small copies, each its own loop step; never a segment twice in memory
    if len(buf) != base.size:
        raise CryptoError("the staged segments do not match the upload offset", code="tail_mismatch")
    return buf


async def store_part(ctx: MediaContext, upload: Upload, part: SealedPart, base: Base | None) -> str:
    """Upload a sealed part. One that began in the store (``part.held``) is completed in place
    where the store can, else its held bytes are read back once and the part uploaded whole."""
    if not part.held:
        return await ctx.store.upload_part(upload.object_key, upload.multipart_id, part.number, part.data)
    assert base is not None and base.number == part.number and base.held == part.held
    if base.token is not None and isinstance(ctx.store, PartStager):
        etag = await ctx.store.complete_staged(upload.object_key, upload.multipart_id, part.number, part.data,
                                               at=part.held, base=base.token)
        if etag is not None:
            return etag
    # Rare: the staging was gone or staged past (in place), or a request that was to end before
    # the part's end went past it (segments). For this step the request holds more than a part.
    whole = await read_base(ctx, upload, base)
    whole += part.data
    return await ctx.store.upload_part(upload.object_key, upload.multipart_id, part.number, whole)


async def stage(ctx: MediaContext, upload: Upload, offset: int, staged: bytearray, base: Base | None) -> Staged:
    """Store the unfinished part so any node resumes at ``offset``. ``staged`` is
    ``PartAssembler.take_tail``: the sealed bytes after ``base`` (when given: the part began in an
    earlier request and the store holds its start), ending with the sealed partial chunk. Only the
    whole chunks this request added are written, once; the buffer is consumed."""
    nonce = secrets.token_hex(4)
    number, cut = whole_chunks_before(offset, ctx.media.part_size)
    at = base.held if base is not None else 0
    if cut and isinstance(ctx.store, PartStager) and (base is None or base.token is not None):
        token = base.token if base is not None else None
        if cut > at:
            token = await ctx.store.stage_part(upload.object_key, upload.multipart_id, number,
                                               memoryview(staged)[:cut - at], at=at, base=token)
        if token is not None:
            key = keys.staged_tail_key(upload.object_key, offset, nonce, token)
            await ctx.store.put(key, staged[cut - at:])
            return Staged(key, (key,), keeps_base=base is not None)
    elif cut and not isinstance(ctx.store, PartStager):
        return await _stage_segments(ctx, upload, offset, staged, base, nonce)
    if base is not None:  # staged past by another writer: the tail object holds the whole part so far
        whole = await read_base(ctx, upload, base)
        whole += staged
        staged = whole
    key = keys.tail_key(upload.object_key, offset, nonce)
    await ctx.store.put(key, staged)
    return Staged(key, (key,), keeps_base=False)


async def _stage_segments(ctx: MediaContext, upload: Upload, offset: int, staged: bytearray, base: Base | None,
                          nonce: str) -> Staged:
    number, cut = whole_chunks_before(offset, ctx.media.part_size)
    at = base.held if base is not None else 0
    segments = base.segments if base is not None and not base.loaded else ()
    created: tuple[str, ...] = ()
    partial = staged
    if cut > at:
        segment = Segment(keys.segment_key(upload.object_key, number, at, nonce), cut - at)
        partial = staged[cut - at:]  # at most a chunk; the whole chunks go out as the buffer itself
        del staged[cut - at:]
        await ctx.store.put(segment.key, staged)
        segments, created = (*segments, segment), (segment.key,)
    key = keys.segmented_tail_key(upload.object_key, offset, nonce)
    try:
        await ctx.store.put(key, _pack_manifest(segments, partial))
    except BaseException:
        for orphan in created:
            await ctx.store.delete(orphan)
        raise
    return Staged(key, (*created, key), keeps_base=base is not None)


async def release(ctx: MediaContext, tail_key: str, base: Base | None, *, keep_base: bool) -> None:
    """Delete a tail that is no longer committed, and its segments unless the new tail lists them."""
    await ctx.store.delete(tail_key)
    if base is not None and not keep_base:
        for segment in base.segments:
            await ctx.store.delete(segment.key)


async def delete(ctx: MediaContext, upload: Upload) -> None:
    """Delete an upload's committed tail and everything it names (the upload is ending)."""
    if not upload.tail_key:
        return
    if keys.is_segmented(upload.tail_key):
        try:
            listed = await ctx.store.get(upload.tail_key)
            segments, _ = _unpack_manifest(listed, upload, whole_chunks_before(upload.offset, ctx.media.part_size)[1])
        except (StoreError, CryptoError):
            segments = ()  # gone or unreadable: nothing it names can be found
        for segment in segments:
            await ctx.store.delete(segment.key)
    await ctx.store.delete(upload.tail_key)
