"""The sans-I/O part assembler: sealed parts, staged tails, resume at any offset."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from media.config import CHUNK_SIZE, MediaSettings
from media.crypto import ChunkCipher, DataKey, decrypt_bytes
from media.errors import CryptoError, TusError
from media.keyring import Keyring
from media.parts import PartAssembler

PART = 3 * CHUNK_SIZE


@pytest.fixture
def key(tmp_path: Path) -> DataKey:
    return DataKey.generate(Keyring.load(MediaSettings(keyring_path=tmp_path / "k.json")))


def upload_in_pieces(key: DataKey, plain: bytes, cuts: list[int]) -> dict[int, bytes]:
    """Feed ``plain`` split at ``cuts``, staging and restoring the tail at every cut (a new request)."""
    parts: dict[int, bytes] = {}
    offset, tail = 0, None
    for end in [*cuts, len(plain)]:
        asm = PartAssembler.restore(ChunkCipher(key), length=len(plain), part_size=PART, offset=offset,
                                    upload_id="u1", tail=tail)
        for part in asm.feed(plain[offset:end]):
            parts[part.number] = part.data
        offset, tail = end, asm.take_tail("u1")
    return parts


def test_the_tail_hands_over_the_buffer_and_restore_adopts_it(key: DataKey) -> None:
    plain = os.urandom(PART + CHUNK_SIZE + 100)
    asm = PartAssembler(ChunkCipher(key), length=len(plain), part_size=PART)
    first = asm.feed(plain[:PART + CHUNK_SIZE + 10])
    tail = asm.take_tail("u1")
    assert isinstance(tail, bytearray)
    with pytest.raises(RuntimeError):  # spent: its buffer is the tail now
        asm.feed(b"more")
    with pytest.raises(RuntimeError):
        asm.take_tail("u1")
    restored = PartAssembler.restore(ChunkCipher(key), length=len(plain), part_size=PART,
                                     offset=PART + CHUNK_SIZE + 10, upload_id="u1", tail=tail)
    last = restored.feed(plain[PART + CHUNK_SIZE + 10:])
    assert last[0].data is tail  # the staged buffer became the part: never copied
    assert decrypt_bytes(key, b"".join(bytes(p.data) for p in [*first, *last])) == plain


@pytest.mark.parametrize("seed", range(8))
def test_any_split_gives_the_same_decryptable_object(key: DataKey, seed: int) -> None:
    rng = random.Random(seed)
    plain = os.urandom(rng.randrange(1, 4 * PART))
    cuts = sorted(rng.sample(range(1, len(plain)), min(5, len(plain) - 1))) if len(plain) > 1 else []
    parts = upload_in_pieces(key, plain, cuts)
    assert sorted(parts) == list(range(1, len(parts) + 1))
    assert all(len(parts[n]) == PART + 3 * 16 for n in list(parts)[:-1])
    assert decrypt_bytes(key, b"".join(parts[n] for n in sorted(parts))) == plain


def test_past_declared_length_is_refused(key: DataKey) -> None:
    asm = PartAssembler(ChunkCipher(key), length=10, part_size=PART)
    with pytest.raises(TusError) as info:
        asm.feed(b"x" * 11)
    assert info.value.status == 413
    assert asm.offset == 0


def test_head_is_kept_for_sniffing_across_requests(key: DataKey) -> None:
    asm = PartAssembler(ChunkCipher(key), length=1000, part_size=PART)
    asm.feed(b"ab")
    restored = PartAssembler.restore(ChunkCipher(key), length=1000, part_size=PART, offset=2, upload_id="u1",
                                     tail=asm.take_tail("u1"))
    restored.feed(b"cd")
    assert bytes(restored.head) == b"abcd"


def test_tail_from_another_offset_is_refused(key: DataKey) -> None:
    asm = PartAssembler(ChunkCipher(key), length=1000, part_size=PART)
    asm.feed(b"x" * 10)
    tail = asm.take_tail("u1")
    with pytest.raises(CryptoError):
        PartAssembler.restore(ChunkCipher(key), length=1000, part_size=PART, offset=11, upload_id="u1",
                              tail=bytes(tail or b""))
    with pytest.raises(CryptoError):
        PartAssembler.restore(ChunkCipher(key), length=1000, part_size=PART, offset=10, upload_id="u1", tail=None)


def test_memory_is_bounded_by_one_part(key: DataKey) -> None:
    """Whatever the file size, the assembler holds at most one sealed part plus one chunk."""
    length = 10 * PART + 12345
    asm = PartAssembler(ChunkCipher(key), length=length, part_size=PART)
    message = os.urandom(65_000)  # an odd message size, like a socket read
    peak = 0
    while asm.offset < length:
        asm.feed(message[: min(len(message), length - asm.offset)])
        peak = max(peak, asm.buffered)
    assert peak < PART + PART // CHUNK_SIZE * 16 + CHUNK_SIZE


def test_chunks_the_store_holds_are_not_buffered_and_the_part_says_so(key: DataKey) -> None:
    """Resuming with ``held`` (the store keeps the whole chunks in place): the tail is the partial
    chunk alone, the assembler buffers only what follows, and the completed part names the gap."""
    plain = os.urandom(PART + 500)
    sealed = CHUNK_SIZE + 16
    asm = PartAssembler(ChunkCipher(key), length=len(plain), part_size=PART)
    asm.feed(plain[:CHUNK_SIZE + 10])
    staged = asm.take_tail("u1")
    assert staged is not None
    store_keeps, tail = bytes(staged[:sealed]), staged[sealed:]
    restored = PartAssembler.restore(ChunkCipher(key), length=len(plain), part_size=PART, offset=CHUNK_SIZE + 10,
                                     upload_id="u1", tail=tail, held=sealed)
    assert restored.buffered == 10
    first, *rest = restored.feed(plain[CHUNK_SIZE + 10:])
    assert (first.number, first.held) == (1, sealed) and all(p.held == 0 for p in rest)
    assert restored.held == 0
    whole = store_keeps + bytes(first.data)
    assert decrypt_bytes(key, whole + b"".join(bytes(p.data) for p in rest)) == plain
    with pytest.raises(CryptoError):  # held must be whole sealed chunks, and no more than the offset has
        PartAssembler.restore(ChunkCipher(key), length=len(plain), part_size=PART, offset=CHUNK_SIZE + 10,
                              upload_id="u1", tail=tail, held=sealed + 1)
    with pytest.raises(CryptoError):
        PartAssembler.restore(ChunkCipher(key), length=len(plain), part_size=PART, offset=CHUNK_SIZE + 10,
                              upload_id="u1", tail=tail, held=2 * sealed)
