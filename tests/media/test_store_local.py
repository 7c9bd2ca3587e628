"""The local-disk store's own mechanics: replaced parts leave no files behind, and publishing
works where the kernel refuses ``copy_file_range``."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from media.errors import StoreError
from media.store import Part
from media.store_local import FLUSH_SLICE, LocalStore


async def test_a_part_uploaded_again_replaces_the_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    mp = await store.create_multipart("k/obj")
    first = await store.upload_part("k/obj", mp, 1, b"old")
    second = await store.upload_part("k/obj", mp, 1, b"new")
    assert first != second
    assert sorted(p.name for p in (tmp_path / ".multipart" / mp).iterdir()) == [f"00001.{second}"]
    await store.complete_multipart("k/obj", mp, [Part(1, second)])
    assert await store.get("k/obj") == b"new"
    assert not (tmp_path / ".multipart" / mp).exists()


async def test_publishing_copies_through_a_buffer_where_copy_file_range_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refused, raising=False)
    store = LocalStore(tmp_path)
    parts = [os.urandom(FLUSH_SLICE + 123), os.urandom(FLUSH_SLICE * 2), os.urandom(7)]
    mp = await store.create_multipart("k/big")
    etags = [await store.upload_part("k/big", mp, n, data) for n, data in enumerate(parts, start=1)]
    await store.complete_multipart("k/big", mp, [Part(n, e) for n, e in enumerate(etags, start=1)])
    assert await store.get("k/big") == b"".join(parts)


async def test_parts_written_before_the_upgrade_still_complete(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    mp = await store.create_multipart("k/old")
    folder = tmp_path / ".multipart" / mp
    (folder / "00001").write_bytes(b"written by the previous release")  # its etag: sha256 prefix
    legacy = hashlib.sha256(b"written by the previous release").hexdigest()[:32]
    fresh = await store.upload_part("k/old", mp, 2, b", and this one after")
    with pytest.raises(StoreError):
        await store.complete_multipart("k/old", mp, [Part(1, "0" * 32), Part(2, fresh)])
    await store.complete_multipart("k/old", mp, [Part(1, legacy), Part(2, fresh)])
    assert await store.get("k/old") == b"written by the previous release, and this one after"
