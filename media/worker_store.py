"""The store NARA workers use (``nara.storage.MediaStore``), built on the media store.

Originals are decrypted on the way out, streamed block by block into a local file (never whole in
memory), and the file appears only once every chunk authenticated. Outputs (renditions, playlists,
plans) are stored as given: they are what viewers download.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import BinaryIO

from media.crypto import iter_plaintext
from media.errors import StoreError
from media.keyring import Keyring
from media.store import FilePutter, MediaStore


class WorkerStore:
    def __init__(self, store: MediaStore, keyring: Keyring) -> None:
        self._store = store
        self._keyring = keyring

    async def fetch_to(self, key: str, path: Path) -> None:
        """Decrypt original ``key`` into ``path``. Raises ``StoreError`` / ``CryptoError`` (MediaError)."""
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        fh: BinaryIO = await asyncio.to_thread(open, tmp, "wb")
        try:
            async for block in iter_plaintext(self._store, self._keyring, key):
                await asyncio.to_thread(fh.write, block)
            await asyncio.to_thread(fh.close)
            await asyncio.to_thread(os.replace, tmp, path)
        except BaseException:
            await asyncio.to_thread(fh.close)
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
            raise

    async def put_file(self, key: str, path: Path, content_type: str, cache_control: str) -> None:
        if isinstance(self._store, FilePutter):
            await self._store.put_file(key, path, content_type=content_type, cache_control=cache_control)
        else:
            await self._store.put(key, await asyncio.to_thread(path.read_bytes))

    async def get_bytes(self, key: str) -> bytes | None:
        try:
            return await self._store.get(key)
        except StoreError as exc:
            if exc.code == "not_found":
                return None
            raise
