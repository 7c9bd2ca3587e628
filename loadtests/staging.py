"""``python -m loadtests staging --json FILE``: bytes the upload path moves through its object
store per byte uploaded, by store and request size.

A tus client that sends small requests (TUSKit: 500 KB; tus-js-client or Uppy with a chunk size)
ends most requests inside a part, so the unfinished part is staged between requests. This
benchmark uploads ``--size-mb`` through the real tus handler, one request of ``--request-mb``
after another, into the local store and into a real S3 API (moto's server, started here), and
counts what the handler wrote to and read from the store: objects, parts, stagings. For the local
store it also reports what this process wrote to disk. The stored object is decrypted and checked
against the upload. Pacing is off: this measures bytes, not time (``uploads`` measures time).
Embedded PostgreSQL and Redis, in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from starlette.applications import Starlette

from amaro.embedded import EmbeddedServices
from amaro.migrations import migrate
from amaro.parts import open_media
from amaro.services import Services
from amaro.settings import Settings
from feed.tokens import TokenSigner
from loadtests.cluster import free_port
from loadtests.report import emit
from loadtests.uploads import RssSampler
from media.app import close_store, upload_routes
from media.config import MediaSettings
from media.crypto import iter_plaintext
from media.events import NoEvents
from media.runtime import MediaContext

MB = 1_000_000
_WRITES = ("put", "upload_part", "stage_part", "complete_staged")
_READS = ("get", "get_buffer", "read_staged", "read_range")


class CountingStore:
    """The real store, with the bytes each call moved added up. Only the capabilities the inner
    store has are visible (``isinstance`` checks on the store protocols see the same ones)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.written = 0
        self.read = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in _WRITES:
            return self._counting_write(attr)
        if name in _READS:
            return self._counting_read(attr)
        if name == "stream":
            return self._counting_stream(attr)
        return attr

    def _counting_write(self, call: Callable[..., Any]) -> Callable[..., Any]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            data = args[-1] if args else None
            self.written += len(data) if isinstance(data, bytes | bytearray | memoryview) else 0
            return await call(*args, **kwargs)
        return counted

    def _counting_read(self, call: Callable[..., Any]) -> Callable[..., Any]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            result = await call(*args, **kwargs)
            self.read += len(result)
            return result
        return counted

    def _counting_stream(self, call: Callable[..., AsyncIterator[bytes]]) -> Callable[..., AsyncIterator[bytes]]:
        async def counted(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
            async for block in call(*args, **kwargs):
                self.read += len(block)
                yield block
        return counted


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A real S3 API on loopback (moto's server mode, a dev dependency); yields its endpoint."""
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def upload_once(ctx: MediaContext, counting: CountingStore, token: str, data: bytes,
                      request_bytes: int) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    here = [psutil.Process()]
    app = Starlette(routes=upload_routes(ctx))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench.test",
                                 timeout=120) as client:
        created = await client.post("/uploads/", headers={**auth, "Upload-Length": str(len(data))})
        created.raise_for_status()
        url = created.headers["Location"]
        written, read, disk, started = counting.written, counting.read, RssSampler.written(here), time.perf_counter()
        offset = requests = 0
        while offset < len(data):
            end = min(offset + request_bytes, len(data))
            response = await client.patch(url, content=data[offset:end], headers={
                **auth, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
            if response.status_code != 204:
                raise RuntimeError(f"PATCH at {offset}: {response.status_code} {response.text}")
            offset, requests = int(response.headers["Upload-Offset"]), requests + 1
        seconds = time.perf_counter() - started
        written, read, disk = counting.written - written, counting.read - read, RssSampler.written(here) - disk
    object_key = await ctx.db.fetchval("SELECT object_key FROM media_uploads WHERE id = $1", url.rsplit("/", 1)[1])
    digest = hashlib.sha256()
    async for block in iter_plaintext(ctx.store, ctx.keyring, object_key):
        digest.update(block)
    figures: dict[str, Any] = {
        "requests": requests,
        "seconds": round(seconds, 2),
        "store_written_per_uploaded_byte": round(written / len(data), 3),
        "store_read_per_uploaded_byte": round(read / len(data), 3),
        "verified": digest.digest() == hashlib.sha256(data).digest(),
    }
    if ctx.media.store == "local":
        figures["disk_written_per_uploaded_byte"] = round(disk / len(data), 3)
    return figures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="amaro-staging-") as tmp:
        root = Path(tmp)
        embedded = await asyncio.to_thread(EmbeddedServices(root / "data").start)
        try:
            conn = await asyncpg.connect(embedded.database_url)
            try:
                await migrate(conn)
            finally:
                await conn.close()
            services = await Services.open(embedded.redis_url, embedded.database_url)
            try:
                return await measure(args, services, root)
            finally:
                await services.close()
        finally:
            await asyncio.to_thread(embedded.stop)


async def measure(args: argparse.Namespace, services: Services, root: Path) -> dict[str, Any]:
    """Upload once per store and request size; ``root`` holds the local store and the keyring."""
    data = os.urandom(int(args.size_mb * MB))
    data = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomavc1" + data[24:]  # sniffs as MP4
    cases: list[dict[str, Any]] = []
    tokens = TokenSigner(secrets.token_bytes(32))
    with contextlib.ExitStack() as stack:
        stores: list[tuple[str, dict[str, Any]]] = [("local", {"store": "local", "local_dir": root / "objects"})]
        if not args.local_only:
            endpoint = stack.enter_context(moto_server())
            stores.append(("s3", {"store": "s3", "s3_endpoint": endpoint, "s3_bucket": "staging-bench",
                                  "s3_access_key": "bench", "s3_secret_key": "bench"}))
        for name, options in stores:
            media = MediaSettings(keyring_path=root / "keyring.json", part_size=int(args.part_mib * 2**20),
                                  max_file_size=len(data), user_quota=len(data) * 4 * len(args.request_mb),
                                  **options)
            opened = await open_media(Settings(media=media), services.redis, services.db, events=NoEvents(),
                                      tokens=tokens, ensure_bucket=True)
            counting = CountingStore(opened.store)
            ctx = dataclasses.replace(opened, store=counting)  # the handler's calls, counted
            try:
                for request_mb in args.request_mb:
                    user_id = str(uuid.uuid4())
                    await services.db.execute("INSERT INTO users (id, username, password_hash) VALUES ($1, $2, 'x')",
                                              user_id, f"bench{user_id[:8]}")
                    token = tokens.issue(user_id, str(uuid.uuid4()))
                    figures = await upload_once(ctx, counting, token, data, int(request_mb * MB))
                    cases.append({"store": name, "request_mb": request_mb, **figures})
            finally:
                await close_store(opened.store)
    return {
        "benchmark": "staging",
        "config": {"size_mb": args.size_mb, "part_mib": args.part_mib, "request_mb": args.request_mb},
        "cases": cases,
        "all_verified": all(case["verified"] for case in cases),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mb", type=float, default=64.0, help="bytes per upload, in MB (10^6)")
    parser.add_argument("--part-mib", type=float, default=8.0, help="AMARO_MEDIA_PART_SIZE, in MiB")
    parser.add_argument("--request-mb", type=float, nargs="+", default=[0.5, 16.0],
                        help="bytes per PATCH request, in MB; one upload each")
    parser.add_argument("--local-only", action="store_true", help="skip the S3 API (moto)")


def main(args: argparse.Namespace) -> int:
    result = asyncio.run(run(args))
    emit(result, args.json)
    return 0 if result["all_verified"] else 1
