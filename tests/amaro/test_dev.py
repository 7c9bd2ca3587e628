"""``amaro dev`` on a fresh data folder with no AMARO_* service variables: embedded Redis and
PostgreSQL, migrations, a serving hub; SIGINT stops everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.conftest import free_port


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def processes_using(folder: Path) -> list[psutil.Process]:
    """Processes whose command line names the data folder (redis-server, postgres)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(folder) in part for part in (proc.info["cmdline"] or [])):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_amaro_dev_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port, ws_port = free_port(), free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMARO_")}
    env["AMARO_PASSWORD_MEMORY_KIB"] = "8192"
    proc = subprocess.Popen(
        [sys.executable, "-m", "amaro", "dev", "--data-dir", str(data_dir), "--port", str(port),
         "--ws-port", str(ws_port), "--no-worker"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200
        signup = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/signup",
                            json={"username": "devuser", "password": "a-long-passphrase-1"}, timeout=10)
        assert signup.status_code == 201
        started = descendants(proc.pid) + processes_using(data_dir)
        assert started, "expected the hub and the embedded servers to be running"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        _, alive = psutil.wait_procs(started, timeout=15)
        assert not alive, f"stray processes after Ctrl-C: {[p.pid for p in alive]}"
        assert not processes_using(data_dir)
        assert (data_dir / "token_secret").stat().st_mode & 0o077 == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
