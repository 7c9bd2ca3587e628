"""Encryption at rest: AES-256-GCM in a streaming, chunked construction (sans-I/O core).

An object is stored as two things: the data object, a sequence of sealed chunks, and a small
header object beside it (``<key>.hdr``). Keeping the header apart lets a re-wrap replace it without
touching (or copying) the data, which S3 cannot rewrite in place.

Data: the plaintext is cut into ``chunk_size`` (64 KiB) chunks; the last may be shorter (never
empty unless the whole plaintext is empty). Chunk ``i`` is sealed with the object's random data key
under the nonce ``nonce_prefix (8 bytes) || i (4 bytes, big endian)`` and the associated data
``MAGIC || version || chunk_size || final`` where ``final`` is 1 for the last chunk only. So:
reordering changes the nonce, truncation at a chunk boundary leaves a last chunk sealed non-final,
appending after the final chunk and any bit flip all fail authentication.

Header: ``MAGIC "AMRO" | version u8 | chunk_size u32 | nonce_prefix 8 | len u8 | key id |
len u16 | data key wrapped with the master key (AES key wrap, RFC 3394)``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from media.config import CHUNK_SIZE
from media.errors import CryptoError
from media.store import ObjectStore

MAGIC = b"AMRO"
VERSION = 1
TAG = 16
PREFIX_LEN = 8
MAX_CHUNKS = 2**32
HEADER_SUFFIX = ".hdr"


class MasterKeys(Protocol):
    """What the crypto needs from a keyring (see ``media.keyring.Keyring``)."""

    def current(self) -> tuple[str, bytes]: ...

    def get(self, key_id: str) -> bytes: ...


def header_key(object_key: str) -> str:
    return object_key + HEADER_SUFFIX


def wrap_key(master: bytes, data_key: bytes) -> bytes:
    return aes_key_wrap(master, data_key)


def unwrap_key(master: bytes, wrapped: bytes) -> bytes:
    try:
        return aes_key_unwrap(master, wrapped)
    except InvalidUnwrap:
        raise CryptoError("data key does not unwrap with its master key") from None


@dataclass(frozen=True, slots=True)
class Header:
    key_id: str
    wrapped_key: bytes
    nonce_prefix: bytes
    chunk_size: int = CHUNK_SIZE
    version: int = VERSION

    def encode(self) -> bytes:
        kid = self.key_id.encode("ascii")
        return (MAGIC + struct.pack(">BI", self.version, self.chunk_size) + self.nonce_prefix
                + struct.pack(">B", len(kid)) + kid + struct.pack(">H", len(self.wrapped_key)) + self.wrapped_key)

    @classmethod
    def decode(cls, raw: bytes) -> Header:
        try:
            if raw[:4] != MAGIC:
                raise CryptoError("not an encrypted media header")
            version, chunk_size = struct.unpack_from(">BI", raw, 4)
            if version != VERSION:
                raise CryptoError(f"unknown header version {version}")
            prefix = raw[9:17]
            (kid_len,) = struct.unpack_from(">B", raw, 17)
            kid = raw[18:18 + kid_len].decode("ascii")
            (wrapped_len,) = struct.unpack_from(">H", raw, 18 + kid_len)
            wrapped = raw[20 + kid_len:20 + kid_len + wrapped_len]
        except (struct.error, UnicodeDecodeError):
            raise CryptoError("malformed media header") from None
        if len(prefix) != PREFIX_LEN or len(wrapped) != wrapped_len or chunk_size <= 0:
            raise CryptoError("malformed media header")
        return cls(key_id=kid, wrapped_key=wrapped, nonce_prefix=prefix, chunk_size=chunk_size, version=version)


@dataclass(frozen=True, slots=True)
class DataKey:
    """A fresh object key: the plaintext key stays in memory, the header goes to the store."""

    key: bytes
    header: Header

    @classmethod
    def generate(cls, keys: MasterKeys) -> DataKey:
        key_id, master = keys.current()
        key = AESGCM.generate_key(bit_length=256)
        return cls(key, Header(key_id=key_id, wrapped_key=wrap_key(master, key), nonce_prefix=os.urandom(PREFIX_LEN)))

    @classmethod
    def open(cls, keys: MasterKeys, header: Header) -> DataKey:
        return cls(unwrap_key(keys.get(header.key_id), header.wrapped_key), header)


def rewrap(header: Header, keys: MasterKeys) -> Header:
    """The same data key wrapped with the newest master key; the data stays valid unchanged."""
    data_key = unwrap_key(keys.get(header.key_id), header.wrapped_key)
    key_id, master = keys.current()
    return Header(key_id=key_id, wrapped_key=wrap_key(master, data_key), nonce_prefix=header.nonce_prefix,
                  chunk_size=header.chunk_size, version=header.version)


class ChunkCipher:
    """Seals and opens the chunks of one object."""

    def __init__(self, data_key: DataKey) -> None:
        self._aead = AESGCM(data_key.key)
        h = data_key.header
        self._prefix = h.nonce_prefix
        self._aad = MAGIC + struct.pack(">BI", h.version, h.chunk_size)
        self.chunk_size = h.chunk_size

    def _nonce(self, index: int) -> bytes:
        if not 0 <= index < MAX_CHUNKS:
            raise CryptoError("chunk index out of range")
        return self._prefix + struct.pack(">I", index)

    def seal(self, index: int, plaintext: bytes, *, final: bool) -> bytes:
        return self._aead.encrypt(self._nonce(index), plaintext, self._aad + (b"\x01" if final else b"\x00"))

    def open(self, index: int, sealed: bytes, *, final: bool) -> bytes:
        try:
            return self._aead.decrypt(self._nonce(index), sealed, self._aad + (b"\x01" if final else b"\x00"))
        except InvalidTag:
            where = "final chunk" if final else "chunk"
            raise CryptoError(f"{where} {index} failed authentication (tampered, reordered or truncated)") from None

    def seal_tail(self, plaintext: bytes, context: bytes) -> bytes:
        """Seal a staged partial chunk under a random nonce (never collides with the counter space)."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, b"AMRO-tail" + context)

    def open_tail(self, sealed: bytes, context: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], b"AMRO-tail" + context)
        except InvalidTag:
            raise CryptoError("staged tail failed authentication") from None


