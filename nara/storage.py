"""The narrow store NARA-1r needs: fetch an upload, put outputs. media/ provides S3 later.

Object keys are produced by :mod:`nara.outputs`; this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Protocol

from nara.errors import StorageFailed

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
