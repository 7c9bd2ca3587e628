"""The uploads benchmark's disk figure reads what a real process sent to storage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from loadtests.uploads import RssSampler

WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)
sys.stdin.readline()
os.write(fd, b"x" * (4 << 20))
os.fsync(fd)
print("written", flush=True)
sys.stdin.readline()
"""


def test_written_counts_the_bytes_a_process_sent_to_storage(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "out")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        procs = [psutil.Process(proc.pid)]
        before = RssSampler.written(procs)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "written\n"
        assert RssSampler.written(procs) - before >= 4 << 20
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
