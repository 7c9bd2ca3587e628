"""Turning an upload's byte stream into encrypted multipart parts (sans-I/O).

Part ``n`` (from 1) holds plaintext ``[(n-1)*part_size, n*part_size)`` sealed chunk by chunk, so
any part can be rebuilt from its plaintext and re-uploading it simply replaces it. Chunks are
sealed as soon as they fill (the declared length tells which one is final), so memory holds the
sealed chunks of the current part plus one partial chunk of plaintext.

Between requests the unfinished part survives as a staged *tail*: its sealed chunks followed by the
partial chunk sealed under a random nonce. The tail's layout follows from the offset alone, so the
upload's state is just (offset, committed part etags, tail object key). Where the store holds the
whole chunks (in the part's place, or as segments: media/staging.py), the assembler does not: it
counts them as ``held`` and hands over only what follows, so a request that resumes mid-part
reads back one partial chunk, not up to a part.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from media.config import CHUNK_SIZE
from media.crypto import TAG, ChunkCipher
from media.errors import CryptoError, too_large
from media.sniff import SNIFF_BYTES


@dataclass(frozen=True, slots=True)
class SealedPart:
    number: int
    data: bytes | bytearray  # the assembler's own buffer, handed over: a part-sized copy would stall the loop
    held: int = 0  # sealed bytes before ``data``, staged in the store: the part is those, then ``data``


def tail_context(upload_id: str, offset: int) -> bytes:
    return upload_id.encode() + struct.pack(">Q", offset)


class PartAssembler:
    def __init__(self, cipher: ChunkCipher, *, length: int, part_size: int, offset: int = 0) -> None:
        if part_size % CHUNK_SIZE or cipher.chunk_size != CHUNK_SIZE:
            raise ValueError("part size must be a multiple of the chunk size")
        if offset % part_size:
            raise ValueError("a fresh assembler starts on a part boundary; use restore()")
        self._cipher = cipher
        self.length = length
        self.part_size = part_size
        self.offset = offset
        self._pending = bytearray()
        self._part = bytearray()
        self._spent = False
        self.head = bytearray()
        self.held = 0  # sealed bytes of the current part kept by the store, not in ``_part``

    @property
    def part_start(self) -> int:
        return self.offset - self.offset % self.part_size if self.offset < self.length else self.offset

    @property
    def buffered(self) -> int:
        return len(self._pending) + len(self._part)

    def feed(self, data: bytes) -> list[SealedPart]:
        """Accept the next bytes; return the parts they completed. Past the declared length: 413."""
        if self._spent:
            raise RuntimeError("the tail was taken: this assembler is spent")
        if self.offset + len(data) > self.length:
            raise too_large("the request body runs past Upload-Length")
        if self.offset < SNIFF_BYTES:
            self.head += data[:SNIFF_BYTES - self.offset]
        parts: list[SealedPart] = []
        view = memoryview(data)
        while view:
            take = min(CHUNK_SIZE - len(self._pending), len(view))
            self._pending += view[:take]
            view = view[take:]
            self.offset += take
            if len(self._pending) == CHUNK_SIZE or self.offset == self.length:
                index = (self.offset - len(self._pending)) // CHUNK_SIZE
                self._part += self._cipher.seal(index, bytes(self._pending), final=self.offset == self.length)
                self._pending.clear()
                if self.offset % self.part_size == 0 or self.offset == self.length:
                    number = (self.offset - 1) // self.part_size + 1
                    parts.append(SealedPart(number, self._part, self.held))
                    self._part = bytearray()
                    self.held = 0
        return parts

    def take_tail(self, upload_id: str) -> bytearray | None:
        """The staged form of the unfinished part after its ``held`` bytes, or None when the offset
        is on a part boundary.

        The assembler's own buffer is handed over with the sealed partial chunk appended: copying
        up to a part (into fresh pages) would stall the event loop, so a request's last step takes
        the buffer and the assembler is spent afterwards."""
        if self._spent:
            raise RuntimeError("the tail was taken already")
        self._spent = True
        if not self._part and not self._pending and not self.held:
            return None
        staged, self._part = self._part, bytearray()
        staged += self._cipher.seal_tail(bytes(self._pending), tail_context(upload_id, self.offset))
        self._pending.clear()
        return staged

    @classmethod
    def restore(cls, cipher: ChunkCipher, *, length: int, part_size: int, offset: int,
                upload_id: str, tail: bytes | bytearray | None, held: int = 0) -> PartAssembler:
        """Resume at ``offset`` from the staged tail written when that offset was committed, whose
        first ``held`` bytes the store keeps (``tail`` is what follows them). A ``bytearray`` tail
        becomes the assembler's buffer (no copy of up to a part in the loop)."""
        start = offset - offset % part_size
        assembler = cls(cipher, length=length, part_size=part_size, offset=start)
        within = offset - start
        if within == 0:
            return assembler
        if tail is None:
            raise CryptoError("the staged tail of this upload is missing", code="tail_missing")
        whole = within // CHUNK_SIZE
        cut = whole * (CHUNK_SIZE + TAG) - held
        if held < 0 or held % (CHUNK_SIZE + TAG) or cut < 0 or len(tail) < cut:
            raise CryptoError("the staged tail does not match the upload offset", code="tail_mismatch")
        pending = cipher.open_tail(bytes(memoryview(tail)[cut:]), tail_context(upload_id, offset))
        if len(pending) != within % CHUNK_SIZE:
            raise CryptoError("the staged tail does not match the upload offset", code="tail_mismatch")
        part = tail if isinstance(tail, bytearray) else bytearray(tail)
        del part[cut:]  # the sealed partial chunk, opened above: whole chunks stay, in place
        assembler._part = part
        assembler._pending += pending
        assembler.held = held
        assembler.offset = offset
        if whole == 0 and start == 0:
            assembler.head += pending[:SNIFF_BYTES]
        return assembler
