"""The benchmark report names where noisy kernel threads may run (they move the latency figures)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from loadtests.report import kernel_threads_cpus, machine

NAMED = """
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(15, b"amaro-noisy-t", 0, 0, 0)  # PR_SET_NAME: as ps and psutil see it
os.sched_setaffinity(0, {0})
sys.stdout.write("ready\\n"); sys.stdout.flush()
time.sleep(30)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and affinity are Linux")
def test_names_the_cpus_a_matching_thread_may_use() -> None:
    child = subprocess.Popen([sys.executable, "-c", NAMED], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        assert kernel_threads_cpus(("amaro-noisy",)) == {"amaro-noisy-t": "0"}
        assert "amaro-noisy-t" not in kernel_threads_cpus(("kdamond",))
    finally:
        child.kill()
        child.wait()


def test_machine_block_carries_the_kernel_threads() -> None:
    block = machine()
    assert block["cpus"] == os.cpu_count()
    assert isinstance(block["kernel_threads_cpus"], dict)
