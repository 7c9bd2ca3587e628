"""A background lane for upload I/O: threads at the lowest CPU and disk priority.

Writing parts to a local disk (and flushing them) competes with PostgreSQL's commits and with the
hubs' event loops on the same machine; chat must win. The store's writer threads therefore lower
their own priority when they start: ``nice`` 19 for the CPU, and the idle I/O class for the disk
(what ``ionice -c 3`` does; the mq-deadline and BFQ schedulers serve every other class first, with
aging so the lane is never starved for good). Both are per thread on Linux, so the rest of the
process is untouched. Elsewhere, or where the calls are refused, the lane is a plain pool.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import structlog

log = structlog.get_logger(__name__)

_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "i686": 289, "armv7l": 314}  # syscall numbers
_IOPRIO_WHO_PROCESS = 1  # with id 0: the calling thread
_IOPRIO_CLASS_IDLE = 3
_IOPRIO_CLASS_SHIFT = 13
BACKGROUND_NICE = 19


def lower_thread_priority() -> list[str]:
    """Lower the calling thread's CPU and I/O priority; returns what was applied."""
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


def _init_thread() -> None:
    applied = lower_thread_priority()
    log.debug("background_io_thread", applied=applied)


def background_executor(workers: int = 2, name: str = "upload-io") -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=_init_thread)
