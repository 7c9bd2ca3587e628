"""The upload I/O lane lowers its own threads' CPU and disk priority, and nobody else's."""

from __future__ import annotations

import ctypes
import os
import platform
import threading

import pytest

from amaro.infra.cpus import BACKGROUND_SLICE_NS
from media.background import background_executor
from tests.scheduling import background_scheduling_supported

IOPRIO_GET = {"x86_64": 252, "aarch64": 31}


def priorities() -> tuple[int, int | None, int, int | None]:
    """The calling thread's nice, I/O class, policy and slice (ns, where the kernel shows it)."""
    tid = threading.get_native_id()
    nice = os.getpriority(os.PRIO_PROCESS, tid)
    number = IOPRIO_GET.get(platform.machine())
    io_class = None
    if number is not None:
        value = ctypes.CDLL(None, use_errno=True).syscall(number, 1, 0)
        io_class = value >> 13 if value >= 0 else None
    return nice, io_class, os.sched_getscheduler(tid), slice_ns(tid)


def slice_ns(tid: int) -> int | None:
    try:
        with open(f"/proc/self/task/{tid}/sched") as fh:
            lines = [line for line in fh if line.startswith("se.slice")]
    except OSError:
        return None
    return int(lines[0].split(":")[1]) if lines else None


@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="per-thread priorities are a Linux feature")
def test_lane_threads_run_at_the_lowest_priority_and_the_rest_does_not() -> None:
    before = priorities()
    lane = background_executor(workers=1)
    try:
        nice, io_class, policy, slice_length = lane.submit(priorities).result(timeout=10)
    finally:
        lane.shutdown()
    assert nice == 19
    if platform.machine() in IOPRIO_GET:
        assert io_class == 3  # IOPRIO_CLASS_IDLE
    if background_scheduling_supported():
        # SCHED_BATCH with the longest slice: a woken hub preempts the lane at once (realtime/cpus.py).
        assert policy == os.SCHED_BATCH
        assert slice_length in (None, BACKGROUND_SLICE_NS)
    assert priorities() == before  # the calling thread (the event loop's, in a node) is untouched


@pytest.mark.skipif(os.uname().sysname != "Linux"
                    or tuple(map(int, os.uname().release.split(".")[:2])) < (6, 12),
                    reason="custom slices came with Linux 6.12")
def test_this_kernel_takes_the_background_slice() -> None:
    # Without this, a refused call would quietly leave the lane at nice 19 alone.
    assert background_scheduling_supported()
