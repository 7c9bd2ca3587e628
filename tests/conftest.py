"""Shared fixtures: real Redis and PostgreSQL for every test that needs them.

``AMARO_TEST_REDIS_URL`` / ``AMARO_TEST_DATABASE_URL`` point the suite at running servers (CI uses the
machine's). When they are unset the suite starts the embedded servers ``amaro dev`` uses, in a
temporary folder. Either way the same code paths run. Each session gets a fresh, migrated database
and an emptied Redis database, so runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from realtime.config import Settings
from realtime.embedded import EmbeddedServices
from realtime.migrations import migrate
from realtime.services import Services

TEST_TOKEN_SECRET = "test-token-secret-0123456789abcdef0123456789"


@dataclass(frozen=True)
class ServiceUrls:
    redis_url: str
    database_url: str


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(with_database(admin_url, name))
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def _drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _flush_redis(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def service_urls() -> Iterator[ServiceUrls]:
    redis_url = os.environ.get("AMARO_TEST_REDIS_URL", "")
    admin_db_url = os.environ.get("AMARO_TEST_DATABASE_URL", "")
    embedded: EmbeddedServices | None = None
    folder: str | None = None
    if not redis_url or not admin_db_url:
        # A folder of our own rather than pytest's tmp_path: pytest prunes old numbered folders,
        # which would pull the data directory from under a server of a concurrent test session.
        folder = tempfile.mkdtemp(prefix="amaro-test-")
        os.chmod(folder, 0o755)  # noqa: S103 - pgserver runs PostgreSQL as its own user under root
        embedded = EmbeddedServices(Path(folder)).start()
        redis_url = redis_url or embedded.redis_url
        admin_db_url = admin_db_url or embedded.database_url
    name = f"amaro_test_{secrets.token_hex(4)}"
    asyncio.run(_create_database(admin_db_url, name))
    asyncio.run(_flush_redis(redis_url))
    try:
        yield ServiceUrls(redis_url=redis_url, database_url=with_database(admin_db_url, name))
    finally:
        asyncio.run(_drop_database(admin_db_url, name))
        if embedded is not None:
            embedded.stop()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(service_urls: ServiceUrls, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        env="test",
        node_id="test-node",
        data_dir=tmp_path_factory.mktemp("data"),  # objects and keyring of nodes the tests start
        redis_url=service_urls.redis_url,
        database_url=service_urls.database_url,
        token_secret=TEST_TOKEN_SECRET,
        # The suite signs up many users; production keeps the 64 MiB default.
        password_memory_kib=8192,
        password_iterations=1,
        # Every test signs up from 127.0.0.1; the per-address budget is tested with its own node.
        auth_attempts_per_address=100_000,
        log_format="console",
        log_level="warning",
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def services(settings: Settings) -> AsyncIterator[Services]:
    opened = await Services.open(settings)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def redis(services: Services) -> aioredis.Redis:
    return services.redis


@pytest.fixture
def db(services: Services) -> asyncpg.Pool:
    return services.db


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_answering(process: subprocess.Popen[bytes], url: str, describe: Callable[[], str],
                         timeout_s: float = 30.0) -> None:
    """Poll ``url`` until it answers 200 from a node started as ``process``. RuntimeError, with
    ``describe()`` (its log), when the process exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode}:\n{describe()}")
            try:
                if (await http.get(url, timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s:\n{describe()}")


@dataclass(frozen=True)
class RunningNode:
    """A real hub node (uvicorn on a loopback port) inside the test process."""

    http_url: str
    ws_url: str
    settings: Settings


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def running_node(settings: Settings, services: Services) -> AsyncIterator[RunningNode]:
    import dataclasses

    from realtime.app import NodeParts, build_app
    from realtime.serve import uvicorn_config

    node_settings = dataclasses.replace(settings, port=free_port(), node_id="test-node-inproc")
    parts = await NodeParts.open(node_settings, services)
    import uvicorn

    server = uvicorn.Server(uvicorn_config(build_app(parts), node_settings))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    assert server.started, "test node did not start"
    base = f"127.0.0.1:{node_settings.port}"
    try:
        yield RunningNode(http_url=f"http://{base}", ws_url=f"ws://{base}/ws", settings=node_settings)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
