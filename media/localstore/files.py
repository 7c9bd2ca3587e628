"""File writing for the local-disk store, shaped so PostgreSQL's commits on the same disk and CPUs
keep their pace: short write calls, a flush every slice, and no large copy where a rename does.

Everything here blocks; the store runs it on its low-priority upload lane.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Bytes written between two flushes to disk. One fsync of a whole 8 MiB part (or of a large
#: object being published) holds the disk while every other fsync on it, PostgreSQL's commits
#: included, queues behind, and chat on the same machine stalls. Flushing every slice keeps each
#: flush short, so the commits slip in between.
FLUSH_SLICE = 1 << 20

#: Bytes per write (or in-kernel copy) system call. Copying into the page cache is kernel work that
#: a kernel preempting only on the way back to user space does not interrupt, so a hub or
#: PostgreSQL woken on that CPU waits for the whole call; a short call keeps that wait short
#: (BENCHMARKS.md, "Upload path: traces and probes").
WRITE_SLICE = 128 << 10

_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}


class Flushing:
    """Counts bytes written to ``fd`` and flushes them to disk every ``FLUSH_SLICE``."""

    def __init__(self, fd: int) -> None:
        self.fd, self.unflushed = fd, 0

    def wrote(self, n: int) -> None:
        self.unflushed += n
        if self.unflushed >= FLUSH_SLICE:
            self.flush()

    def flush(self) -> None:
        if self.unflushed:
            os.fdatasync(self.fd)
            self.unflushed = 0


def write_flushed(fd: int, data: bytes | bytearray | memoryview, at: int) -> None:
    """Write ``data`` at offset ``at`` of ``fd`` in short calls, flushed every slice and at the end."""
    flushing = Flushing(fd)
    view, done = memoryview(data), 0
    while done < len(view):
        n = os.pwrite(fd, view[done:done + WRITE_SLICE], at + done)
        done += n
        flushing.wrote(n)
    flushing.flush()


def read_sliced(fd: int, start: int, size: int) -> bytearray:
    """Bytes ``[start, start + size)`` of ``fd`` in short reads, like the writes, into a buffer the
    caller owns; shorter if the file ends first."""
    buf = bytearray(size)
    done = 0
    with memoryview(buf) as view:  # released before the caller may resize the buffer
        while done < size:
            n = os.preadv(fd, [view[done:done + WRITE_SLICE]], start + done)
            if not n:
                break
            done += n
    del buf[done:]
    return buf


def copy_flushed(src: int, start: int, size: int, out: int) -> None:
    """Append bytes ``[start, start + size)`` of ``src`` to ``out``: in the kernel where it can
    (``copy_file_range``), so the bytes never pass through Python; else with ``pread``. Sliced and
    flushed as above. A source shorter than the range is an error, not a short object."""
    copy_range = getattr(os, "copy_file_range", None)
    flushing = Flushing(out)
    done = 0
    while done < size:
        want = min(WRITE_SLICE, size - done)
        copied = -1
        if copy_range is not None:
            try:
                copied = copy_range(src, out, want, start + done)
            except OSError as exc:  # a file system or kernel without it
                if exc.errno not in _NO_COPY_RANGE:
                    raise
                copy_range = None
        if copied < 0:
            block = memoryview(os.pread(src, want, start + done))
            copied = 0
            while copied < len(block):
                copied += os.write(out, block[copied:])
        if not copied:
            raise OSError(errno.EIO, f"source ended {size - done} bytes before the range did")
        done += copied
        flushing.wrote(copied)
    flushing.flush()


@dataclass(frozen=True, slots=True)
class Piece:
    """Bytes ``[start, start + size)`` of the file at ``path``; ``size`` None: to its end."""
    path: Path
    start: int = 0
    size: int | None = None


def temporary_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")


def publish_concatenated(target: Path, pieces: Sequence[Piece]) -> None:
    """``target`` becomes ``pieces`` one after the other, all at once (rename): a reader never sees
    a half-written object."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(target)
    try:
        with open(tmp, "wb", buffering=0) as out:
            for piece in pieces:
                with open(piece.path, "rb", buffering=0) as src:
                    size = piece.size
                    if size is None:
                        size = os.fstat(src.fileno()).st_size - piece.start
                    copy_flushed(src.fileno(), piece.start, size, out.fileno())
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | bytearray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(path)
    try:
        with open(tmp, "wb", buffering=0) as fh:
            write_flushed(fh.fileno(), data, 0)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
