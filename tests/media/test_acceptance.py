"""Acceptance: tuspy (the tus project's Python client) against the ingest app under a real uvicorn,
with the local-disk store and with a real S3 API (moto's server): a 50 MB upload is stopped half way,
then cut mid-request on the wire, then resumed by a fresh client from the server's offset; the
stored object decrypts to the original bytes. Also: a client that stalls mid-request."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import requests
import uvicorn
from tusclient.client import TusClient

from amaro.ingest import build_ingest_app
from amaro.settings import Settings
from media import keys
from media.app import close_store, open_store
from media.config import MediaSettings
from media.crypto import iter_plaintext
from media.keyring import Keyring
from protocol.frames import MEDIA_PHASES
from tests.media.conftest import (
    RecordingEvents,
    User,
    free_port,
    jobs_for,
    local_settings,
    make_user,
    mp4_bytes,
    s3_settings,
)

SIZE = 50 * 1000 * 1000


class ThreadSafeEvents(RecordingEvents):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    async def media_event(self, user_id: str, upload_id: str, post_id: str, phase: str,
                          data: dict[str, object]) -> None:
        assert phase in MEDIA_PHASES, phase
        with self._lock:
            self.events.append((user_id, upload_id, post_id, phase, data))


@dataclass
class LiveServer:
    url: str
    media: MediaSettings
    events: ThreadSafeEvents


@pytest.fixture(params=["local", "s3"])
def live_server(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    if request.param == "local":
        media = local_settings(tmp_path, part_size=8 * 1024 * 1024, idle_timeout_s=1.0, progress_interval_s=1.0)
    else:
        media = s3_settings(tmp_path, request.getfixturevalue("moto_endpoint"), idle_timeout_s=1.0,
                            progress_interval_s=1.0)
    events = ThreadSafeEvents()
    app = build_ingest_app(dataclasses.replace(settings, media=media), events=events, ensure_bucket=True,
                           background=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", media, events)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest_asyncio.fixture(loop_scope="session")
async def uploader(db: asyncpg.Pool) -> User:
    return await make_user(db)


async def cut_mid_request(url: str, user: User, offset: int, data: bytes, declared: int) -> None:
    """Send a PATCH announcing ``declared`` bytes, deliver ``data``, then drop the connection."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    path = "/" + url.split("//")[1].split("/", 1)[1]
    head = (f"PATCH {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {user.token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {declared}\r\n\r\n")
    writer.write(head.encode() + data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def wait_for_offset(redis: aioredis.Redis, url: str, user: User, at_least: int) -> int:
    """The server commits an interrupted request once it notices the disconnect, then releases the
    upload's lock. (uvicorn drops body bytes still in its buffer when the peer disconnects, so the
    committed offset can sit a little below what the client sent: the client resumes from the
    server's offset, as tus requires.)"""
    lock = keys.upload_lock(url.rsplit("/", 1)[1])
    for _ in range(300):
        response = await asyncio.to_thread(requests.head, url, headers=user.auth, timeout=10)
        offset = int(response.headers.get("Upload-Offset", -1))
        if offset >= at_least and not await redis.exists(lock):
            return offset
        await asyncio.sleep(0.05)
    raise AssertionError(f"offset never reached {at_least}")


async def plaintext_sha256(media: MediaSettings, object_key: str) -> str:
    store = await open_store(media)
    try:
        digest = hashlib.sha256()
        async for block in iter_plaintext(store, Keyring.load(media), object_key):
            digest.update(block)
        return digest.hexdigest()
    finally:
        await close_store(store)


@pytest.mark.slow
async def test_tuspy_upload_interrupted_and_resumed(live_server: LiveServer, uploader: User,
                                                    db: asyncpg.Pool, redis: aioredis.Redis) -> None:
    data = mp4_bytes(SIZE, seed=50)
    client = TusClient(f"{live_server.url}/uploads/", headers={"Authorization": f"Bearer {uploader.token}"})
    checksum = live_server.media.store == "s3"
    first = client.uploader(file_stream=io.BytesIO(data), chunk_size=7_000_003, upload_checksum=checksum,
                            metadata={"filename": "dance.mp4", "filetype": "video/mp4"})
    await asyncio.to_thread(first.upload, stop_at=SIZE // 2)  # the client stops half way
    url = first.url
    assert url is not None
    half = first.offset
    assert half >= SIZE // 2
    # The network drops in the middle of the next request: what arrived is kept.
    await cut_mid_request(url, uploader, half, data[half:half + 3_333_333], declared=SIZE - half)
    kept = await wait_for_offset(redis, url, uploader, half + 1)
    assert half + 3_000_000 < kept <= half + 3_333_333
    # A fresh client (new process, maybe another node) resumes from the server's offset.
    resumed = client.uploader(file_stream=io.BytesIO(data), url=url, chunk_size=6_000_000,
                              upload_checksum=checksum, retries=3, retry_delay=1)
    assert resumed.offset == kept
    await asyncio.to_thread(resumed.upload)
    assert resumed.offset == SIZE

    upload_id = url.rsplit("/", 1)[1]
    row = await db.fetchrow("SELECT * FROM media_uploads WHERE id = $1", upload_id)
    assert row["state"] == "enqueued" and row["content_type"] == "video/mp4"
    assert row["metadata"]["filename"] == "dance.mp4"
    assert await plaintext_sha256(live_server.media, row["object_key"]) == hashlib.sha256(data).hexdigest()
    jobs = await jobs_for(redis, upload_id)
    assert len(jobs) == 1 and jobs[0]["size"] == SIZE
    phases = live_server.events.phases(upload_id)
    assert phases[0] == "received" and phases[-1] == "progress"
    assert live_server.events.events[-1][4]["uploaded"] is True
    assert 2 <= phases.count("progress") <= 60  # throttled


async def test_stalled_client_is_cut_and_keeps_its_bytes(live_server: LiveServer, uploader: User,
                                                          redis: aioredis.Redis) -> None:
    data = mp4_bytes(200_000, seed=9)
    response = await asyncio.to_thread(requests.post, f"{live_server.url}/uploads/", timeout=10, headers={
        **uploader.auth, "Upload-Length": str(len(data))})
    url = response.headers["Location"]
    host, port = url.split("//")[1].split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    path = "/" + url.split("//")[1].split("/", 1)[1]
    writer.write((f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {uploader.token}\r\n"
                  f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                  f"Content-Length: {len(data)}\r\n\r\n").encode() + data[:70_000])
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 15)  # idle timeout is 1 s
    assert b" 408 " in status_line
    writer.close()
    kept = await wait_for_offset(redis, url, uploader, 70_000)
    assert kept == 70_000  # a stalled (still connected) client loses nothing it sent
    done = await asyncio.to_thread(requests.patch, url, data=data[kept:], timeout=10, headers={
        **uploader.auth, "Upload-Offset": str(kept), "Content-Type": "application/offset+octet-stream"})
    assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(data))


async def test_ingest_health(live_server: LiveServer) -> None:
    response = await asyncio.to_thread(requests.get, f"{live_server.url}/healthz", timeout=10)
    assert response.status_code == 200
    ready = await asyncio.to_thread(requests.get, f"{live_server.url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["ready"] is True
    metrics = await asyncio.to_thread(requests.get, f"{live_server.url}/metrics", timeout=10)
    assert "amaro_media_requests_total" in metrics.text
