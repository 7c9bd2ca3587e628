"""The tus operations on uploads, apart from HTTP framing (tus.py) and storage (store.py).

A PATCH streams: each body message is cut into sealed chunks, each full part is uploaded at once,
and at most one part plus one chunk is held in memory. Progress is committed to PostgreSQL:

* after every part when the request is plain (Content-Length known, no checksum), so a node crash
  loses at most one part; the committed offset then sits on a part boundary and needs no tail;
* at the end of the request, or when the client goes away or stalls, with the unfinished part
  staged as a tail object, so the next PATCH (on any node) resumes at exactly that offset;
* a request with Upload-Checksum commits only once its digest matches (tus: a mismatched chunk is
  discarded whole); parts it uploaded are rewritten by the next attempt under the same numbers.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from media import keys, metrics, sniff, staging, uploads
from media.crypto import ChunkCipher, DataKey
from media.errors import (
    TusError,
    checksum_mismatch,
    conflict,
    gone,
    locked,
    too_large,
    unauthorized,
    unsupported_media,
)
from media.events import FAILED, PROGRESS, RECEIVED, ProgressThrottle, emit
from media.handoff import finish
from media.locks import KeepAlive, UploadLock
from media.parts import PartAssembler
from media.runtime import MediaContext
from media.uploads import ENDINGS, Upload, UploadState

log = structlog.get_logger(__name__)

CHECKSUMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "md5": lambda: hashlib.md5(usedforsecurity=False),
}


class BodyInterrupted(Exception):
    """The client went away or stopped sending; what arrived before may still be committed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Checksum:
    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, header: str) -> Checksum:
        algorithm, _, encoded = header.strip().partition(" ")
        if algorithm not in CHECKSUMS:
            raise TusError(f"unsupported checksum algorithm {algorithm!r}", status=400, code="bad_checksum")
        try:
            return cls(algorithm, base64.b64decode(encoded.strip(), validate=True))
        except binascii.Error:
            raise TusError("Upload-Checksum digest is not base64", status=400, code="bad_checksum") from None


def _ended(upload: Upload) -> None:
    if upload.state in ENDINGS or upload.expired():
        raise gone(f"upload is {'expired' if upload.expired() else upload.state}")


async def create(ctx: MediaContext, user_id: str, length: int, metadata: dict[str, str]) -> Upload:
    """Create the upload and its draft post; emits ``received``. Quota and size checks first."""
    if length <= 0:
        raise TusError("Upload-Length must be a positive integer", status=400, code="bad_length")
    if length > ctx.media.max_file_size:
        raise too_large(f"Upload-Length exceeds the {ctx.media.max_file_size}-byte limit per file")
    upload_id = str(uuid.uuid4())
    object_key = keys.object_key(upload_id)
    data_key = DataKey.generate(ctx.keyring)
    multipart_id = await ctx.store.create_multipart(object_key)
    expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ctx.media.upload_expiry_s)
    try:
        upload = await uploads.create(
            ctx.db, ctx.posts, upload_id=upload_id, user_id=user_id, length=length, object_key=object_key,
            multipart_id=multipart_id, header=data_key.header, metadata=metadata, expires_at=expires_at,
            quota=ctx.media.user_quota, max_open=ctx.media.user_open_uploads)
    except BaseException as exc:
        await ctx.store.abort_multipart(object_key, multipart_id)
        if isinstance(exc, asyncpg.ForeignKeyViolationError):
            raise unauthorized("the token's user does not exist") from None
        raise
    log.info("upload_created", upload_id=upload.id, user_id=user_id, length=length)
    await emit(ctx.events, user_id, upload.id, upload.post_id, RECEIVED,
               {"length": length, "filename": metadata.get("filename", "")})
    return upload


async def head(ctx: MediaContext, user_id: str, upload_id: str) -> Upload:
    upload = await uploads.load(ctx.db, upload_id, user_id)
    _ended(upload)
    return upload


async def discard(ctx: MediaContext, upload: Upload, ending: UploadState) -> Upload | None:
    """Drop an unfinished upload's bytes (multipart parts, staged tail) and end it as ``ending``."""
    await ctx.store.abort_multipart(upload.object_key, upload.multipart_id)
    await staging.delete(ctx, upload)
    ended = await uploads.end(ctx.db, ctx.posts, upload, ending)
    if ended is not None:
        await emit(ctx.events, upload.user_id, upload.id, upload.post_id, FAILED, {"reason": ending.value})
    return ended


async def terminate(ctx: MediaContext, user_id: str, upload_id: str) -> None:
    upload = await uploads.load(ctx.db, upload_id, user_id)
    _ended(upload)
    if upload.state is not UploadState.UPLOADING:
        raise TusError("upload is complete; delete its post instead", status=409, code="complete")
    lock = UploadLock(ctx.redis, upload.id, ctx.media.lock_ttl_s)
    await lock.acquire()
    try:
        await discard(ctx, upload, UploadState.TERMINATED)
    finally:
        await lock.release()


