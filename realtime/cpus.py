"""CPU sets and scheduling policies for bulk work on a machine shared with latency-sensitive processes.

Bulk work (NARA's ladder encodes, an ingest node's upload handling) keeps off the first CPU by
default: ``auto`` means every CPU of the process's affinity set but the first, when there are two or
more; ``all`` means no restriction; or a taskset-style list such as ``1-3,6``. On a dedicated
machine one core is the price of ``auto``; ``all`` pays nothing.

Bulk work runs SCHED_BATCH at nice 19 (``BACKGROUND_POLICY``), not SCHED_IDLE. Measured on the
2-vCPU VM with a ladder-like x264 encode pinned to the second CPU and a PostgreSQL commit plus Redis
XADD probed 50 times a second (p99 1.30 ms with no encode): SCHED_IDLE 4.0 ms, SCHED_BATCH nice 19
1.29 ms. A normal task woken on an idle-class encoder's CPU (say the WAL writer, when its fsync
completes) sometimes waits for the next scheduler tick, up to 4 ms, before the encoder gives way
(``perf sched timehist``: 2.4-3.0 ms delays, each ending on a tick). Phase 1 runs unconfined until
good enough, and batch suits it too (docs/nara.md). ``lower_thread_priority`` is the in-process half: nice 19
and the idle I/O class for a thread (and what it starts).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
import sys
import threading
from collections.abc import Sequence

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
BACKGROUND_NICE = 19
BACKGROUND_POLICY = "batch"  # as chrt names it; see the module docstring


def lower_thread_priority() -> list[str]:
    """Lower the calling thread's CPU priority (nice 19) and I/O class (idle, as ``ionice -c 3``:
    the mq-deadline and BFQ schedulers serve every other class first, with aging so it is never
    starved for good). Threads and children it starts later inherit both. Returns what was applied."""
    applied: list[str] = []
    if not sys.platform.startswith("linux"):
        return applied
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)  # Linux: a thread id names one thread
        applied.append("nice")
    except OSError:
        pass
    number = _IOPRIO_SET.get(platform.machine())
    if number is not None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(number, _IOPRIO_WHO_PROCESS, 0, _IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT) == 0:
            applied.append("ioprio_idle")
    return applied
