"""S3-compatible object store over aioboto3: the only module that imports it.

One client is opened per store and reused (creating a client per call costs a TLS handshake and
endpoint resolution). Originals are written with S3 multipart uploads; nothing touches local disk.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from media.config import S3_MIN_PART, MediaSettings
from media.errors import StoreError
from media.store import Part

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store:
    min_part_size = S3_MIN_PART

    def __init__(self, client: Any, bucket: str, stack: contextlib.AsyncExitStack) -> None:
        self._client = client
        self.bucket = bucket
        self._stack = stack

    @classmethod
    async def open(cls, settings: MediaSettings) -> S3Store:
        session = aioboto3.Session()
        kwargs: dict[str, Any] = {"region_name": settings.s3_region}
        if settings.s3_endpoint:
            kwargs["endpoint_url"] = settings.s3_endpoint
        if settings.s3_access_key:
            kwargs["aws_access_key_id"] = settings.s3_access_key
            kwargs["aws_secret_access_key"] = settings.s3_secret_key
        # Checksums only where S3 requires them: several S3-compatible servers reject the CRC
        # trailers botocore sends by default since 1.36, and parts are authenticated by AES-GCM anyway.
        # For the same reason no SHA-256 of the payload in the signature (UNSIGNED-PAYLOAD): without
        # a checksum header botocore would hash every part in the event loop, a stall for every
        # socket of a hub serving uploads.
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                        max_pool_connections=64, request_checksum_calculation="when_required",
                        response_checksum_validation="when_required", s3={"payload_signing_enabled": False})
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(session.client("s3", config=config, **kwargs))
        return cls(client, settings.s3_bucket, stack)

    async def close(self) -> None:
        await self._stack.aclose()

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (embedded S3 servers and tests)."""
        try:
            await self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            await self._client.create_bucket(Bucket=self.bucket)

    async def put(self, key: str, data: bytes | bytearray) -> None:
        await self._client.put_object(Bucket=self.bucket, Key=key, Body=data)

    async def put_file(self, key: str, path: Path, *, content_type: str, cache_control: str) -> None:
        await self._client.upload_file(str(path), self.bucket, key,
                                       ExtraArgs={"ContentType": content_type, "CacheControl": cache_control})

    async def _get_object(self, key: str) -> Any:
        """The GetObject response (its body still to read); a missing object is ``not_found``."""
        try:
            return await self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise StoreError(f"object {key!r} not found", status=404, code="not_found") from None
            raise

    async def get(self, key: str) -> bytes:
        response = await self._get_object(key)
        async with response["Body"] as body:
            data: bytes = await body.read()
            return data

    async def get_buffer(self, key: str) -> bytearray:
        response = await self._get_object(key)
        buf = bytearray()
        body = response["Body"]
        try:
            async for block in body.iter_chunks(256 * 1024):  # small copies, each its own loop step
                buf += block
        finally:
            body.close()
        return buf

    async def stream(self, key: str, *, block_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        response = await self._get_object(key)
        body = response["Body"]
        try:
            async for block in body.iter_chunks(block_size):
                yield block
        finally:
            body.close()

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        response = await self._client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        async with response["Body"] as body:
            data: bytes = await body.read()
            return data

    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=key)

    async def size(self, key: str) -> int | None:
        try:
            head = await self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise
        return int(head["ContentLength"])

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    async def list_keys(self, prefix: str) -> AsyncIterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"])

    async def create_multipart(self, key: str) -> str:
        response = await self._client.create_multipart_upload(Bucket=self.bucket, Key=key)
        return str(response["UploadId"])

    async def upload_part(self, key: str, multipart_id: str, number: int, data: bytes | bytearray) -> str:
        try:
            response = await self._client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=multipart_id, PartNumber=number, Body=data)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise StoreError("multipart upload not found", status=404, code="not_found") from None
            raise
        return str(response["ETag"])

    async def complete_multipart(self, key: str, multipart_id: str, parts: Sequence[Part]) -> None:
        try:
            await self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=multipart_id,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]})
        except ClientError as exc:
            # A retried completion finds the multipart gone and the object published.
            if _code(exc) in _MISSING and await self.exists(key):
                return
            raise StoreError(f"completing {key!r} failed: {_code(exc)}") from exc

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        try:
            await self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=multipart_id)
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                raise

