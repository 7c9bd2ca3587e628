"""Media fixtures: real stores (local disk and moto's S3 server on 127.0.0.1), users and tokens,
and a MediaContext on the session's real Redis and PostgreSQL."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from moto.server import ThreadedMotoServer

from feed.tokens import TokenSigner
from media.backends import close_store, open_store
from media.config import CHUNK_SIZE, MediaSettings, MiB
from media.context import MediaContext
from media.keyring import Keyring
from media.store import MediaStore
from realtime.services import Services
from tests.conftest import TEST_TOKEN_SECRET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def local_settings(root: Path, **overrides: object) -> MediaSettings:
    base: dict[str, object] = dict(
        store="local", local_dir=root / "objects", keyring_path=root / "keyring.json",
        part_size=2 * CHUNK_SIZE, bytes_in_flight=64 * MiB, idle_timeout_s=5.0, progress_interval_s=0.0)
    base.update(overrides)
    return MediaSettings(**base)  # type: ignore[arg-type]


def s3_settings(root: Path, endpoint: str, **overrides: object) -> MediaSettings:
    base: dict[str, object] = dict(
        store="s3", s3_endpoint=endpoint, s3_bucket=f"media-{uuid.uuid4().hex[:8]}", s3_access_key="testing",
        s3_secret_key="testing", keyring_path=root / "keyring.json", part_size=5 * MiB,
        bytes_in_flight=64 * MiB, idle_timeout_s=5.0, progress_interval_s=0.0)
    base.update(overrides)
    return MediaSettings(**base)  # type: ignore[arg-type]


@pytest.fixture(params=["local", "s3"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> MediaSettings:
    if request.param == "local":
        return local_settings(tmp_path)
    return s3_settings(tmp_path, request.getfixturevalue("moto_endpoint"))


@pytest_asyncio.fixture(loop_scope="session")
async def store(store_settings: MediaSettings) -> AsyncIterator[MediaStore]:
    opened = await open_store(store_settings, ensure_bucket=True)
    try:
        yield opened
    finally:
        await close_store(opened)


@dataclass
class RecordingEvents:
    events: list[tuple[str, str, str, str, dict[str, object]]] = field(default_factory=list)

    async def media_event(self, user_id: str, upload_id: str, post_id: str, phase: str,
                          data: dict[str, object]) -> None:
        self.events.append((user_id, upload_id, post_id, phase, data))

    def phases(self, upload_id: str) -> list[str]:
        return [e[3] for e in self.events if e[1] == upload_id]


@dataclass(frozen=True)
class User:
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Tus-Resumable": "1.0.0"}


async def make_user(db: asyncpg.Pool) -> User:
    user_id = str(uuid.uuid4())
    await db.execute("INSERT INTO users (id, username, password_hash) VALUES ($1, $2, 'x')",
                     user_id, f"u{user_id[:12]}")
    return User(user_id, TokenSigner(TEST_TOKEN_SECRET.encode()).issue(user_id, str(uuid.uuid4())))


@pytest_asyncio.fixture(loop_scope="session")
async def user(db: asyncpg.Pool) -> User:
    return await make_user(db)


async def make_context(services: Services, media: MediaSettings, events: RecordingEvents) -> MediaContext:
    store = await open_store(media, ensure_bucket=True)
    return MediaContext(media=media, redis=services.redis, db=services.db, store=store,
                        keyring=Keyring.load(media), tokens=TokenSigner(TEST_TOKEN_SECRET.encode()),
                        events=events, allowed_origins=("https://app.example",))


@pytest_asyncio.fixture(loop_scope="session")
async def ctx(services: Services, tmp_path: Path) -> AsyncIterator[MediaContext]:
    """Local store, 128 KiB parts (so small files span several parts)."""
    context = await make_context(services, local_settings(tmp_path), RecordingEvents())
    try:
        yield context
    finally:
        await close_store(context.store)
