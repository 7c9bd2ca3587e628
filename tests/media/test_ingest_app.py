"""The ingest role as a whole app: its lifespan opens the services and runs the background sweep."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import asyncpg
from starlette.testclient import TestClient

from amaro.ingest import build_ingest_app
from amaro.settings import Settings
from tests.media.conftest import local_settings


async def _execute(url: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def test_ingest_role_sweeps_expired_uploads(settings: Settings, tmp_path: Path) -> None:
    """Sync on purpose: TestClient runs the app and its lifespan on a loop of its own."""
    from feed.tokens import TokenSigner
    from tests.conftest import TEST_TOKEN_SECRET
    media = local_settings(tmp_path, cleanup_interval_s=0.1)
    database_url = settings.services.database_url
    user_id = "7d7f4f0e-0000-4000-8000-00000000beef"
    asyncio.run(_execute(database_url, "INSERT INTO users (id, username, password_hash) "
                         "VALUES ($1, 'ingest-role', 'x') ON CONFLICT DO NOTHING", user_id))
    token = TokenSigner(TEST_TOKEN_SECRET.encode()).issue(user_id, "s1")
    auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    with TestClient(build_ingest_app(dataclasses.replace(settings, media=media))) as client:
        assert client.get("/healthz").status_code == 200
        assert client.options("/uploads/").headers["Tus-Version"] == "1.0.0"
        created = client.post("/uploads/", headers={**auth, "Upload-Length": "1000"})
        assert created.status_code == 201
        upload_id = created.headers["Location"].rsplit("/", 1)[1]
        asyncio.run(_execute(database_url, "UPDATE media_uploads SET expires_at = now() - interval '1 s' "
                             "WHERE id = $1", upload_id))
        deadline = time.monotonic() + 10
        while asyncio.run(_execute(database_url, "SELECT state FROM media_uploads WHERE id = $1",
                                   upload_id)) != "expired":
            assert time.monotonic() < deadline, "the background sweep never expired the upload"
            time.sleep(0.05)
