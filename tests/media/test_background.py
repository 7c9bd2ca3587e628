"""The upload I/O lane lowers its own threads' CPU and disk priority, and nobody else's."""

from __future__ import annotations

import ctypes
import os
import platform
import threading

import pytest

from media.background import background_executor

IOPRIO_GET = {"x86_64": 252, "aarch64": 31}


def priorities() -> tuple[int, int | None]:
    tid = threading.get_native_id()
    nice = os.getpriority(os.PRIO_PROCESS, tid)
    number = IOPRIO_GET.get(platform.machine())
    io_class = None
    if number is not None:
        value = ctypes.CDLL(None, use_errno=True).syscall(number, 1, 0)
        io_class = value >> 13 if value >= 0 else None
    return nice, io_class


@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="per-thread priorities are a Linux feature")
def test_lane_threads_run_at_the_lowest_priority_and_the_rest_does_not() -> None:
    before = priorities()
    lane = background_executor(workers=1)
    try:
        nice, io_class = lane.submit(priorities).result(timeout=10)
    finally:
        lane.shutdown()
    assert nice == 19
    if platform.machine() in IOPRIO_GET:
        assert io_class == 3  # IOPRIO_CLASS_IDLE
    assert priorities() == before  # the calling thread (the event loop's, in a node) is untouched
