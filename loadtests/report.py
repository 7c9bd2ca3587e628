"""Benchmark output: one JSON document on stdout, and in ``--json FILE`` when given."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

# Kernel threads that run long non-preemptible bursts on whichever CPU they may use (kdamond: DAMON's
# memory monitor, about 4 ms every 0.5 s on the 2-vCPU VM). Where they may run moves the latency
# figures, so the report names it (README, "Sharing one machine").
NOISY_KERNEL_THREADS = ("kdamond",)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "kernel_threads_cpus": kernel_threads_cpus(),
    }


def kernel_threads_cpus(names: tuple[str, ...] = NOISY_KERNEL_THREADS) -> dict[str, str]:
    """CPUs each process or kernel thread whose name starts with one of ``names`` may run on, as a
    taskset list, by name."""
    found: dict[str, str] = {}
    for proc in psutil.process_iter(["name"]):
        name = proc.info["name"] or ""
        if name.startswith(names):
            try:
                found[name] = ",".join(map(str, sorted(proc.cpu_affinity())))
            except (psutil.Error, OSError):
                continue
    return found


def emit(result: dict[str, Any], path: str | None) -> None:
    document = {**result, "machine": machine(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    if path:
        Path(path).write_bytes(text + b"\n")
    sys.stdout.write(text.decode() + "\n")
