"""Shared fixtures: real Redis and PostgreSQL for every test that needs them.

``AMARO_TEST_REDIS_URL`` / ``AMARO_TEST_DATABASE_URL`` point the suite at running servers (CI uses the
machine's). When they are unset the suite starts the embedded servers ``amaro dev`` uses, in a
temporary folder. Either way the same code paths run. Each session gets a fresh, migrated database
and an emptied Redis database, so runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from amaro.embedded import EmbeddedServices
from amaro.migrations import migrate
from amaro.services import Services
from amaro.settings import NodeSettings, ServiceSettings, Settings
from feed.config import AuthSettings
from realtime.config import HubConfig

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


def make_settings(urls: ServiceUrls, data_dir: Path, *, node_id: str = "test-node", **node: Any) -> Settings:
    """Settings of a node the tests run (in process or as a child process via ``node_env``)."""
    from amaro.settings import build

    base = build({})  # every default, derived paths included
    media = dataclasses.replace(base.media, local_dir=data_dir / "objects", keyring_path=data_dir / "keyring.json")
    return dataclasses.replace(
        base,
        node=NodeSettings(env="test", node_id=node_id, data_dir=data_dir, log_format="console", log_level="warning",
                          **node),
        services=ServiceSettings(redis_url=urls.redis_url, database_url=urls.database_url),
        # The suite signs up many users (production keeps the 64 MiB default); every test signs up
        # from 127.0.0.1, so the per-address budget is tested with its own node.
        auth=AuthSettings(token_secret=TEST_TOKEN_SECRET, password_memory_kib=8192, password_iterations=1,
                          attempts_per_address=100_000),
        hub=HubConfig(node_id=node_id),
        media=media,
    )


def node_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of an ``amaro`` child process with ``settings``' services, identity, secret
    and test-suite costs, plus ``extra`` (``AMARO_*`` names); other ``AMARO_*`` variables of this
    process are left out."""
    node, auth = settings.node, settings.auth
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AMARO_")},
        "AMARO_ENV": "test",
        "AMARO_NODE_ID": node.node_id,
        "AMARO_DATA_DIR": str(node.data_dir),
        "AMARO_HOST": node.host,
        "AMARO_PORT": str(node.port),
        "AMARO_WS_PORT": str(node.ws_port or free_port()),
        "AMARO_REDIS_URL": settings.services.redis_url,
        "AMARO_DATABASE_URL": settings.services.database_url,
        "AMARO_TOKEN_SECRET": auth.token_secret,
        "AMARO_PASSWORD_MEMORY_KIB": str(auth.password_memory_kib),
        "AMARO_PASSWORD_ITERATIONS": str(auth.password_iterations),
        "AMARO_AUTH_ATTEMPTS_PER_ADDRESS": str(auth.attempts_per_address),
        "AMARO_LOG_FORMAT": node.log_format,
        "AMARO_LOG_LEVEL": node.log_level,
        **extra,
    }


def with_node(settings: Settings, **changes: Any) -> Settings:
    """``settings`` for another node: new ports, another id (the hub's copy follows)."""
    node = dataclasses.replace(settings.node, **changes)
    return dataclasses.replace(settings, node=node, hub=dataclasses.replace(
        settings.hub, node_id=node.node_id, drain_timeout_s=node.drain_timeout_s,
        allowed_origins=node.allowed_origins))


@pytest.fixture(scope="session")
def settings(service_urls: ServiceUrls, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The data folder holds the objects and keyring of nodes the tests start.
    return make_settings(service_urls, tmp_path_factory.mktemp("data"))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def services(settings: Settings) -> AsyncIterator[Services]:
    s = settings.services
    opened = await Services.open(s.redis_url, s.database_url)
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
    """A real hub node (uvicorn and the socket listener on loopback ports) inside the test process."""

    http_url: str
    ws_url: str
    settings: Settings
    app: Any = None  # the node's Starlette application (its routes)
    parts: Any = None  # the node's NodeParts (its hub, media and feed objects)


@contextlib.asynccontextmanager
async def serve_node(settings: Settings, services: Services, **open_args: Any) -> AsyncIterator[RunningNode]:
    """Run a hub node in this process on free ports until the block ends (drained, then stopped)."""
    import uvicorn

    from amaro.node import NodeParts, build_app
    from amaro.roles import uvicorn_config

    settings = with_node(settings, port=free_port(), ws_port=0)
    parts = await NodeParts.open(settings, services, **open_args)
    app = build_app(parts)
    server = uvicorn.Server(uvicorn_config(app, settings))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    assert server.started, "test node did not start"
    try:
        yield RunningNode(http_url=f"http://127.0.0.1:{settings.node.port}",
                          ws_url=f"ws://127.0.0.1:{parts.ws_port}/ws", settings=settings, app=app,
                          parts=parts)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def running_node(settings: Settings, services: Services) -> AsyncIterator[RunningNode]:
    async with serve_node(with_node(settings, node_id="test-node-inproc"), services) as node:
        yield node
