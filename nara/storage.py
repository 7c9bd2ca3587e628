"""The narrow store NARA-1r needs: fetch an upload, put outputs.

The composition root wires ``MediaStore`` to media/'s ``WorkerStore`` (decrypted originals, any
configured object store); ``LocalStore`` is a plain directory for tests. Object keys are produced
by the pipeline (``nara.pipeline.Outputs``); this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable
from pathlib import Path, PurePosixPath
from typing import Protocol, TypeVar

from nara.errors import NaraError, StorageFailed

T = TypeVar("T")

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


class MediaStore(Protocol):
    async def fetch_to(self, key: str, path: Path) -> None:
        """Copy the object ``key`` to the local file ``path`` (streamed, never all in memory)."""

    async def put_file(self, key: str, path: Path, content_type: str, cache_control: str) -> None:
        """Store ``path`` under ``key``, replacing any previous object atomically."""

    async def get_bytes(self, key: str) -> bytes | None:
        """Small objects only (plans, playlists); None when absent."""


def _checked(key: str) -> PurePosixPath:
    rel = PurePosixPath(key)
    if rel.is_absolute() or ".." in rel.parts or not key or "\\" in key:
        raise StorageFailed(f"refusing object key {key!r}")
    return rel


class LocalStore:
    """A directory as an object store (embedded mode and tests). Writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, key: str) -> Path:
        return self.root / _checked(key)

    async def fetch_to(self, key: str, path: Path) -> None:
        src = self.path_of(key)
        try:
            await asyncio.to_thread(shutil.copyfile, src, path)
        except OSError as exc:
            raise StorageFailed(f"fetch {key}: {exc}") from exc

    async def put_file(self, key: str, path: Path, content_type: str, cache_control: str) -> None:
        await asyncio.to_thread(self._put, self.path_of(key), path)

    def _put(self, dest: Path, path: Path) -> None:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            raise StorageFailed(f"put {dest}: {exc}") from exc

    async def get_bytes(self, key: str) -> bytes | None:
        path = self.path_of(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageFailed(f"get {key}: {exc}") from exc


class BoundedStore:
    """Puts a time limit on every store call, so a hung object store fails the attempt
    (``storage_failed``, retried) instead of leaving a job heartbeating forever; any backend
    exception becomes ``storage_failed`` too."""

    def __init__(self, inner: MediaStore, base_s: float = 30.0, min_bytes_per_s: float = 2 * 1024**2) -> None:
        self.inner = inner
        self.base_s = base_s
        self.min_bytes_per_s = min_bytes_per_s

    def _limit(self, size: int) -> float:
        return self.base_s + size / self.min_bytes_per_s

    async def _bounded(self, what: str, limit: float, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(limit):
                return await call
        except TimeoutError:
            raise StorageFailed(f"{what} took longer than {limit:.0f}s") from None
        except NaraError:
            raise
        except Exception as exc:
            # A backend's own errors (S3, decryption) reach clients as one stable reason.
            raise StorageFailed(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def fetch_to(self, key: str, path: Path) -> None:
        # The size is unknown before the fetch: allow for the largest accepted upload.
        await self._bounded(f"fetch {key}", self._limit(8 * 1024**3), self.inner.fetch_to(key, path))

    async def put_file(self, key: str, path: Path, content_type: str, cache_control: str) -> None:
        size = (await asyncio.to_thread(path.stat)).st_size
        await self._bounded(f"put {key}", self._limit(size),
                            self.inner.put_file(key, path, content_type, cache_control))

    async def get_bytes(self, key: str) -> bytes | None:
        return await self._bounded(f"get {key}", self.base_s, self.inner.get_bytes(key))
