"""The SDK's tus client against a real node: progress is reported as bytes go out; a process
killed in the middle of a PATCH leaves its upload in the resume store, and a new process continues
from the server's offset (HEAD) to the end. The server then holds exactly the file's bytes and the
post composes on it. An upload can be cancelled and aborted."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import signal
import sys
from pathlib import Path

import asyncpg
import pytest

from amaro_client import Api, ResumeStore, UploadCancelled, UploadError, Uploads, signup
from media.crypto import iter_plaintext
from tests.conftest import RunningNode

PASSWORD = "a long passphrase for tests"
CHUNK = 512 * 1024

CHILD = """
import asyncio, sys
from amaro_client import ResumeStore, Uploads

async def main() -> None:
    base, token, store, path = sys.argv[1:5]
    uploads = Uploads(base, token, store=ResumeStore(store), chunk_size=int(sys.argv[5]), max_rate_bps=1_000_000)
    await uploads.upload(path, progress=lambda sent, total: print(sent, total, flush=True))

asyncio.run(main())
"""


async def stored_bytes(node: RunningNode, db: asyncpg.Pool, upload_id: str) -> bytes:
    key = await db.fetchval("SELECT object_key FROM media_uploads WHERE id = $1", upload_id)
    media = node.parts.media
    return b"".join([block async for block in iter_plaintext(media.store, media.keyring, key)])


async def test_an_upload_killed_mid_patch_resumes_from_a_new_process(running_node: RunningNode, clip: Path,
                                                                       db: asyncpg.Pool, tmp_path: Path) -> None:
    grant = await signup(running_node.http_url, f"sdk{secrets.token_hex(4)}", PASSWORD)
    store = tmp_path / "uploads.json"
    size = clip.stat().st_size
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, running_node.http_url, grant.access_token, str(store), str(clip), str(CHUNK),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    killed_at = 0
    while killed_at < 2 * CHUNK + CHUNK // 2:  # in the middle of the third PATCH
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        assert line, (await child.stderr.read()).decode() if child.stderr else "the child ended"
        killed_at = int(line.split()[0])
    child.send_signal(signal.SIGKILL)
    await child.wait()
    assert killed_at < size
    remembered = json.loads(store.read_text())
    assert len(remembered) == 1  # the unfinished upload, under the file's fingerprint

    progress: list[tuple[int, int]] = []
    uploads = Uploads(running_node.http_url, grant.access_token, store=ResumeStore(store), chunk_size=CHUNK)
    done = await uploads.upload(clip, progress=lambda sent, total: progress.append((sent, total)))
    resumed_from = progress[0][0]
    assert 2 * CHUNK <= resumed_from <= killed_at, (resumed_from, killed_at)  # what the server had committed
    assert progress[-1] == (size, size) and all(t == size for _, t in progress)
    assert [s for s, _ in progress] == sorted(s for s, _ in progress)
    assert done.complete and done.url == next(iter(remembered.values()))["url"]
    assert json.loads(store.read_text()) == {}  # finished: forgotten
    assert (await uploads.head(done.url)).offset == size
    assert await stored_bytes(running_node, db, done.upload_id) == clip.read_bytes()

    api = Api(running_node.http_url, grant)
    post = await api.create_post(upload_id=done.upload_id, body="Khelas!", visibility="public")
    assert (post["id"], post["kind"], post["body"]) == (done.post_id, "video", "Khelas!")
    assert post["state"] in ("processing", "published")
    assert (await api.media(done.upload_id))["id"] == done.upload_id


async def test_a_cancelled_upload_can_be_aborted(running_node: RunningNode, clip: Path, tmp_path: Path) -> None:
    grant = await signup(running_node.http_url, f"sdk{secrets.token_hex(4)}", PASSWORD)
    store = ResumeStore(tmp_path / "uploads.json")
    uploads = Uploads(running_node.http_url, grant.access_token, store=store, chunk_size=CHUNK,
                      max_rate_bps=2_000_000)

    def progress(sent: int, total: int) -> None:
        if sent >= CHUNK:
            uploads.cancel()

    with pytest.raises(UploadCancelled):
        await uploads.upload(clip, progress=progress)
    url = next(iter(json.loads((tmp_path / "uploads.json").read_text()).values()))["url"]
    assert 0 < (await uploads.head(url)).offset < clip.stat().st_size
    assert await uploads.abort(clip) is True
    with pytest.raises(UploadError) as gone:
        await uploads.head(url)
    assert gone.value.status in (404, 410)
    assert await uploads.abort(clip) is False  # nothing left to abort


async def test_a_refused_token_is_refreshed_for_the_creation_and_for_a_patch(running_node: RunningNode,
                                                                            clip: Path) -> None:
    grant = await signup(running_node.http_url, f"sdk{secrets.token_hex(4)}", PASSWORD)
    api = Api(running_node.http_url, dataclasses.replace(grant, access_token="at1.not.valid"))
    created = await Uploads.for_api(api, chunk_size=CHUNK).create(clip)  # 401, refreshed, created
    assert api.grant is not None and api.grant.refresh_token != grant.refresh_token
    again = Api(running_node.http_url, dataclasses.replace(api.grant, access_token="at1.not.valid"))
    done = await Uploads.for_api(again, chunk_size=CHUNK).send(created, clip)  # the first PATCH: 401
    assert done.complete and again.grant is not None and again.grant.refresh_token != api.grant.refresh_token
    assert (await Uploads.for_api(again).head(done.url)).offset == clip.stat().st_size