async def patch(ctx: MediaContext, user_id: str, upload_id: str, offset: int, content_length: int | None,
                checksum: Checksum | None, body: AsyncIterator[bytes]) -> Upload:
    """Append the body at ``offset``. Returns the upload as committed (``offset`` is the new offset).

    Raises ``TusError`` (409 offset, 410 ended, 413 past the end, 415 refused content, 423 locked,
    429/503 over a limit, 460 checksum) or ``BodyInterrupted`` after committing what arrived.
    """
    upload = await uploads.load(ctx.db, upload_id, user_id)
    _ended(upload)
    if offset != upload.offset:
        raise conflict(f"Upload-Offset {offset} does not match the upload's offset {upload.offset}")
    if content_length is not None and offset + content_length > upload.length:
        raise too_large("Upload-Offset + Content-Length runs past Upload-Length; nothing was stored")
    async with ctx.node_limits.admit(ctx.request_reserve), ctx.user_slots.hold(user_id) as lease:
        lock = UploadLock(ctx.redis, upload.id, ctx.media.lock_ttl_s)
        await lock.acquire()
        try:
            # Re-read under the lock: another node may have written since the first read.
            upload = await uploads.load(ctx.db, upload_id, user_id)
            _ended(upload)
            if offset != upload.offset:
                raise conflict(f"Upload-Offset {offset} does not match the upload's offset {upload.offset}")
            if upload.offset == upload.length:
                return await finish(ctx, upload)  # a retried final PATCH: hand off (again, idempotently)
            async with KeepAlive(lock, lease, ctx.media.lock_ttl_s) as keepalive:
                upload = await _write(ctx, upload, content_length, checksum, body, keepalive)
            if upload.offset == upload.length:
                upload = await finish(ctx, upload)
            return upload
        finally:
            await lock.release()


async def _write(ctx: MediaContext, upload: Upload, content_length: int | None, checksum: Checksum | None,
                 body: AsyncIterator[bytes], keepalive: KeepAlive) -> Upload:
    part_size = ctx.media.part_size
    cipher = ChunkCipher(DataKey.open(ctx.keyring, upload.header))
    until = None if content_length is None else upload.offset + content_length
    tail, base = await staging.read(ctx, upload, until)
    asm = PartAssembler.restore(cipher, length=upload.length, part_size=part_size, offset=upload.offset,
                                upload_id=upload.id, tail=tail, held=base.held if base else 0)
    etags = list(upload.parts)
    content_type = upload.content_type
    hasher = CHECKSUMS[checksum.algorithm]() if checksum else None
    progressive = checksum is None and content_length is not None
    throttle = ProgressThrottle(upload.length, ctx.media.progress_interval_s)
    throttle.due(upload.offset, time.monotonic())
    committed = upload
    clock = time.monotonic()  # start of the not-yet-committed receiving time
    interrupted: BodyInterrupted | None = None
    new_tail: staging.Staged | None = None
    keep_base = False
    try:
        try:
            async for data in body:
                if hasher is not None:
                    hasher.update(data)
                for start in range(0, len(data), part_size):
                    parts = asm.feed(data[start:start + part_size])
                    if content_type is None and asm.offset >= sniff.needed(upload.length):
                        content_type = sniff.sniff(bytes(asm.head), upload.length)
                        if content_type is None:
                            metrics.REJECTED.inc()
                            await discard(ctx, committed, UploadState.REJECTED)
                            raise unsupported_media(
                                "content is not an allowed video or image container; the upload was deleted")
                    for part in parts:
                        etag = await staging.store_part(ctx, upload, part, base)
                        while len(etags) < part.number:
                            etags.append("")
                        etags[part.number - 1] = etag
                        if keepalive.lost:
                            raise locked()
                        if progressive:
                            now = time.monotonic()
                            before = committed.offset
                            committed = await uploads.commit(
                                ctx.db, committed, offset=min(part.number * part_size, upload.length),
                                parts=etags[:part.number], tail_key=None, content_type=content_type,
                                active_ms=int((now - clock) * 1000))
                            clock = now
                            metrics.BYTES.inc(committed.offset - before)
                if throttle.due(asm.offset, time.monotonic()) and asm.offset < upload.length:
                    await emit(ctx.events, upload.user_id, upload.id, upload.post_id, PROGRESS,
                               {"offset": asm.offset, "length": upload.length})
        except BodyInterrupted as exc:
            if hasher is not None:
                raise  # a checksummed chunk that did not fully arrive is discarded
            interrupted = exc
            if exc.reason == "idle":  # the stall is not uplink time
                clock = min(time.monotonic(), clock + ctx.media.idle_timeout_s)
        if hasher is not None and checksum is not None and hasher.digest() != checksum.digest:
            raise checksum_mismatch()
        if asm.offset != committed.offset:
            before = committed.offset
            if keepalive.lost:
                raise locked()
            held = asm.held
            staged = asm.take_tail(upload.id)
            if staged is not None:
                new_tail = await staging.stage(ctx, upload, asm.offset, staged, base if held else None)
            whole_parts = -(-asm.offset // part_size) if asm.offset == upload.length else asm.offset // part_size
            committed = await uploads.commit(
                ctx.db, committed, offset=asm.offset, parts=etags[:whole_parts],
                tail_key=new_tail.key if new_tail else None, content_type=content_type,
                active_ms=int((time.monotonic() - clock) * 1000))
            keep_base = new_tail is not None and new_tail.keeps_base
            new_tail = None
            metrics.BYTES.inc(committed.offset - before)
    finally:
        if new_tail is not None:  # staged but never committed
            for key in new_tail.created:
                await ctx.store.delete(key)
        # Also when the request fails after a part's commit: the old tail is nobody's any more.
        if upload.tail_key and committed.tail_key != upload.tail_key:
            await staging.release(ctx, upload.tail_key, base, keep_base=keep_base)
    if committed.offset < committed.length:
        await emit(ctx.events, upload.user_id, upload.id, upload.post_id, PROGRESS,
                   {"offset": committed.offset, "length": committed.length})
    if interrupted is not None:
        log.info("patch_interrupted", upload_id=upload.id, offset=committed.offset, reason=interrupted.reason)
        raise interrupted
    return committed
