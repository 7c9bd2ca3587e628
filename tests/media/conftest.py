"""Media fixtures: real stores (local disk and moto's S3 server on 127.0.0.1), users and tokens,
and a MediaContext on the session's real Redis and PostgreSQL."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import msgpack
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from starlette.applications import Starlette

from amaro.services import Services
from feed.posts import PostStates
from feed.tokens import TokenSigner
from loadtests.staging import moto_server
from media.app import close_store, open_store, upload_routes
from media.config import CHUNK_SIZE, MediaSettings, MiB
from media.jobs import JobQueue
from media.keyring import Keyring
from media.runtime import MediaContext
from media.store import MediaStore
from protocol.frames import MEDIA_PHASES
from tests.conftest import TEST_TOKEN_SECRET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def local_settings(root: Path, **overrides: object) -> MediaSettings:
    base: dict[str, object] = dict(
        store="local", local_dir=root / "objects", keyring_path=root / "keyring.json",
        part_size=2 * CHUNK_SIZE, bytes_in_flight=64 * MiB, max_file_size=60 * MiB, user_quota=100 * MiB,
        idle_timeout_s=5.0, progress_interval_s=0.0)
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
        assert phase in MEDIA_PHASES, phase  # the hub refuses phases the protocol does not know
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
                        posts=PostStates(), events=events, allowed_origins=("https://app.example",))


@pytest_asyncio.fixture(loop_scope="session")
async def ctx(services: Services, tmp_path: Path) -> AsyncIterator[MediaContext]:
    """Local store, 128 KiB parts (so small files span several parts)."""
    context = await make_context(services, local_settings(tmp_path), RecordingEvents())
    try:
        yield context
    finally:
        await close_store(context.store)


def mp4_bytes(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that sniff as MP4: an ftyp box, then pseudo-random payload."""
    import random
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomavc1"
    return (head + random.Random(seed).randbytes(max(0, size - len(head))))[:size]


@pytest_asyncio.fixture(loop_scope="session")
async def client(ctx: MediaContext) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=upload_routes(ctx))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://media.test") as c:
        yield c


async def create_upload(client: httpx.AsyncClient, user: User, length: int,
                        metadata: str = "filename ZGFuY2UubXA0") -> str:
    response = await client.post("/uploads/", headers={**user.auth, "Upload-Length": str(length),
                                                       "Upload-Metadata": metadata})
    assert response.status_code == 201, response.text
    return response.headers["Location"]


async def send_patch(client: httpx.AsyncClient, user: User, url: str, offset: int, data: bytes,
                     **extra: str) -> httpx.Response:
    headers = {**user.auth, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
               **extra}
    return await client.patch(url, headers=headers, content=data)


async def jobs_for(redis: aioredis.Redis, upload_id: str) -> list[dict[str, object]]:
    """Jobs queued on the stream of the default namespace (every context here uses it)."""
    found = []
    for _id, fields in await redis.xrange(JobQueue().stream):
        job = msgpack.unpackb(fields[b"job"])
        if job["upload_id"] == upload_id:
            found.append(job)
    return found


async def stored_plaintext(ctx: MediaContext, object_key: str) -> bytes:
    from media.crypto import iter_plaintext
    return b"".join([b async for b in iter_plaintext(ctx.store, ctx.keyring, object_key)])
