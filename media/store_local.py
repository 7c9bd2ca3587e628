"""Local-disk object store for embedded mode. Every file operation runs in a worker thread.

Layout under ``root``: objects at their key path; multipart parts in ``.multipart/<id>/<n>.<etag>``;
publishing concatenates the parts into a temporary file then renames it, so a reader never sees a
half-written object. Keys are relative, '/'-separated and may not climb out of ``root``.

A part's etag is a random token named in its file name, not a hash of its bytes: completing with an
etag finds exactly the write that returned it (a part uploaded again gets a new one, as on S3), and
no thread spends milliseconds hashing. The bytes are sealed chunk by chunk (media/crypto.py), so
corruption is caught where they are read. Upload I/O runs on low-priority threads beside the hubs,
so it is kept to short runs of CPU: a run the scheduler cannot cut short delays whatever woke
behind it on that CPU, a hub or PostgreSQL.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import BinaryIO, TypeVar

from media.background import background_executor
from media.errors import StoreError
from media.store import Part

T = TypeVar("T")

#: Bytes written between two flushes to disk. One fsync of a whole 8 MiB part (or of a 200 MB
#: object being published) holds the disk for tens of milliseconds, and every other fsync on it,
#: PostgreSQL's commits included, queues behind: chat on the same machine stalled. Flushing every
#: slice keeps each flush short, so the commits slip in between.
FLUSH_SLICE = 1 << 20

#: Bytes per write (or in-kernel copy) system call. Copying into the page cache is kernel work that
#: a kernel preempting only on the way back to user space does not interrupt: beside the uploads
#: benchmark a 1 MiB write ran 2.5 ms at a time, and a hub or PostgreSQL woken on that CPU waited
#: for its end. A 128 KiB call returns within a few tenths of a millisecond.
WRITE_SLICE = 128 << 10


class _Flushing:
    """Counts bytes written to ``fd`` and flushes them to disk every ``FLUSH_SLICE``."""

    def __init__(self, fd: int) -> None:
        self.fd, self.unflushed = fd, 0

    def wrote(self, n: int) -> None:
        self.unflushed += n
        if self.unflushed >= FLUSH_SLICE:
            self.flush()

    def flush(self) -> None:
        if self.unflushed:
            os.fdatasync(self.fd)
            self.unflushed = 0


def _write_flushed(fh: BinaryIO, data: bytes | bytearray) -> None:
    fh.flush()  # what follows bypasses the buffer
    flushing = _Flushing(fh.fileno())
    view, done = memoryview(data), 0
    while done < len(view):
        n = os.write(flushing.fd, view[done:done + WRITE_SLICE])
        done += n
        flushing.wrote(n)
    flushing.flush()


def _copy_flushed(src: BinaryIO, out: BinaryIO) -> None:
    """Append all of ``src`` to ``out``: in the kernel where it can (``copy_file_range``), so the
    bytes never pass through Python; else through a buffer. Sliced and flushed as above."""
    copy_range = getattr(os, "copy_file_range", None)
    out.flush()
    flushing = _Flushing(out.fileno())
    while True:
        copied = -1
        if copy_range is not None:
            try:
                copied = copy_range(src.fileno(), flushing.fd, WRITE_SLICE)
            except OSError as exc:  # a file system or kernel without it
                if exc.errno not in _NO_COPY_RANGE:
                    raise
                copy_range = None
        if copied < 0:
            block = src.read(WRITE_SLICE)
            view, copied = memoryview(block), 0
            while copied < len(view):
                copied += os.write(flushing.fd, view[copied:])
        if not copied:
            break
        flushing.wrote(copied)
    flushing.flush()


_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}


def _part_file(folder: Path, part: Part) -> Path:
    path = folder / f"{part.number:05d}.{part.etag}"
    if path.is_file():
        return path
    # Parts written before etags were tokens: named by number, etag the start of their sha256.
    # Uploads live a day, so one written across an upgrade completes with these.
    legacy = folder / f"{part.number:05d}"
    if legacy.is_file() and _sha256_prefix(legacy) == part.etag:
        return legacy
    raise StoreError(f"part {part.number} does not match its etag", code="bad_part")


def _sha256_prefix(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(FLUSH_SLICE):
            digest.update(block)
    return digest.hexdigest()[:32]


def _publish_concatenated(target: Path, sources: Sequence[Path]) -> None:
    """``target`` becomes the files ``sources`` one after the other, all at once (rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as out:
            for source in sources:
                with open(source, "rb") as src:
                    _copy_flushed(src, out)
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_atomic(path: Path, data: bytes | bytearray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as fh:
        _write_flushed(fh, data)
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class LocalStore:
    min_part_size = 1

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._writer = background_executor()  # parts, tails and publishing: the low-priority lane

    async def _write(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not key or key.startswith("/") or self.root not in path.parents:
            raise StoreError(f"invalid object key {key!r}", code="invalid_key")
        return path

    def _mp_dir(self, multipart_id: str) -> Path:
        if not multipart_id.isalnum():
            raise StoreError("invalid multipart id", code="invalid_key")
        return self.root / ".multipart" / multipart_id

    async def put(self, key: str, data: bytes | bytearray) -> None:
        path = self._path(key)
        await self._write(lambda: _write_atomic(path, data))

    async def put_file(self, key: str, path: Path, *, content_type: str, cache_control: str) -> None:
        # HTTP metadata has no place on a plain folder; whoever serves it sets the headers.
        target = self._path(key)

        # Not shutil.copyfile: its sendfile() copies a whole rendition in one kernel run.
        await self._write(lambda: _publish_concatenated(target, [path]))

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise StoreError(f"object {key!r} not found", status=404, code="not_found") from None

    async def get_buffer(self, key: str) -> bytearray:
        path = self._path(key)

        def read() -> bytearray:
            with open(path, "rb", buffering=0) as fh:
                buf = bytearray(os.fstat(fh.fileno()).st_size)
                done = 0
                with memoryview(buf) as view:  # released before the caller may resize the buffer
                    while done < len(buf):  # short reads, like the writes
                        n = fh.readinto(view[done:done + WRITE_SLICE])
                        if not n:
                            break
                        done += n
                del buf[done:]  # the file shrank meanwhile: keep what was read
                return buf
        try:
            return await self._write(read)
        except FileNotFoundError:
            raise StoreError(f"object {key!r} not found", status=404, code="not_found") from None

    async def stream(self, key: str, *, block_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            fh = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise StoreError(f"object {key!r} not found", status=404, code="not_found") from None
        try:
            while block := await asyncio.to_thread(fh.read, block_size):
                yield block
        finally:
            await asyncio.to_thread(fh.close)

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        def read() -> bytes:
            with open(self._path(key), "rb") as fh:
                fh.seek(start)
                return fh.read(max(0, end - start))
        return await asyncio.to_thread(read)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def size(self, key: str) -> int | None:
        def stat() -> int | None:
            try:
                return self._path(key).stat().st_size
            except FileNotFoundError:
                return None
        return await asyncio.to_thread(stat)

    async def list_keys(self, prefix: str) -> AsyncIterator[str]:
        def walk() -> list[str]:
            found = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = [d for d in dirnames if d != ".multipart"]
                for name in filenames:
                    rel = (Path(dirpath) / name).relative_to(self.root).as_posix()
                    if rel.startswith(prefix) and not name.endswith(".tmp"):
                        found.append(rel)
            return sorted(found)
        for key in await asyncio.to_thread(walk):
            yield key

    async def create_multipart(self, key: str) -> str:
        self._path(key)
        multipart_id = secrets.token_hex(16)
        await asyncio.to_thread(self._mp_dir(multipart_id).mkdir, parents=True)
        return multipart_id

    async def upload_part(self, key: str, multipart_id: str, number: int, data: bytes | bytearray) -> str:
        folder = self._mp_dir(multipart_id)
        etag = secrets.token_hex(16)

        def write() -> str:
            if not folder.is_dir():
                raise StoreError("multipart upload not found", status=404, code="not_found")
            written = f"{number:05d}.{etag}"
            _write_atomic(folder / written, data)
            for stale in folder.glob(f"{number:05d}.*"):  # this number's earlier writes: replaced
                if stale.name != written:
                    stale.unlink(missing_ok=True)
            return etag
        return await self._write(write)

    async def complete_multipart(self, key: str, multipart_id: str, parts: Sequence[Part]) -> None:
        folder, target = self._mp_dir(multipart_id), self._path(key)
        for part in parts:
            if not part.etag.isalnum():
                raise StoreError(f"part {part.number} does not match its etag", code="bad_part")

        def publish() -> None:
            if not folder.is_dir():
                if target.is_file():
                    return  # completed before: completion is idempotent
                raise StoreError("multipart upload not found", status=404, code="not_found")
            _publish_concatenated(target, [_part_file(folder, part) for part in parts])
            shutil.rmtree(folder, ignore_errors=True)
        await self._write(publish)

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._mp_dir(multipart_id), True)
