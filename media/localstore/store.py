"""Local-disk object store for embedded mode. Every file operation runs in a worker thread.

Layout under ``root``: objects at their key path; multipart objects in ``.multipart/<id>/``
(media/localstore/multipart.py: parts go into one spool file that becomes the object by a rename). An
object appears all at once, so a reader never sees a half-written one. Keys are relative,
'/'-separated and may not climb out of ``root``.

A part's etag is a random token named in its record, not a hash of its bytes: completing with an
etag finds exactly the write that returned it (a part uploaded again gets a new one, as on S3), and
no thread spends milliseconds hashing. The bytes are sealed chunk by chunk (media/crypto.py), so
corruption is caught where they are read. Upload I/O runs on low-priority threads beside the hubs,
so it is kept to short runs of CPU and disk (media/localstore/files.py): a run the scheduler cannot cut
short delays whatever woke behind it, a hub or PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from media.background import background_executor
from media.errors import StoreError
from media.localstore.files import Piece, publish_concatenated, read_sliced, write_atomic
from media.localstore.multipart import MultipartFolder
from media.store import Part

T = TypeVar("T")

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
        await self._write(lambda: write_atomic(path, data))

    async def put_file(self, key: str, path: Path, *, content_type: str, cache_control: str) -> None:
        # HTTP metadata has no place on a plain folder; whoever serves it sets the headers.
        target = self._path(key)

        # Not shutil.copyfile: its sendfile() copies a whole rendition in one kernel run.
        await self._write(lambda: publish_concatenated(target, [Piece(path)]))

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
                return read_sliced(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)  # shrank meanwhile: what was read
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
        folder = MultipartFolder(self._mp_dir(multipart_id))
        return await self._write(lambda: folder.write_part(number, data))

    async def stage_part(self, key: str, multipart_id: str, number: int, data: bytes | bytearray | memoryview,
                         *, at: int, base: str | None) -> str | None:
        folder = MultipartFolder(self._mp_dir(multipart_id))
        return await self._write(lambda: folder.stage(number, data, at=at, base=base))

    async def read_staged(self, key: str, multipart_id: str, number: int, token: str, size: int) -> bytearray:
        folder = MultipartFolder(self._mp_dir(multipart_id))
        return await self._write(lambda: folder.read_staged(number, token, size))

    async def complete_staged(self, key: str, multipart_id: str, number: int, data: bytes | bytearray,
                              *, at: int, base: str) -> str | None:
        folder = MultipartFolder(self._mp_dir(multipart_id))
        return await self._write(lambda: folder.complete_staged(number, data, at=at, base=base))

    async def complete_multipart(self, key: str, multipart_id: str, parts: Sequence[Part]) -> None:
        folder, target = MultipartFolder(self._mp_dir(multipart_id)), self._path(key)
        for part in parts:
            if not part.etag.isalnum():
                raise StoreError(f"part {part.number} does not match its etag", code="bad_part")

        def publish() -> None:
            if not folder.path.is_dir():
                if target.is_file():
                    return  # completed before: completion is idempotent
                raise StoreError("multipart upload not found", status=404, code="not_found")
            folder.publish(target, parts)
        await self._write(publish)

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._mp_dir(multipart_id), True)
