"""One suite for every store backend: local disk and a real S3 API (moto's server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from media.config import MediaSettings
from media.crypto import DataKey, encrypt_bytes, header_key
from media.errors import CryptoError, StoreError
from media.keyring import Keyring
from media.store import BufferReader, FilePutter, Lister, MediaStore, Part, RangeReader, read_buffer
from media.worker_store import WorkerStore


async def test_put_get_exists_size_delete(store: MediaStore) -> None:
    assert not await store.exists("a/b.bin")
    assert await store.size("a/b.bin") is None
    await store.put("a/b.bin", b"hello")
    assert await store.exists("a/b.bin")
    assert await store.size("a/b.bin") == 5
    assert await store.get("a/b.bin") == b"hello"
    await store.put("a/b.bin", b"again")
    assert await store.get("a/b.bin") == b"again"
    await store.delete("a/b.bin")
    await store.delete("a/b.bin")  # deleting a missing object is fine
    assert not await store.exists("a/b.bin")


async def test_get_missing_raises_not_found(store: MediaStore) -> None:
    with pytest.raises(StoreError) as info:
        await store.get("missing/object")
    assert info.value.code == "not_found"


async def test_get_buffer_reads_into_a_buffer_of_the_callers(store: MediaStore) -> None:
    data = os.urandom(700_000)  # several read blocks
    await store.put("buf/obj", bytearray(data))
    assert isinstance(store, BufferReader)
    buf = await store.get_buffer("buf/obj")
    assert isinstance(buf, bytearray) and buf == data
    buf += b"the caller's to grow"
    assert await store.get("buf/obj") == data
    assert await read_buffer(store, "buf/obj") == data
    with pytest.raises(StoreError) as info:
        await store.get_buffer("buf/missing")
    assert info.value.code == "not_found"


async def test_stream_in_blocks(store: MediaStore) -> None:
    data = bytes(range(256)) * 1000
    await store.put("s/obj", data)
    blocks = [b async for b in store.stream("s/obj", block_size=10_000)]
    assert b"".join(blocks) == data
    assert max(len(b) for b in blocks) <= 10_000


async def test_multipart_replace_part_and_complete(store: MediaStore) -> None:
    size = max(store.min_part_size, 1000)
    first, second, last = b"a" * size, b"b" * size, b"tail"
    mp = await store.create_multipart("mp/obj")
    replaced = await store.upload_part("mp/obj", mp, 1, b"x" * size)
    etags = [await store.upload_part("mp/obj", mp, 1, first)]  # uploading a number again replaces it
    etags.append(await store.upload_part("mp/obj", mp, 2, second))
    etags.append(await store.upload_part("mp/obj", mp, 3, last))
    assert not await store.exists("mp/obj")  # nothing readable before completion
    with pytest.raises(StoreError):  # the replaced write is not a part any more
        await store.complete_multipart("mp/obj", mp, [Part(1, replaced), Part(2, etags[1]), Part(3, etags[2])])
    assert not await store.exists("mp/obj")
    await store.complete_multipart("mp/obj", mp, [Part(i + 1, e) for i, e in enumerate(etags)])
    assert await store.get("mp/obj") == first + second + last
    await store.complete_multipart("mp/obj", mp, [Part(i + 1, e) for i, e in enumerate(etags)])  # idempotent


async def test_multipart_abort_drops_parts(store: MediaStore) -> None:
    mp = await store.create_multipart("mp/aborted")
    await store.upload_part("mp/aborted", mp, 1, b"z" * 100)
    await store.abort_multipart("mp/aborted", mp)
    await store.abort_multipart("mp/aborted", mp)  # aborting twice is fine
    assert not await store.exists("mp/aborted")


async def test_optional_capabilities(store: MediaStore) -> None:
    await store.put("cap/one", b"0123456789")
    await store.put("cap/two", b"x")
    assert isinstance(store, RangeReader) and isinstance(store, Lister)
    assert await store.read_range("cap/one", 2, 5) == b"234"
    assert [k async for k in store.list_keys("cap/")] == ["cap/one", "cap/two"]


async def test_put_file(store: MediaStore, tmp_path: Path) -> None:
    source = tmp_path / "rendition.mp4"
    source.write_bytes(b"r" * 300_000)
    assert isinstance(store, FilePutter)
    await store.put_file("out/r.mp4", source, content_type="video/mp4", cache_control="no-cache")
    assert await store.get("out/r.mp4") == b"r" * 300_000


async def test_nara_store_decrypts_originals(store: MediaStore, tmp_path: Path) -> None:
    keyring = Keyring.load(MediaSettings(keyring_path=tmp_path / "k.json"))
    plain = os.urandom(200_000)
    key = DataKey.generate(keyring)
    await store.put("originals/x", encrypt_bytes(key, plain))
    await store.put(header_key("originals/x"), key.header.encode())
    nara = WorkerStore(store, keyring)
    await nara.fetch_to("originals/x", tmp_path / "source")
    assert (tmp_path / "source").read_bytes() == plain
    assert await nara.get_bytes("missing") is None
    await store.put("originals/x", encrypt_bytes(key, plain)[:-5])  # truncated: nothing appears
    with pytest.raises(CryptoError):
        await nara.fetch_to("originals/x", tmp_path / "broken")
    assert not (tmp_path / "broken").exists() and list(tmp_path.glob(".broken*")) == []
