"""Property: whatever order and sizes parts are written in, and however often each is replaced,
completing with the last etags gives exactly those parts' bytes, and an older etag is refused."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.errors import StoreError
from media.local_multipart import MultipartFolder
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
