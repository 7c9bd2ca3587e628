"""Media child processes run at background priority, so a hub on the same machine keeps its CPU."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys

import pytest

from amaro.infra.cpus import BACKGROUND_SLICE_NS, background_cpus, pin
from nara.guard import Limits, run_guarded
from nara.transcode import run_ffmpeg
from tests.scheduling import background_scheduling_supported

PROBE = "import os; print(os.sched_getscheduler(0), os.nice(0))"
SLICE = "print([line.split(':')[1].strip() for line in open('/proc/self/sched') if line.startswith('se.slice')])"


async def test_children_run_sched_batch_and_niced() -> None:
    # SCHED_BATCH, not SCHED_IDLE: on an idle-class encoder's CPU a woken normal task sometimes
    # waited for the next tick (amaro/infra/cpus.py).
    done = await run_guarded([sys.executable, "-c", PROBE], timeout_s=10, nice=10)
    policy, niceness = (int(v) for v in done.stdout.split())
    assert policy == os.SCHED_BATCH
    assert niceness == os.nice(0) + 10


@pytest.mark.skipif(not os.path.exists("/proc/self/sched") or not background_scheduling_supported(),
                    reason="needs a kernel that shows and takes custom slices (Linux 6.12+)")
async def test_children_get_the_longest_slice() -> None:
    # So a woken hub, PostgreSQL or Redis preempts them at once instead of at the next tick.
    done = await run_guarded([sys.executable, "-c", SLICE], timeout_s=10, nice=10)
    assert done.stdout.decode().strip() == repr([str(BACKGROUND_SLICE_NS)])


async def test_nice_zero_keeps_normal_scheduling() -> None:
    done = await run_guarded([sys.executable, "-c", PROBE], timeout_s=10, nice=0)
    policy, _ = (int(v) for v in done.stdout.split())
    assert policy == os.SCHED_OTHER


AFFINITY = "import os; print(','.join(map(str, sorted(os.sched_getaffinity(0)))))"


def test_auto_keeps_the_first_cpu_free_and_all_or_a_list_override() -> None:
    assert background_cpus("auto", [0, 1]) == "1"
    assert background_cpus("", [2, 3, 5]) == "3,5"
    assert background_cpus("auto", [0]) == ""  # one CPU: nothing to keep free
    assert background_cpus("all", [0, 1]) == ""
    assert background_cpus("1-3,6", [0, 1]) == "1-3,6"
    with pytest.raises(ValueError, match="AMARO_NARA_LADDER_CPUS"):
        background_cpus("1;rm -rf /", [0, 1], name="AMARO_NARA_LADDER_CPUS")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None,
                    reason="needs two CPUs and taskset")
async def test_children_run_only_on_the_encoder_cpus() -> None:
    cpus = background_cpus("auto")
    done = await run_guarded([sys.executable, "-c", AFFINITY], timeout_s=10, nice=10, cpus=cpus)
    assert done.stdout.decode().strip() == cpus
    unpinned = await run_guarded([sys.executable, "-c", AFFINITY], timeout_s=10, nice=10)
    assert unpinned.stdout.decode().strip() == ",".join(map(str, sorted(os.sched_getaffinity(0))))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None,
                    reason="needs two CPUs and taskset")
async def test_only_the_ladder_encode_is_pinned() -> None:
    limits = Limits(ladder_cpus=background_cpus("auto"))
    everything = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    ladder = await run_ffmpeg([sys.executable, "-c", AFFINITY], timeout_s=10, limits=limits, what="t", ladder=True)
    phase1 = await run_ffmpeg([sys.executable, "-c", AFFINITY], timeout_s=10, limits=limits, what="t")
    assert ladder.stdout.decode().strip() == limits.ladder_cpus != everything
    assert phase1.stdout.decode().strip() == everything


THREADED = """
import os, threading, time
stop = threading.Event()
workers = [threading.Thread(target=stop.wait) for _ in range(3)]
for w in workers:
    w.start()
deadline = time.monotonic() + 5
full = sorted(os.sched_getaffinity(0))
def masks():
    return {tid: sorted(os.sched_getaffinity(int(tid))) for tid in os.listdir("/proc/self/task")}
while time.monotonic() < deadline and any(m == full for m in masks().values()):
    time.sleep(0.02)  # until the parent has moved every thread
late = threading.Thread(target=stop.wait)
late.start()  # a thread started after the move inherits the mask
print(len(masks()), ";".join(sorted({",".join(map(str, m)) for m in masks().values()})))
stop.set()
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
async def test_a_running_encode_moves_with_all_its_threads() -> None:
    cpus = background_cpus("auto")
    pids: list[int] = []
    task = asyncio.create_task(run_guarded([sys.executable, "-c", THREADED], timeout_s=10, nice=10,
                                           on_start=pids.append))
    await asyncio.sleep(0.3)
    assert pin(pids[0], cpus)
    done = await task
    threads, masks = done.stdout.decode().split()
    assert int(threads) == 5 and masks == cpus
