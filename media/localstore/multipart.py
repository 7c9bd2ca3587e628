"""An S3-style multipart object on local disk, completed by a rename instead of a copy.

The tus handler writes part n+1 after part n, every part but the last the same size. Each part is
written straight into the folder's *spool* file where the previous one ended, so completing the
object renames the spool: every byte is written once and nothing is deleted afterwards. Copying
parts into the object would hold the disk for as long as the copy takes, and deleting hundreds of
MB on a file system with online discard stalls other fsyncs, PostgreSQL's commits included
(BENCHMARKS.md, "Upload path: traces and probes").

A part that does not fit that shape (written before the one ahead of it, or written again with
another size while later parts exist) goes to a file of its own, and completion assembles the
object by copying, as S3 semantics require: any part may be written again, the last write wins,
and only the parts named at completion, with their etags, form the object.

An unfinished part's whole sealed chunks may be *staged* in its place before the part is whole
(``stage``, for the tus handler's tail): written once there, they are skipped when the part
arrives with the same bytes. Each staging has a token; one that another writer has staged past is
refused, and a part written with other bytes drops the stagings it overwrote.

Layout of ``.multipart/<id>/``: ``spool``; for a part in the spool an empty record
``<n:05d>.<etag>@<start>+<size>``, made once its bytes are on disk; for a staged prefix,
``<n:05d>.staged.<token>@<start>+<size>``; for a part in its own file, ``<n:05d>.<etag>``; for a
part in the legacy layout, ``<n:05d>`` (its etag is the start of its sha256, checked at completion);
``.lock``, held (``flock``) by whoever reads or writes the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from media.errors import StoreError
from media.localstore.files import (
    FLUSH_SLICE,
    WRITE_SLICE,
    Piece,
    publish_concatenated,
    read_sliced,
    write_atomic,
    write_flushed,
)
from media.store import Part

SPOOL = "spool"
_LOCK = ".lock"  # one writer of the folder at a time, across threads and processes
_RECORD = re.compile(r"^(\d{5})\.([0-9a-f]+)@(\d+)\+(\d+)$")
_STAGED = re.compile(r"^(\d{5})\.staged\.([0-9a-f]+)@(\d+)\+(\d+)$")


@dataclass(frozen=True, slots=True)
class Record:
    """Bytes ``[start, start + size)`` of the spool: part ``number`` (``tag``: its etag), or the
    first bytes of its place, staged (``tag``: the staging's token)."""
    number: int
    tag: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


def _records(names: Sequence[str], pattern: re.Pattern[str]) -> list[Record]:
    found = []
    for name in names:
        if match := pattern.match(name):
            number, tag, start, size = match.groups()
            found.append(Record(int(number), tag, int(start), int(size)))
    return found


def _number_of(name: str) -> str:
    return name.split(".", 1)[0]


def _same_bytes(fd: int, at: int, data: memoryview) -> bool:
    done = 0
    while done < len(data):
        block = os.pread(fd, min(WRITE_SLICE * 8, len(data) - done), at + done)
        if not block or block != data[done:done + len(block)]:
            return False
        done += len(block)
    return True


class MultipartFolder:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _names(self) -> list[str]:
        try:
            return [name for name in os.listdir(self.path) if not name.startswith(".")]
        except FileNotFoundError:
            raise StoreError("multipart upload not found", status=404, code="not_found") from None

    @staticmethod
    def _spooled(names: Sequence[str]) -> dict[int, Record]:
        return {record.number: record for record in _records(names, _RECORD)}

    @staticmethod
    def _staged(names: Sequence[str], number: int) -> list[Record]:
        return [record for record in _records(names, _STAGED) if record.number == number]

    @staticmethod
    def _place(number: int, spooled: dict[int, Record]) -> int | None:
        """Where part ``number`` starts in the spool: where part ``number - 1`` ends; None while
        that part is not in the spool."""
        if number == 1:
            return 0
        previous = spooled.get(number - 1)
        return None if previous is None else previous.end

    @classmethod
    def _spool_start(cls, number: int, size: int, spooled: dict[int, Record]) -> int | None:
        """Where part ``number`` goes in the spool, or None when it needs a file of its own."""
        start = cls._place(number, spooled)
        if start is None:
            return None
        if not any(n > number for n in spooled):
            return start
        mine = spooled.get(number)  # rewritten in place: the later parts keep their bytes
        return start if mine is not None and mine.start == start and mine.size == size else None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:
            raise StoreError("multipart upload not found", status=404, code="not_found") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def write_part(self, number: int, data: bytes | bytearray) -> str:
        """Store part ``number``; returns its new etag. Earlier writes of the number are dropped.
        A prefix already staged in its place (``stage``) and equal to ``data``'s is not written again."""
        with self._locked():
            names = self._names()
            start = self._spool_start(number, len(data), self._spooled(names))
            if start is None:
                etag = secrets.token_hex(16)
                write_atomic(self.path / f"{number:05d}.{etag}", data)
                kept = {st.tag for st in self._staged(names, number)}  # the spool is untouched
                self._drop_older(names, number, kept)
                return etag
            view = memoryview(data)
            fd = os.open(self.path / SPOOL, os.O_RDWR | os.O_CREAT, 0o666)  # as open(): the umask decides
            try:
                skip = 0
                for st in sorted(self._staged(names, number), key=lambda st: -st.size):
                    if st.start == start and st.size <= len(view) and _same_bytes(fd, start, view[:st.size]):
                        skip = st.size
                        break
                return self._spool(fd, names, number, start, view, skip)
            finally:
                os.close(fd)

    def complete_staged(self, number: int, data: bytes | bytearray, *, at: int, base: str) -> str | None:
        """Store part ``number`` as the ``at`` bytes staged under ``base`` followed by ``data``,
        without reading the staged bytes; returns its etag, or None (``MultipartStore.upload_part``
        the whole part instead) when that staging is gone or another writer staged past it."""
        with self._locked():
            names = self._names()
            start = self._spool_start(number, at + len(data), self._spooled(names))
            staged = [st for st in self._staged(names, number) if st.start == start]
            if start is None or not any(st.tag == base and st.size == at for st in staged) \
                    or any(st.size > at for st in staged):
                return None
            fd = os.open(self.path / SPOOL, os.O_WRONLY | os.O_CREAT, 0o666)
            try:
                return self._spool(fd, names, number, start, memoryview(data), at, offset=at)
            finally:
                os.close(fd)

    def _spool(self, fd: int, names: Sequence[str], number: int, start: int, view: memoryview, skip: int,
               *, offset: int = 0) -> str:
        """Write part ``number`` into the spool at ``start``: ``view`` holds its bytes from ``offset``
        on, and those before ``skip`` are on disk already (staged). Records it; returns its etag."""
        write_flushed(fd, view[skip - offset:], start + skip)
        etag = secrets.token_hex(16)
        (self.path / f"{number:05d}.{etag}@{start}+{offset + len(view)}").touch()
        kept = {st.tag for st in self._staged(names, number) if st.start == start and st.size <= skip}
        self._drop_older(names, number, kept)
        return etag

    def _drop_older(self, names: Sequence[str], number: int, kept: set[str]) -> None:
        """Remove what ``names`` held for part ``number`` (earlier writes, stagings it overwrote),
        except the stagings in ``kept``."""
        for name in names:
            if name == SPOOL or _number_of(name) != f"{number:05d}":
                continue
            match = _STAGED.match(name)
            if match is None or match.group(2) not in kept:
                (self.path / name).unlink(missing_ok=True)

    def stage(self, number: int, data: bytes | bytearray | memoryview, *, at: int, base: str | None) -> str | None:
        """Put ``data``, the bytes of part ``number`` from ``at`` on, in the part's place in the
        spool; bytes before ``at`` are those staged under ``base``. Returns a token naming the
        first ``at + len(data)`` bytes, or None where the part's place is not settled or someone
        staged past ``at`` (a writer that lost its lock: its bytes are never overwritten)."""
        with self._locked():
            names = self._names()
            spooled = self._spooled(names)
            if any(n >= number for n in spooled):
                return None
            start = self._place(number, spooled)
            if start is None:
                return None
            staged = self._staged(names, number)
            if at and not any(st.tag == base and st.start == start and st.size == at for st in staged):
                return None
            if any(st.start == start and st.size > at for st in staged):
                return None
            token = secrets.token_hex(16)
            fd = os.open(self.path / SPOOL, os.O_WRONLY | os.O_CREAT, 0o666)
            try:
                write_flushed(fd, data, start + at)
            finally:
                os.close(fd)
            (self.path / f"{number:05d}.staged.{token}@{start}+{at + len(data)}").touch()
            return token

    def read_staged(self, number: int, token: str, size: int) -> bytearray:
        """The first ``size`` bytes staged under ``token``, in a buffer the caller owns."""
        with self._locked():
            record = next((st for st in self._staged(self._names(), number) if st.tag == token), None)
            if record is None or size > record.size:
                raise StoreError(f"the staged bytes of part {number} are gone", code="staged_missing")
            with open(self.path / SPOOL, "rb", buffering=0) as fh:
                buf = read_sliced(fh.fileno(), record.start, size)
            if len(buf) < size:
                raise StoreError(f"the staged bytes of part {number} are gone", code="staged_missing")
            return buf

    def _piece(self, part: Part, names: Sequence[str], spooled: dict[int, Record]) -> Piece:
        record = spooled.get(part.number)
        if record is not None and record.tag == part.etag:
            return Piece(self.path / SPOOL, record.start, record.size)
        own = self.path / f"{part.number:05d}.{part.etag}"
        if own.name in names:
            return Piece(own)
        legacy = self.path / f"{part.number:05d}"
        if legacy.name in names and _sha256_prefix(legacy) == part.etag:
            return Piece(legacy)
        raise StoreError(f"part {part.number} does not match its etag", code="bad_part")

    def publish(self, target: Path, parts: Sequence[Part]) -> None:
        """``target`` becomes ``parts`` in order, all at once; then the folder is removed."""
        names = self._names()
        spooled = self._spooled(names)
        pieces = [self._piece(part, names, spooled) for part in parts]
        spool = self.path / SPOOL
        end = 0
        for piece in pieces:
            if piece.path != spool or piece.start != end or piece.size is None:
                break
            end += piece.size
        else:
            if pieces:  # the spool is the object: cut what an earlier, longer write left behind
                try:
                    fh = open(spool, "r+b", buffering=0)
                except FileNotFoundError:
                    raise StoreError("the parts' spool is missing", code="bad_part") from None
                with fh:
                    if os.fstat(fh.fileno()).st_size < end:  # never pad a lost tail with zeros
                        raise StoreError("the parts' spool is shorter than its parts", code="bad_part")
                    os.ftruncate(fh.fileno(), end)
                    os.fsync(fh.fileno())
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(spool, target)
                shutil.rmtree(self.path, ignore_errors=True)
                return
        publish_concatenated(target, pieces)
        shutil.rmtree(self.path, ignore_errors=True)


def _sha256_prefix(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(FLUSH_SLICE):
            digest.update(block)
    return digest.hexdigest()[:32]
