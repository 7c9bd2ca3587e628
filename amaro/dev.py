"""``amaro dev``: the whole platform in one process tree, no external services.

The supervisor (this process) starts embedded Redis and PostgreSQL unless ``AMARO_REDIS_URL`` /
``AMARO_DATABASE_URL`` are set, migrates, then runs each role as its own child process, exactly as
production runs them: ``amaro hub`` and ``amaro worker``. A child that dies is restarted with
backoff. Ctrl-C (or SIGTERM) drains the hub, stops the worker, then stops the embedded servers,
leaving no stray processes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import structlog

from amaro.embedded import EmbeddedError, EmbeddedServices
from amaro.migrations import migrate
from amaro.settings import Settings

log = structlog.get_logger("amaro.dev")


@dataclass
class Child:
    """One role, run as ``python -m amaro <role>`` and restarted if it dies."""

    role: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "amaro", self.role], env=self.env, start_new_session=True,
        )
        self.started_at = time.monotonic()
        log.info("role_started", role=self.role, pid=self.process.pid)

    def poll_and_restart(self) -> None:
        if self.process is None or self.process.poll() is None:
            return
        now = time.monotonic()
        if self.next_start == 0.0:
            # Backoff grows while the child keeps crashing soon after start, and resets after a
            # minute of good health.
            self.restarts = 0 if now - self.started_at > 60 else self.restarts + 1
            delay = min(30.0, 0.5 * 2 ** self.restarts)
            log.warning("role_exited", role=self.role, code=self.process.returncode, restart_in=delay)
            self.next_start = now + delay
        elif now >= self.next_start:
            self.next_start = 0.0
            self.start()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("role_killed", role=self.role)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def dev_token_secret(data_dir: Path) -> str:
    """A per-data-folder secret for development, created once with owner-only permissions."""
    path = data_dir / "token_secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


async def _migrate(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


def run_dev(settings: Settings, worker: bool = True) -> int:
    """Supervise the platform until SIGINT or SIGTERM. ``settings`` are already checked; the
    children read the same environment, plus what this process decided (service URLs, ports,
    the data folder, the token secret)."""
    node = settings.node
    data_dir = node.data_dir.resolve()
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    embedded: EmbeddedServices | None = None
    children: list[Child] = []
    try:
        redis_url, database_url = settings.services.redis_url, settings.services.database_url
        if not redis_url or not database_url:
            try:
                embedded = EmbeddedServices(data_dir).start()
            except EmbeddedError as exc:
                print(f"amaro: {exc}", file=sys.stderr)
                return 2
            redis_url = redis_url or embedded.redis_url
            database_url = database_url or embedded.database_url
        asyncio.run(_migrate(database_url))
        env = {
            **os.environ,
            "AMARO_REDIS_URL": redis_url,
            "AMARO_DATABASE_URL": database_url,
            "AMARO_DATA_DIR": str(data_dir),
            "AMARO_HOST": node.host,
            "AMARO_PORT": str(node.port),
            "AMARO_WS_PORT": str(node.ws_port),
            "AMARO_TOKEN_SECRET": settings.auth.token_secret or dev_token_secret(data_dir),
            "AMARO_LOG_FORMAT": node.log_format,
        }
        children.append(Child("hub", env))
        if worker:
            children.append(Child("worker", env))
        for child in children:
            child.start()
        print(f"Amaro Than is running at http://{node.host}:{node.port} "
              f"(sockets: ws://{node.host}:{node.ws_port}/ws; Ctrl-C to stop)", flush=True)
        while not stop_requested:
            for child in children:
                child.poll_and_restart()
            time.sleep(0.2)
        log.info("stopping")
        return 0
    finally:
        deadline = time.monotonic() + node.drain_timeout_s + 5
        for child in children:
            child.terminate()
        for child in children:
            child.wait_or_kill(deadline)
        if embedded is not None:
            embedded.stop()
