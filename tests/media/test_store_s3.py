"""The S3 store's requests, seen by botocore as they leave for a real S3 API (moto's server)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from media.app import close_store, open_store
from media.store import Part
from media.store_s3 import S3Store
from tests.media.conftest import s3_settings


async def test_parts_go_out_without_hashing_their_payload(tmp_path: Path, moto_endpoint: str) -> None:
    """A SHA-256 of each part in the signature is the event loop's CPU (5-6 ms per 8 MiB): parts
    are sent UNSIGNED-PAYLOAD, authenticated by AES-GCM chunk by chunk instead."""
    store = await open_store(s3_settings(tmp_path, moto_endpoint), ensure_bucket=True)
    try:
        assert isinstance(store, S3Store)
        sent: list[str] = []

        def record(request: Any, **kwargs: Any) -> None:
            value = request.headers.get("x-amz-content-sha256")
            sent.append(value.decode() if isinstance(value, bytes) else str(value))

        store._client.meta.events.register("before-send.s3.UploadPart", record)
        data = os.urandom(store.min_part_size)
        mp = await store.create_multipart("unsigned/obj")
        etag = await store.upload_part("unsigned/obj", mp, 1, bytearray(data))
        await store.complete_multipart("unsigned/obj", mp, [Part(1, etag)])
        assert sent == ["UNSIGNED-PAYLOAD"]
        assert await store.get("unsigned/obj") == data  # and the server took it
    finally:
        await close_store(store)
