"""A throwaway platform for benchmarks: real Redis and PostgreSQL, N hub processes, seeded users.

``workers_wanted`` NARA workers (``amaro worker``) run beside the hubs with the same environment and
data folder, so hubs and workers share the local object store (``data_dir / "objects"``).

Services come from ``AMARO_REDIS_URL`` / ``AMARO_DATABASE_URL`` when set, read by amaro's own
settings reader (a fresh database is created and dropped), otherwise embedded ones in a temporary
folder. Hubs run as real ``amaro hub`` processes on loopback ports (HTTP on one, sockets on
another), exactly as in production. The nodes inherit nothing from this process's environment:
each gets its ``AMARO_*`` variables and a ``PATH`` (``node_base_env``). Users are inserted directly
and given tokens signed with the cluster's own secret, so a benchmark of the hub does not spend
its time in Argon2id.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import psutil

from amaro.cli import read_settings
from amaro.embedded import EmbeddedServices
from amaro.migrations import migrate
from amaro.settings import ServiceSettings
from feed.tokens import TokenSigner
from loadtests import histograms
from loadtests.histograms import Buckets

TOKEN_SECRET = "loadtest-token-secret-" + "x" * 24


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def node_base_env() -> dict[str, str]:
    """The environment of a node before its ``AMARO_*`` variables: only a ``PATH``, this
    interpreter's scripts first (settings reach a node through its own variables alone)."""
    return {"PATH": os.pathsep.join((str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"))}


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@dataclass
class Hub:
    node_id: str
    port: int  # HTTP: APIs, uploads, health (AMARO_PORT)
    ws_port: int  # the socket listener (AMARO_WS_PORT); an ingest node has none
    process: subprocess.Popen[bytes]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws"

    def ps(self) -> psutil.Process:
        return psutil.Process(self.process.pid)


@dataclass
class Worker:
    node_id: str
    process: subprocess.Popen[bytes]

    def ps(self) -> psutil.Process:
        return psutil.Process(self.process.pid)


@dataclass
class SeededUser:
    id: str
    token: str


@dataclass
class Cluster:
    hubs_wanted: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    hubs: list[Hub] = field(default_factory=list)
    workers_wanted: int = 0
    workers: list[Worker] = field(default_factory=list)
    #: Upload-only nodes (``amaro ingest``); with any, the hubs serve no uploads (AMARO_HUB_UPLOADS=0).
    ingest_wanted: int = 0
    ingests: list[Hub] = field(default_factory=list)
    #: Where Redis and PostgreSQL run (an admin URL: the cluster creates its own database there);
    #: None: ``AMARO_REDIS_URL`` / ``AMARO_DATABASE_URL`` as amaro reads them, else embedded servers.
    services: ServiceSettings | None = None
    redis_url: str = ""
    database_url: str = ""
    signer: TokenSigner = field(default_factory=lambda: TokenSigner(TOKEN_SECRET.encode(), ttl_s=6 * 3600))
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    _embedded: EmbeddedServices | None = None
    _admin_db_url: str = ""
    _db_name: str = ""
    _log_dir: Path | None = None

    async def __aenter__(self) -> Cluster:
        self._tmp = tempfile.TemporaryDirectory(prefix="amaro-bench-")
        self._log_dir = Path(self._tmp.name) / "logs"
        self._log_dir.mkdir()
        configured = self.services or read_settings().services
        redis_url, admin = configured.redis_url, configured.database_url
        if not redis_url or not admin:
            self._embedded = await asyncio.to_thread(EmbeddedServices(Path(self._tmp.name) / "data").start)
            redis_url = redis_url or self._embedded.redis_url
            admin = admin or self._embedded.database_url
        self.redis_url, self._admin_db_url = redis_url, admin
        self._db_name = f"amaro_bench_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{self._db_name}"')
        finally:
            await conn.close()
        self.database_url = _with_database(admin, self._db_name)
        conn = await asyncpg.connect(self.database_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        if self._embedded is None:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(redis_url)
            await client.flushdb()
            await client.aclose()
        for index in range(self.hubs_wanted):
            self.hubs.append(self._spawn_hub(f"bench-hub-{index}"))
        for index in range(self.ingest_wanted):
            self.ingests.append(self._spawn_hub(f"bench-ingest-{index}", role="ingest"))
        await asyncio.gather(*(self.wait_ready(hub) for hub in [*self.hubs, *self.ingests]))
        for index in range(self.workers_wanted):
            self.workers.append(self._spawn_worker(f"bench-worker-{index}"))
        # A new cluster has just written tens of MB (initdb, a database, migrations). The kernel
        # writes dirty pages back 30 s later, in a burst that stalled PostgreSQL's commits for up
        # to 440 ms in whichever phase was being measured then. Flushed here, before any phase.
        await asyncio.to_thread(os.sync)
        return self

    @property
    def data_dir(self) -> Path:
        """The shared data folder (``AMARO_DATA_DIR``): keyring, and the local object store in ``objects/``."""
        return Path(self._tmp.name if self._tmp else ".") / "data"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    def _spawn_worker(self, node_id: str) -> Worker:
        assert self._log_dir is not None and self._tmp is not None
        workdir = Path(self._tmp.name) / f"{node_id}-work"
        workdir.mkdir()
        env = {**self.hub_env(node_id, 0, 0), "AMARO_NARA_WORKDIR": str(workdir), "AMARO_NARA_CONSUMER": node_id}
        env.pop("AMARO_PORT")
        env.pop("AMARO_WS_PORT")
        log = (self._log_dir / f"{node_id}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "amaro", "worker"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return Worker(node_id=node_id, process=process)

    def node_log(self, node_id: str) -> str:
        assert self._log_dir is not None
        return (self._log_dir / f"{node_id}.log").read_text(errors="replace")[-4000:]

    def hub_env(self, node_id: str, port: int, ws_port: int) -> dict[str, str]:
        return {
            **node_base_env(),
            "AMARO_ENV": "test",
            "AMARO_NODE_ID": node_id,
            "AMARO_PORT": str(port),
            "AMARO_WS_PORT": str(ws_port),
            "AMARO_REDIS_URL": self.redis_url,
            "AMARO_DATABASE_URL": self.database_url,
            "AMARO_TOKEN_SECRET": TOKEN_SECRET,
            "AMARO_LOG_LEVEL": "warning",
            "AMARO_LOG_FORMAT": "json",
            "AMARO_DATA_DIR": str(self.data_dir),
            **({"AMARO_HUB_UPLOADS": "0"} if self.ingest_wanted else {}),
            **self.extra_env,
        }

    def _spawn_hub(self, node_id: str, role: str = "hub") -> Hub:
        port, ws_port = free_port(), free_port()
        while ws_port == port:
            ws_port = free_port()
        assert self._log_dir is not None
        log = (self._log_dir / f"{node_id}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "amaro", role], env=self.hub_env(node_id, port, ws_port),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return Hub(node_id=node_id, port=port, ws_port=ws_port, process=process)

    def hub_log(self, hub: Hub) -> str:
        assert self._log_dir is not None
        return (self._log_dir / f"{hub.node_id}.log").read_text(errors="replace")[-4000:]

    async def wait_ready(self, hub: Hub, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                if hub.process.poll() is not None:
                    raise RuntimeError(f"{hub.node_id} exited:\n{self.hub_log(hub)}")
                try:
                    if (await http.get(f"{hub.http_url}/readyz", timeout=1)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{hub.node_id} not ready in {timeout_s}s:\n{self.hub_log(hub)}")

    async def seed_users(self, count: int) -> list[SeededUser]:
        ids = [uuid.uuid4() for _ in range(count)]
        conn = await asyncpg.connect(self.database_url)
        try:
            await conn.copy_records_to_table(
                "users", records=[(uid, f"bench_{uid.hex[:20]}", "bench", "!") for uid in ids],
                columns=["id", "username", "display_name", "password_hash"],
            )
        finally:
            await conn.close()
        return [SeededUser(str(uid), self.signer.issue(str(uid), str(uuid.uuid4()))) for uid in ids]

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        nodes: list[Hub | Worker] = [*self.workers, *self.ingests, *self.hubs]
        for node in nodes:
            if node.process.poll() is None:
                node.process.terminate()
        for node in nodes:
            try:
                node.process.wait(30)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
        try:
            conn = await asyncpg.connect(self._admin_db_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self._db_name}" WITH (FORCE)')
            finally:
                await conn.close()
        finally:
            if self._embedded is not None:
                await asyncio.to_thread(self._embedded.stop)
            if self._tmp is not None:
                self._tmp.cleanup()


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def quantiles(sorted_values: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max of sorted milliseconds, rounded for a report."""
    return {"p50": round(percentile(sorted_values, 0.5), 2), "p99": round(percentile(sorted_values, 0.99), 2),
            "max": round(sorted_values[-1], 2) if sorted_values else None}


def node_env(pairs: Sequence[str]) -> dict[str, str]:
    """``--node-env KEY=VALUE`` options as the extra environment of every hub and worker."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--node-env wants KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


async def loop_lag(http_url: str) -> Buckets:
    """The node's ``amaro_event_loop_lag_seconds`` histogram: upper bound (s) -> cumulative count."""
    name = "amaro_event_loop_lag_seconds"
    async with httpx.AsyncClient(timeout=5) as http:
        return (await histograms.scrape(http, http_url, [name]))[name].get("", {})


def lag_summary(before: Buckets, after: Buckets) -> dict[str, Any]:
    """What the loop-lag histogram saw between two scrapes: samples (one per 25 ms), how many came
    more than 5 and 20 ms late, and the bucket holding the 99th percentile."""
    delta = histograms.difference(before, after)
    total = delta.get(float("inf"), 0.0)
    if not total:
        return {"samples": 0}
    p99 = next((b for b, n in delta.items() if n >= 0.99 * total), float("inf"))
    return {"samples": int(total), "late_over_5ms": int(total - delta.get(0.005, 0.0)),
            "late_over_20ms": int(total - delta.get(0.02, 0.0)),
            "p99_at_most_ms": None if p99 == float("inf") else p99 * 1000}
