"""The local-disk store's own mechanics: parts in order become the object by a rename, parts in
any other shape are assembled by a copy (also where the kernel refuses ``copy_file_range``), and
replaced parts leave nothing behind."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from media.errors import StoreError
from media.localstore.files import FLUSH_SLICE
from media.localstore.store import LocalStore
from media.store import Part


async def test_a_part_uploaded_again_replaces_the_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    mp = await store.create_multipart("k/obj")
    first = await store.upload_part("k/obj", mp, 1, b"old")
    second = await store.upload_part("k/obj", mp, 1, b"new")
    assert first != second
    names = sorted(p.name for p in (tmp_path / ".multipart" / mp).iterdir() if not p.name.startswith("."))
    assert names == [f"00001.{second}@0+3", "spool"]
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
    # Written last to first, so no part follows its predecessor in the spool: completion copies.
    etags = {n: await store.upload_part("k/big", mp, n, parts[n - 1]) for n in (3, 2, 1)}
    await store.complete_multipart("k/big", mp, [Part(n, etags[n]) for n in (1, 2, 3)])
    assert await store.get("k/big") == b"".join(parts)


async def test_parts_in_order_become_the_object_without_a_copy(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    parts = [os.urandom(FLUSH_SLICE * 2 + 5), os.urandom(FLUSH_SLICE * 2 + 5), os.urandom(99)]
    mp = await store.create_multipart("k/spooled")
    etags = [await store.upload_part("k/spooled", mp, n, data) for n, data in enumerate(parts, start=1)]
    spool = os.stat(tmp_path / ".multipart" / mp / "spool")
    await store.complete_multipart("k/spooled", mp, [Part(n, e) for n, e in enumerate(etags, start=1)])
    published = os.stat(tmp_path / "k" / "spooled")
    assert (published.st_ino, published.st_dev) == (spool.st_ino, spool.st_dev)  # renamed, not copied
    assert await store.get("k/spooled") == b"".join(parts)
    assert not (tmp_path / ".multipart" / mp).exists()


async def test_a_shorter_rewrite_of_the_last_part_leaves_no_stale_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    mp = await store.create_multipart("k/short")
    first = await store.upload_part("k/short", mp, 1, b"0123456789")
    await store.upload_part("k/short", mp, 2, b"a longer first write")
    second = await store.upload_part("k/short", mp, 2, b"short")
    await store.complete_multipart("k/short", mp, [Part(1, first), Part(2, second)])
    assert await store.get("k/short") == b"0123456789short"


async def test_a_part_rewritten_with_another_size_keeps_the_later_parts(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    mp = await store.create_multipart("k/mid")
    one = await store.upload_part("k/mid", mp, 1, b"1111")
    two = await store.upload_part("k/mid", mp, 2, b"2222")
    three = await store.upload_part("k/mid", mp, 3, b"3333")
    same_size = await store.upload_part("k/mid", mp, 2, b"bbbb")  # in place in the spool
    with pytest.raises(StoreError):
        await store.complete_multipart("k/mid", mp, [Part(1, one), Part(2, two), Part(3, three)])
    longer = await store.upload_part("k/mid", mp, 2, b"BBBBBB")  # its own file: part 3 is not moved
    with pytest.raises(StoreError):
        await store.complete_multipart("k/mid", mp, [Part(1, one), Part(2, same_size), Part(3, three)])
    await store.complete_multipart("k/mid", mp, [Part(1, one), Part(2, longer), Part(3, three)])
    assert await store.get("k/mid") == b"1111BBBBBB3333"


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


async def test_a_spool_cut_short_is_refused_not_padded(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    mp = await store.create_multipart("k/cut")
    etags = [await store.upload_part("k/cut", mp, n, b"x" * 100) for n in (1, 2)]
    os.truncate(tmp_path / ".multipart" / mp / "spool", 150)
    with pytest.raises(StoreError) as info:
        await store.complete_multipart("k/cut", mp, [Part(1, etags[0]), Part(2, etags[1])])
    assert info.value.code == "bad_part"
    assert not await store.exists("k/cut")
