"""Property: whatever order and sizes parts are written in, and however often each is replaced,
completing with the last etags gives exactly those parts' bytes, and an older etag is refused."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.errors import StoreError
from media.localstore.multipart import MultipartFolder
from media.store import Part

writes = st.lists(st.tuples(st.integers(1, 5), st.integers(0, 40)), min_size=1, max_size=14)


@settings(max_examples=150, deadline=None)
@given(writes=writes, seed=st.integers(0, 255))
def test_completion_gives_the_last_write_of_every_named_part(writes: list[tuple[int, int]], seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = MultipartFolder(Path(tmp) / "mp")
        folder.path.mkdir()
        latest: dict[int, tuple[str, bytes]] = {}
        replaced: dict[int, str] = {}
        for i, (number, size) in enumerate(writes):
            data = bytes([(seed + i) % 256]) * size
            etag = folder.write_part(number, data)
            if number in latest:
                replaced[number] = latest[number][0]
            latest[number] = (etag, data)
        named = sorted(latest)
        if replaced:  # a replaced write is not a part any more, and refusing it changes nothing
            stale = next(iter(replaced))
            with pytest.raises(StoreError):
                folder.publish(Path(tmp) / "obj", [Part(n, replaced[n] if n == stale else latest[n][0])
                                                   for n in named])
            assert not (Path(tmp) / "obj").exists()
        folder.publish(Path(tmp) / "obj", [Part(n, latest[n][0]) for n in named])
        assert (Path(tmp) / "obj").read_bytes() == b"".join(latest[n][1] for n in named)
        assert not folder.path.exists()


def folder_at(tmp_path: Path) -> MultipartFolder:
    folder = MultipartFolder(tmp_path / "mp")
    folder.path.mkdir()
    return folder


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(offset, length) of every write into a spool, as it happens (the writes still happen)."""
    from media.localstore import multipart as local_multipart
    seen: list[tuple[int, int]] = []
    real = local_multipart.write_flushed

    def spy(fd: int, data: bytes | bytearray | memoryview, at: int) -> None:
        seen.append((at, len(data)))
        real(fd, data, at)

    monkeypatch.setattr(local_multipart, "write_flushed", spy)
    return seen


def test_staged_chunks_are_written_once(tmp_path: Path, writes: list[tuple[int, int]]) -> None:
    folder = folder_at(tmp_path)
    first = folder.write_part(1, b"A" * 10)
    part = b"0123456789" * 3
    token = folder.stage(2, part[:10], at=0, base=None)
    assert token is not None
    token = folder.stage(2, part[10:25], at=10, base=token)
    assert token is not None
    assert folder.read_staged(2, token, 25) == part[:25]
    writes.clear()
    second = folder.write_part(2, part)
    assert writes == [(10 + 25, 5)]  # only what was not staged
    folder.publish(tmp_path / "obj", [Part(1, first), Part(2, second)])
    assert (tmp_path / "obj").read_bytes() == b"A" * 10 + part


def test_a_writer_that_lost_its_lock_cannot_stage_over_newer_bytes(tmp_path: Path) -> None:
    folder = folder_at(tmp_path)
    base = folder.stage(1, b"x" * 8, at=0, base=None)
    newer = folder.stage(1, b"y" * 8, at=8, base=base)
    assert base is not None and newer is not None
    assert folder.stage(1, b"z" * 8, at=8, base=base) is None  # resumed from base, but someone went on
    assert folder.stage(1, b"z" * 4, at=0, base=None) is None
    assert folder.read_staged(1, newer, 16) == b"x" * 8 + b"y" * 8
    assert folder.stage(1, b"w", at=3, base="0" * 32) is None  # a base it never staged


def test_a_part_with_other_bytes_drops_the_staging_it_overwrote(tmp_path: Path) -> None:
    folder = folder_at(tmp_path)
    token = folder.stage(1, b"staged..", at=0, base=None)
    assert token is not None
    etag = folder.write_part(1, b"DIFFERENT bytes")
    with pytest.raises(StoreError) as info:
        folder.read_staged(1, token, 8)
    assert info.value.code == "staged_missing"
    folder.publish(tmp_path / "obj", [Part(1, etag)])
    assert (tmp_path / "obj").read_bytes() == b"DIFFERENT bytes"


def test_no_staging_where_the_parts_place_is_not_settled(tmp_path: Path) -> None:
    folder = folder_at(tmp_path)
    assert folder.stage(2, b"x", at=0, base=None) is None  # part 1 unwritten: where would 2 start?
    for number in (1, 2, 3):
        folder.write_part(number, b"part")
    assert folder.stage(2, b"x", at=0, base=None) is None  # written already, and part 3 sits after it


def test_a_staged_part_is_completed_in_place_without_reading_it_back(
        tmp_path: Path, writes: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    from media.localstore import multipart as local_multipart

    def no_compare(fd: int, at: int, data: memoryview) -> bool:
        raise AssertionError("the staged bytes were read back")

    monkeypatch.setattr(local_multipart, "_same_bytes", no_compare)
    folder = folder_at(tmp_path)
    first = folder.write_part(1, b"A" * 10)
    part = b"0123456789" * 3
    token = folder.stage(2, part[:10], at=0, base=None)
    assert token is not None
    writes.clear()
    second = folder.complete_staged(2, part[10:], at=10, base=token)
    assert second is not None
    assert writes == [(10 + 10, 20)]
    assert folder.read_staged(2, token, 10) == part[:10]  # kept: a retry may resume from it
    folder.publish(tmp_path / "obj", [Part(1, first), Part(2, second)])
    assert (tmp_path / "obj").read_bytes() == b"A" * 10 + part


def test_completing_a_staging_that_is_gone_or_staged_past_is_refused(tmp_path: Path) -> None:
    folder = folder_at(tmp_path)
    base = folder.stage(1, b"x" * 8, at=0, base=None)
    assert base is not None
    assert folder.complete_staged(1, b"y" * 8, at=8, base="0" * 32) is None  # never staged
    assert folder.complete_staged(1, b"y" * 8, at=4, base=base) is None  # not what it staged
    newer = folder.stage(1, b"y" * 8, at=8, base=base)
    assert newer is not None
    assert folder.complete_staged(1, b"z" * 8, at=8, base=base) is None  # someone went on from base
    assert folder.read_staged(1, newer, 16) == b"x" * 8 + b"y" * 8  # and their bytes are intact
    etag = folder.complete_staged(1, b"z" * 4, at=16, base=newer)
    assert etag is not None
    folder.publish(tmp_path / "obj", [Part(1, etag)])
    assert (tmp_path / "obj").read_bytes() == b"x" * 8 + b"y" * 8 + b"z" * 4


def test_a_part_completed_from_its_staging_can_be_completed_again(tmp_path: Path) -> None:
    """A request with a checksum completes the part, then fails its digest and commits nothing:
    the next attempt resumes from the same staging and writes the part again."""
    folder = folder_at(tmp_path)
    base = folder.stage(1, b"s" * 6, at=0, base=None)
    assert base is not None
    assert folder.complete_staged(1, b"bad!", at=6, base=base) is not None
    etag = folder.complete_staged(1, b"good", at=6, base=base)
    assert etag is not None
    folder.publish(tmp_path / "obj", [Part(1, etag)])
    assert (tmp_path / "obj").read_bytes() == b"s" * 6 + b"good"
