"""The local store and the time limits around any store or sink."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nara.errors import EventFailed, StorageFailed
from nara.events import announce
from nara.storage import BoundedStore, LocalStore


async def test_local_store_round_trip_and_overwrite(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    src = tmp_path / "a.txt"
    src.write_text("one")
    await store.put_file("media/u/x/a.txt", src, "text/plain", "no-cache")
    src.write_text("two")
    await store.put_file("media/u/x/a.txt", src, "text/plain", "no-cache")
    assert await store.get_bytes("media/u/x/a.txt") == b"two"
    assert await store.get_bytes("media/u/x/missing") is None
    out = tmp_path / "back.txt"
    await store.fetch_to("media/u/x/a.txt", out)
    assert out.read_text() == "two"
    assert [p.name for p in (tmp_path / "root/media/u/x").iterdir()] == ["a.txt"]  # no temp files left


@pytest.mark.parametrize("key", ["../escape", "/abs/path", "a/../../b", "", "a\\b"])
async def test_local_store_refuses_keys_outside_its_root(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "root")
    with pytest.raises(StorageFailed):
        await store.get_bytes(key)


class StuckStore:
    """A store whose backend never answers (a real object, not a mock of anything we test)."""

    async def fetch_to(self, key: str, path: Path) -> None:
        await asyncio.Event().wait()

    async def put_file(self, key: str, path: Path, content_type: str, cache_control: str) -> None:
        await asyncio.Event().wait()

    async def get_bytes(self, key: str) -> bytes | None:
        await asyncio.Event().wait()
        return None


class LateSink:
    """A sink whose own deadline passed (the real one raises TimeoutError then)."""

    async def media_event(
        self, user_id: str, upload_id: str, post_id: str, phase: str, data: dict[str, object]
    ) -> None:
        async with asyncio.timeout(0.05):
            await asyncio.Event().wait()


class BrokenStore(StuckStore):
    async def get_bytes(self, key: str) -> bytes | None:
        raise ConnectionResetError("backend went away")


async def test_backend_errors_become_storage_failed() -> None:
    with pytest.raises(StorageFailed, match="ConnectionResetError"):
        await BoundedStore(BrokenStore()).get_bytes("k")


async def test_hung_store_and_sink_fail_the_attempt(tmp_path: Path) -> None:
    store = BoundedStore(StuckStore(), base_s=0.1, min_bytes_per_s=1e12)
    f = tmp_path / "f"
    f.write_bytes(b"x")
    for call in (store.get_bytes("k"), store.put_file("k", f, "x", "y"), store.fetch_to("k", f)):
        with pytest.raises(StorageFailed):
            await call
    with pytest.raises(EventFailed):
        await announce(LateSink(), "u", "up", "p", "upgraded", {})
