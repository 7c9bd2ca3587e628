"""The chunked AES-256-GCM construction, the keyring and re-wrap (pure, plus one store round trip)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from media.config import CHUNK_SIZE, MediaSettings
from media.crypto import (
    TAG,
    ChunkCipher,
    DataKey,
    Header,
    decrypt_bytes,
    encrypt_bytes,
    header_key,
    iter_plaintext,
    rewrap,
)
from media.errors import CryptoError, KeyNotFound
from media.keyring import Keyring
from media.rotation import rewrap_object
from media.store import MediaStore

UNIT = CHUNK_SIZE + TAG


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return Keyring.load(MediaSettings(keyring_path=tmp_path / "keyring.json"))


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17])
def test_round_trip(keyring: Keyring, size: int) -> None:
    plain = os.urandom(size)
    key = DataKey.generate(keyring)
    stored = encrypt_bytes(key, plain)
    assert len(stored) == size + max(1, -(-size // CHUNK_SIZE)) * TAG
    assert decrypt_bytes(DataKey.open(keyring, Header.decode(key.header.encode())), stored) == plain


def test_truncation_at_a_chunk_boundary_is_detected(keyring: Keyring) -> None:
    key = DataKey.generate(keyring)
    stored = encrypt_bytes(key, os.urandom(3 * CHUNK_SIZE + 5))
    with pytest.raises(CryptoError):
        decrypt_bytes(key, stored[: 2 * UNIT])
    with pytest.raises(CryptoError):
        decrypt_bytes(key, stored[:-1])
    with pytest.raises(CryptoError):
        decrypt_bytes(key, b"")


def test_reordering_and_tampering_are_detected(keyring: Keyring) -> None:
    key = DataKey.generate(keyring)
    stored = encrypt_bytes(key, os.urandom(3 * CHUNK_SIZE))
    swapped = stored[UNIT:2 * UNIT] + stored[:UNIT] + stored[2 * UNIT:]
    with pytest.raises(CryptoError):
        decrypt_bytes(key, swapped)
    flipped = bytearray(stored)
    flipped[100] ^= 1
    with pytest.raises(CryptoError):
        decrypt_bytes(key, bytes(flipped))
    with pytest.raises(CryptoError):
        decrypt_bytes(key, stored + stored[-UNIT:])  # data after the final chunk


def test_another_objects_key_fails(keyring: Keyring) -> None:
    stored = encrypt_bytes(DataKey.generate(keyring), b"secret")
    with pytest.raises(CryptoError):
        decrypt_bytes(DataKey.generate(keyring), stored)


def test_header_round_trip_and_garbage() -> None:
    header = Header(key_id="mk-1", wrapped_key=b"w" * 40, nonce_prefix=b"p" * 8)
    assert Header.decode(header.encode()) == header
    for bad in (b"", b"AMRO", b"XXXX" + header.encode()[4:], header.encode()[:-3]):
        with pytest.raises(CryptoError):
            Header.decode(bad)


def test_keyring_file_is_private_and_rotation_keeps_old_keys(keyring: Keyring, tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    old_id, _ = keyring.current()
    key = DataKey.generate(keyring)
    stored = encrypt_bytes(key, b"old object")
    new_id = keyring.rotate()
    assert keyring.current()[0] == new_id != old_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Old objects stay readable; new objects use the newest key; another process sees the rotation.
    assert decrypt_bytes(DataKey.open(keyring, key.header), stored) == b"old object"
    assert DataKey.generate(keyring).header.key_id == new_id
    other = Keyring.load(MediaSettings(keyring_path=path))
    assert other.key_ids() == [old_id, new_id]


def test_rotate_if_due(keyring: Keyring) -> None:
    created = keyring.newest().created_at
    assert keyring.rotate_if_due(3600, now=created + 10) is None
    assert keyring.rotate_if_due(3600, now=created + 7200) is not None


def test_rewrap_changes_only_the_header(keyring: Keyring) -> None:
    key = DataKey.generate(keyring)
    stored = encrypt_bytes(key, b"x" * 100_000)
    keyring.rotate()
    fresh = rewrap(key.header, keyring)
    assert fresh.key_id == keyring.current()[0] != key.header.key_id
    assert fresh.nonce_prefix == key.header.nonce_prefix
    assert decrypt_bytes(DataKey.open(keyring, fresh), stored) == b"x" * 100_000


def test_env_master_keys_are_read_only() -> None:
    import base64
    entry = "prod-1:" + base64.b64encode(b"k" * 32).decode()
    keyring = Keyring.load(MediaSettings(master_keys=(entry,)))
    assert keyring.current() == ("prod-1", b"k" * 32)
    with pytest.raises(KeyNotFound):
        keyring.get("nope")
    with pytest.raises(CryptoError):
        keyring.rotate()
    with pytest.raises(CryptoError):
        Keyring.load(MediaSettings(master_keys=("bad",)))


def test_tail_sealing_is_bound_to_its_context(keyring: Keyring) -> None:
    cipher = ChunkCipher(DataKey.generate(keyring))
    sealed = cipher.seal_tail(b"partial", b"ctx-1")
    assert cipher.open_tail(sealed, b"ctx-1") == b"partial"
    with pytest.raises(CryptoError):
        cipher.open_tail(sealed, b"ctx-2")


async def test_stored_object_streams_and_rewraps_without_touching_data(store: MediaStore, tmp_path: Path) -> None:
    keyring = Keyring.load(MediaSettings(keyring_path=tmp_path / "ring.json"))
    plain = os.urandom(5 * CHUNK_SIZE + 3)
    key = DataKey.generate(keyring)
    data = encrypt_bytes(key, plain)
    await store.put("obj/1", data)
    await store.put(header_key("obj/1"), key.header.encode())
    assert b"".join([b async for b in iter_plaintext(store, keyring, "obj/1", block_size=1000)]) == plain
    new_id = keyring.rotate()
    assert await rewrap_object(store, keyring, "obj/1") == new_id
    assert await store.get("obj/1") == data  # data untouched
    assert Header.decode(await store.get(header_key("obj/1"))).key_id == new_id
    assert b"".join([b async for b in iter_plaintext(store, keyring, "obj/1")]) == plain
