"""Acceptance of NARA-1r end to end: a real node (tus at /uploads/, socket at /ws), a real worker
process (``python -m amaro worker``), a user signed up over HTTP and listening on its socket,
a generated clip uploaded with tuspy. Good enough then upgraded arrive over the socket; the playback
API hands out signed URLs; ffprobe reads the master playlist and every variant over HTTP from the
node; visibility and URL signatures hold. A truncated MP4 ends in a failed event and a failed post.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from tusclient.client import TusClient

from amaro.parts import url_signer
from amaro_client import Client, signup
from nara.guard import child_env
from nara.tools import Tools
from protocol.frames import MediaEvent
from tests.conftest import RunningNode, free_port, node_env

from .conftest import make_clip

SEGMENT_S = 2.0
EVENT_TIMEOUT_S = 90.0
REPO = Path(__file__).resolve().parents[2]


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def worker(running_node: RunningNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    folder = tmp_path_factory.mktemp("worker")
    # The node's data folder (objects, keyring), services and secret; a worker serves no sockets,
    # but every role checks AMARO_WS_PORT (the in-process node's is 0: picked at start).
    env = node_env(running_node.settings, AMARO_NODE_ID=f"test-worker-{secrets.token_hex(3)}",
                   AMARO_WS_PORT=str(free_port()), AMARO_NARA_WORKDIR=str(folder / "work"),
                   AMARO_NARA_CONCURRENCY="2", AMARO_LOG_LEVEL="info")
    log = folder / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "amaro", "worker"], env=env, cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    handle = WorkerProcess(proc, log)
    try:
        yield handle
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Viewer:
    user_id: str
    token: str


async def _signup(running_node: RunningNode) -> Viewer:
    grant = await signup(running_node.http_url, f"e2e{secrets.token_hex(4)}", "a-long-passphrase-1")
    return Viewer(grant.user_id, grant.access_token)


@pytest_asyncio.fixture(loop_scope="session")
async def http(running_node: RunningNode) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running_node.http_url, timeout=20) as client:
        yield client


def _upload(running_node: RunningNode, token: str, path: Path) -> str:
    client = TusClient(f"{running_node.http_url}/uploads/", headers={"Authorization": f"Bearer {token}"})
    uploader = client.uploader(str(path), chunk_size=4 * 1024 * 1024, metadata={"filename": path.name})
    uploader.upload()
    url = str(uploader.url)
    return url.rstrip("/").rsplit("/", 1)[-1]


async def _media_events(client: Client, upload_id: str, until: str, worker: WorkerProcess,
                        timeout_s: float = EVENT_TIMEOUT_S) -> list[MediaEvent]:
    """Media events of ``upload_id`` in arrival order, up to and including phase ``until``."""
    seen: list[MediaEvent] = []
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {until!r} event within {timeout_s}s; got {[e.phase for e in seen]}\n"
                        f"worker log:\n{worker.tail()}")
        try:
            frame = await client.next_event(timeout_s=left)
        except TimeoutError:
            continue
        if isinstance(frame, MediaEvent) and frame.upload == upload_id:
            if not seen or seen[-1].mid != frame.mid:  # at-least-once: drop a duplicate
                seen.append(frame)
            if frame.phase == until or frame.phase == "failed":
                return seen


def _ffprobe(tools: Tools, url: str) -> dict[str, Any]:
    # Our own output: the hls demuxer and http are allowed here, never for uploads.
    out = subprocess.run(
        [str(tools.ffprobe), "-v", "error", "-protocol_whitelist", "file,http,tcp,hls",
         "-of", "json", "-show_format", "-show_streams", url],
        capture_output=True, timeout=60, env=child_env(),
    )
    assert out.returncode == 0, f"ffprobe {url}: {out.stderr.decode(errors='replace')[-2000:]}"
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


async def test_upload_to_good_enough_to_upgraded(running_node: RunningNode, worker: WorkerProcess,
                                                 http: httpx.AsyncClient, db: asyncpg.Pool, tools: Tools,
                                                 tmp_path: Path) -> None:
    owner = await _signup(running_node)
    stranger = await _signup(running_node)
    clip = make_clip(tools, tmp_path / "dance.mp4", seconds=6.0, size="640x360")
    source = _ffprobe(tools, str(clip))
    source_duration = float(source["format"]["duration"])

    async with Client(running_node.ws_url, token=owner.token) as client:
        await client.subscribe(f"user:{owner.user_id}")
        upload_id = await asyncio.to_thread(_upload, running_node, owner.token, clip)
        post_id = await db.fetchval("SELECT post_id::text FROM media_uploads WHERE id = $1", uuid.UUID(upload_id))
        # A followers-only post: the stranger (who follows nobody) must not see it.
        await db.execute("UPDATE posts SET visibility = 'followers' WHERE id = $1", uuid.UUID(post_id))

        first = await _media_events(client, upload_id, "good_enough", worker)
        assert first[-1].phase == "good_enough", [e.phase for e in first]
        # The catalog was written before the event: the post is already published.
        row = await db.fetchrow("SELECT m.state, p.state AS post_state, p.media_id::text AS media_id "
                                "FROM media m JOIN posts p ON p.id = m.post_id WHERE m.id = $1",
                                uuid.UUID(upload_id))
        assert row is not None and row["post_state"] == "published" and row["media_id"] == upload_id
        assert row["state"] in ("good_enough", "upgraded")
        rest = await _media_events(client, upload_id, "upgraded", worker)
        phases = [e.phase for e in first + rest if e.phase in ("good_enough", "upgraded", "failed")]
        assert phases == ["good_enough", "upgraded"], phases

    r = await http.get(f"/api/v1/media/{upload_id}", headers={"Authorization": f"Bearer {owner.token}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"], body["kind"], body["post_id"]) == ("upgraded", "video", post_id)
    assert body["reasons"] and body["plan"]["ladder"]
    urls = body["urls"]
    for name in ("master", "fast", "poster", "preview"):
        assert urls[name] and urls[name].startswith("/m/"), name
    assert urls["storyboard"]["vtt"] and urls["storyboard"]["sprite"]
    assert body["placeholder"].startswith("data:image/jpeg;base64,")
    # What the API document says of this answer is what it holds, key for key.
    documented = (await http.get("/api/v1/openapi.json")).json()["paths"]["/api/v1/media/{upload_id}"]["get"]
    schema = documented["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(body) == set(schema["properties"])
    assert set(urls) == set(schema["properties"]["urls"]["properties"])
    assert set(urls["storyboard"]) == set(schema["properties"]["urls"]["properties"]["storyboard"]["properties"])

    master_url = f"{running_node.http_url}{urls['master']}"
    master = await asyncio.to_thread(_ffprobe, tools, master_url)  # the node runs on this loop
    kinds = {s["codec_type"] for s in master["streams"]}
    assert kinds == {"video", "audio"}, kinds
    assert body["renditions"], body
    for rendition in body["renditions"]:
        doc = await asyncio.to_thread(_ffprobe, tools, f"{running_node.http_url}{rendition['url']}")
        duration = float(doc["format"]["duration"])
        assert abs(duration - source_duration) <= SEGMENT_S, (rendition["name"], duration, source_duration)
        video = next(s for s in doc["streams"] if s["codec_type"] == "video")
        assert (video["width"], video["height"]) == (rendition["width"], rendition["height"])
    fast = await asyncio.to_thread(_ffprobe, tools, f"{running_node.http_url}{urls['fast']}")
    assert abs(float(fast["format"]["duration"]) - source_duration) <= SEGMENT_S

    for name, expected in (("poster", "image/jpeg"), ("preview", "video/mp4")):
        got = await http.get(urls[name])
        assert got.status_code == 200 and got.headers["content-type"] == expected
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
    vtt = await http.get(urls["storyboard"]["vtt"])
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")

    # Followers-only: the stranger is told nothing exists.
    hidden = await http.get(f"/api/v1/media/{upload_id}", headers={"Authorization": f"Bearer {stranger.token}"})
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"

    # A tampered or expired URL is refused.
    _, _m, expires, sig, uid, *tail = urls["master"].split("/")
    tampered = f"/m/{expires}/{sig[::-1]}/{uid}/{'/'.join(tail)}"
    assert (await http.get(tampered)).status_code == 403
    expired = url_signer(running_node.settings).prefix(upload_id, 3600) + "/".join(tail)
    refused = await http.get(expired)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "url_expired"


async def test_truncated_mp4_ends_failed(running_node: RunningNode, worker: WorkerProcess,
                                         http: httpx.AsyncClient, db: asyncpg.Pool, tools: Tools,
                                         tmp_path: Path) -> None:
    owner = await _signup(running_node)
    clip = make_clip(tools, tmp_path / "whole.mp4", seconds=4.0, size="320x240")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[:20_000])  # ftyp first, so sniffing accepts it; no moov
    async with Client(running_node.ws_url, token=owner.token) as client:
        await client.subscribe(f"user:{owner.user_id}")
        upload_id = await asyncio.to_thread(_upload, running_node, owner.token, broken)
        events = await _media_events(client, upload_id, "failed", worker, timeout_s=60)
    assert events[-1].phase == "failed", [e.phase for e in events]
    assert "good_enough" not in [e.phase for e in events]
    assert events[-1].data["reason"] == "truncated" and events[-1].data["detail"]
    row = await db.fetchrow("SELECT m.state, m.failure_reason, p.state AS post_state FROM media m "
                            "JOIN posts p ON p.id = m.post_id WHERE m.id = $1", uuid.UUID(upload_id))
    assert row is not None and tuple(row) == ("failed", "truncated", "failed")
    r = await http.get(f"/api/v1/media/{upload_id}", headers={"Authorization": f"Bearer {owner.token}"})
    assert r.status_code == 200 and r.json()["state"] == "failed"
    assert r.json()["failure"]["reason"] == "truncated" and r.json()["urls"]["playlist"] is None