class Decryptor:
    """Feed stored bytes in any block sizes, get plaintext back; ``finish`` checks the final chunk."""

    def __init__(self, cipher: ChunkCipher) -> None:
        self._cipher = cipher
        self._unit = cipher.chunk_size + TAG
        self._buffer = bytearray()
        self._index = 0
        self._done = False

    def feed(self, data: bytes) -> bytes:
        if self._done:
            raise CryptoError("data after the final chunk")
        self._buffer += data
        out = bytearray()
        # A full unit is known not to be the last one only once more bytes follow it.
        while len(self._buffer) > self._unit:
            out += self._cipher.open(self._index, bytes(self._buffer[:self._unit]), final=False)
            del self._buffer[:self._unit]
            self._index += 1
        return bytes(out)

    def finish(self) -> bytes:
        if self._done:
            raise CryptoError("finish called twice")
        self._done = True
        if len(self._buffer) < TAG:
            raise CryptoError("encrypted object is truncated")
        return self._cipher.open(self._index, bytes(self._buffer), final=True)


def encrypt_bytes(data_key: DataKey, plaintext: bytes) -> bytes:
    """Encrypt a whole plaintext in memory (small objects and tests)."""
    cipher = ChunkCipher(data_key)
    size = cipher.chunk_size
    count = max(1, -(-len(plaintext) // size))
    return b"".join(cipher.seal(i, plaintext[i * size:(i + 1) * size], final=i == count - 1) for i in range(count))


def decrypt_bytes(data_key: DataKey, stored: bytes) -> bytes:
    decryptor = Decryptor(ChunkCipher(data_key))
    return decryptor.feed(stored) + decryptor.finish()


async def read_header(store: ObjectStore, object_key: str) -> Header:
    return Header.decode(await store.get(header_key(object_key)))


async def iter_plaintext(store: ObjectStore, keys: MasterKeys, object_key: str,
                         *, block_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    """Stream an encrypted original's plaintext (NARA workers read originals with this).

    Raises ``CryptoError`` as soon as a chunk fails; bytes yielded before that were authentic,
    but a consumer must treat the object as failed unless the iteration completes.
    """
    decryptor = Decryptor(ChunkCipher(DataKey.open(keys, await read_header(store, object_key))))
    async for block in store.stream(object_key, block_size=block_size):
        if plain := decryptor.feed(block):
            yield plain
    yield decryptor.finish()
