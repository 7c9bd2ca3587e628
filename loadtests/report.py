"""Benchmark output: one JSON document on stdout, and in ``--json FILE`` when given."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import psutil


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
    }


def emit(result: dict[str, Any], path: str | None) -> None:
    document = {**result, "machine": machine(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    if path:
        Path(path).write_bytes(text + b"\n")
    sys.stdout.write(text.decode() + "\n")
