"""CPU sets and scheduling policies for bulk work on a machine shared with latency-sensitive processes.

Bulk work (NARA's ladder encodes, an ingest node's upload handling) keeps off the first CPU by
default: ``auto`` means every CPU of the process's affinity set but the first, when there are two or
more; ``all`` means no restriction; or a taskset-style list such as ``1-3,6``. On a dedicated
machine one core is the price of ``auto``; ``all`` pays nothing.

Bulk work runs SCHED_BATCH at nice 19 (``background_scheduling``), not SCHED_IDLE: a normal task
woken on an idle-class thread's CPU (say PostgreSQL's WAL writer, when its fsync completes) may
wait for the next scheduler tick before the idle-class thread gives way. That holds wherever the
bulk work runs, including NARA's phase 1, which uses every CPU until good enough.
``lower_thread_priority`` is the in-process half for a thread (and what it starts): SCHED_BATCH,
nice 19 and the longest slice, and the idle I/O class. The slice matters for threads that run long
bursts (an ingest node's writer threads): a running task keeps its slice against wakers whose
slice is as long as its own, so with the default slice a woken hub would wait for the burst to end.
Figures: BENCHMARKS.md, "Round trips beside an encoder" and "Upload path: traces and probes".
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
import struct
import sys
import threading
from collections.abc import Callable, Sequence

_CPU_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def background_cpus(setting: str = "auto", available: Sequence[int] | None = None, *, name: str = "setting") -> str:
    """The CPU list for bulk work as a taskset list ("" for any CPU). ``name`` is the variable
    named in the error for a malformed list."""
    setting = setting.strip().lower()
    if setting == "all":
        return ""
    if setting not in ("", "auto"):
        if not _CPU_LIST.match(setting):
            raise ValueError(f"{name} must be auto, all or a CPU list like 1-3, got {setting!r}")
        return setting
    cpus = sorted(available if available is not None else _affinity())
    return ",".join(map(str, cpus[1:])) if len(cpus) >= 2 else ""


def parse_cpus(cpus: str) -> set[int]:
    """A taskset list ("1-3,6") as a set of CPU numbers."""
    out: set[int] = set()
    for part in filter(None, cpus.split(",")):
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


def pin(pid: int, cpus: str) -> bool:
    """Move a running process (every thread of it; 0 for this one) onto ``cpus``; threads it
    starts later inherit the mask. Best effort: False when it is gone or the call is refused."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return False
    mask = parse_cpus(cpus)
    tasks = f"/proc/{pid or 'self'}/task"
    try:
        for _ in range(2):  # a thread started during the first pass is caught by the second
            for tid in os.listdir(tasks):
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(int(tid), mask)
    except OSError:
        return False
    return True


def _affinity() -> list[int]:
    getter = getattr(os, "sched_getaffinity", None)
    return sorted(getter(0)) if getter is not None else list(range(os.cpu_count() or 1))


_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "i686": 289, "armv7l": 314}  # syscall numbers
_IOPRIO_WHO_PROCESS = 1  # with id 0: the calling thread
_IOPRIO_CLASS_IDLE = 3
_IOPRIO_CLASS_SHIFT = 13
_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274, "i686": 351, "armv7l": 380}
_SCHED_ATTR = struct.Struct("IIQiIQQQII")  # struct sched_attr, SCHED_ATTR_SIZE_VER1 (56 bytes)
BACKGROUND_NICE = 19
# The longest slice Linux (6.12+) accepts. A task woken with a shorter slice, every normal one,
# may then preempt the background thread at once instead of waiting out its slice to the next
# tick (EEVDF's run-to-parity protects a running task's slice only against longer-slice wakers).
BACKGROUND_SLICE_NS = 100_000_000


def lower_thread_priority() -> list[str]:
    """Background scheduling for the calling thread (``background_scheduling``) and the idle I/O
    class (as ``ionice -c 3``: the mq-deadline and BFQ schedulers serve every other class first,
    with aging so it is never starved for good). Threads and children it starts later inherit them.
    Returns what was applied."""
    if not sys.platform.startswith("linux"):
        return []
    libc = ctypes.CDLL(None, use_errno=True)
    applied = _lower(threading.get_native_id(), libc, _background_attr(BACKGROUND_NICE), BACKGROUND_NICE)
    number = _IOPRIO_SET.get(platform.machine())
    if number is not None:
        if libc.syscall(number, _IOPRIO_WHO_PROCESS, 0, _IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT) == 0:
            applied.append("ioprio_idle")
    return applied


def background_scheduling(tid: int, libc: ctypes.CDLL | None = None, *, nice: int = BACKGROUND_NICE) -> bool:
    """SCHED_BATCH, niceness ``nice`` and the longest slice for one thread (0: the calling one), in
    one ``sched_setattr``; threads and processes it starts later inherit all three. False where the
    call is missing or refused (kernels before 6.12 refuse the slice: EINVAL)."""
    return _set_attr(tid, libc or ctypes.CDLL(None, use_errno=True), _background_attr(nice))


def _background_attr(nice: int) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(_SCHED_ATTR.pack(
        _SCHED_ATTR.size, os.SCHED_BATCH, 0, nice, 0, BACKGROUND_SLICE_NS, 0, 0, 0, 0), _SCHED_ATTR.size)


def _set_attr(tid: int, libc: ctypes.CDLL, attr: ctypes.Array[ctypes.c_char]) -> bool:
    number = _SCHED_SETATTR.get(platform.machine())
    if number is None or not sys.platform.startswith("linux"):
        return False
    return bool(libc.syscall(number, tid, attr, 0) == 0)


def _lower(tid: int, libc: ctypes.CDLL, attr: ctypes.Array[ctypes.c_char], nice: int) -> list[str]:
    """``attr`` for thread ``tid`` (0: the caller); where ``sched_setattr`` is refused, SCHED_BATCH
    and the niceness without the slice. Only system calls, so it may run between fork and exec."""
    if _set_attr(tid, libc, attr):
        return ["nice", "batch", "long_slice"]
    applied: list[str] = []
    try:
        os.setpriority(os.PRIO_PROCESS, tid, nice)  # Linux: a thread id names one thread
        applied.append("nice")
    except OSError:
        pass
    try:
        os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
        applied.append("batch")
    except OSError:
        pass
    return applied


def child_lowering(nice: int) -> Callable[[], None]:
    """A ``preexec_fn`` giving the child, between fork and exec, background scheduling at niceness
    ``nice`` (absolute); where ``sched_setattr`` is refused, SCHED_BATCH and the niceness without the
    slice. The library handle and the attribute block are made here, in the parent: after a fork a
    threaded parent's child must not load libraries (dlopen's lock may be held by a thread that
    does not exist in the child), so the child only makes system calls."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = _background_attr(nice)

    def lower() -> None:
        _lower(0, libc, attr, nice)
    return lower
