"""Resumable uploads: a tus 1.0 client of the platform's ``/uploads/`` endpoint (docs/media.md).

    uploads = Uploads.for_api(api, store=ResumeStore(path))   # or Uploads(base_url, token)
    done = await uploads.upload("dance.mp4", progress=lambda sent, total: ...)
    post = await api.create_post(upload_id=done.upload_id, body="Khelas!")

The file is streamed from disk in pieces, one PATCH per ``chunk_size``; nothing holds the whole
file in memory. Each chunk carries an ``Upload-Checksum`` (the server discards a chunk that does
not match). A ``ResumeStore`` remembers every unfinished upload under the file's fingerprint, so
``upload`` of the same file, even from a new process after a crash, asks the server how far it
got (``HEAD``) and continues from there. Busy or draining servers (423, 429, 503) and dropped
connections are retried after ``Retry-After``; an offset the server disagrees with is re-read.

HTTP is the standard library's ``http.client`` (in a thread: the caller's loop never blocks).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amaro_client.api import Api
from amaro_client.http import ApiError, check_http_url, retry_after

Progress = Callable[[int, int], None]
TokenSource = Callable[[], Awaitable[str]]
PIECE = 64 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
RETRYABLE = {408, 423, 429, 500, 502, 503, 504}


class UploadError(ApiError):
    """The upload endpoint refused: ``status`` and its ``Amaro-Error`` ``code``."""


class UploadCancelled(Exception):
    """``Uploads.cancel()`` stopped the transfer; the upload can be resumed later."""


@dataclass
class Upload:
    url: str
    upload_id: str
    post_id: str
    length: int
    offset: int = 0

    @property
    def complete(self) -> bool:
        return self.offset >= self.length


def fingerprint(path: Path, endpoint: str, user: str = "") -> str:
    """Who uploads which file where: the same file (path, size, modification time, first bytes)
    to the same endpoint gives the same key, an edited file another one."""
    stat = path.stat()
    with path.open("rb") as f:
        head = hashlib.sha256(f.read(PIECE)).hexdigest()
    key = f"{endpoint}|{user}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{head}"
    return hashlib.sha256(key.encode()).hexdigest()


class ResumeStore:
    """Unfinished uploads by fingerprint: a JSON file (mode 0600) shared across processes, or
    memory only when ``path`` is None."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._memory: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return self._memory
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        if self.path is None:
            self._memory = data
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(scratch, self.path)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._read().get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        with self._lock:
            data = self._read()
            data[key] = record
            self._write(data)

    def drop(self, key: str) -> None:
        with self._lock:
            data = self._read()
            if data.pop(key, None) is not None:
                self._write(data)


def _metadata(pairs: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


class Uploads:
    """The tus client of one user. ``token`` is an access token or an async source of one (e.g.
    ``api.access_token``, which refreshes before expiry); ``refresh(stale_token)``, when given, is
    called once when the server refuses a token (``for_api`` wires both to an ``Api``)."""

    def __init__(self, base_url: str, token: str | TokenSource, *, endpoint: str = "/uploads/",
                 chunk_size: int = 8 * 1024 * 1024, store: ResumeStore | None = None, checksum: bool = True,
                 max_rate_bps: float | None = None, retries: int = 5, timeout_s: float = 30.0,
                 refresh: Callable[[str], Awaitable[object]] | None = None) -> None:
        self.endpoint = urllib.parse.urljoin(base_url.rstrip("/") + "/", endpoint.lstrip("/"))
        check_http_url(self.endpoint)
        self._token = token
        self.chunk_size = max(PIECE, chunk_size)
        self.store = store if store is not None else ResumeStore()
        self.checksum = checksum
        self.max_rate_bps = max_rate_bps
        self.retries = retries
        self.timeout_s = timeout_s
        self._cancel = threading.Event()
        self._refresh = refresh

    @classmethod
    def for_api(cls, api: Api, **options: Any) -> Uploads:
        """Uploads as ``api``'s user, with its grant's refreshes."""
        return cls(api.base_url, api.access_token, refresh=lambda stale: api.refresh(stale=stale), **options)

    async def _bearer(self) -> str:
        return self._token if isinstance(self._token, str) else await self._token()

    # -- one request, in a thread -----------------------------------------------------------------

    def _exchange(self, method: str, url: str, headers: dict[str, str],
                  body: Iterator[bytes] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        parts = urllib.parse.urlsplit(url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = kind(parts.netloc, timeout=self.timeout_s)
        try:
            conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                         headers=headers, encode_chunked=False)
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    async def _call(self, method: str, url: str, headers: dict[str, str] | None = None,
                    body: Iterator[bytes] | None = None, ok: tuple[int, ...] = (200, 201, 204)
                    ) -> http.client.HTTPMessage:
        token = await self._bearer()
        all_headers = {**TUS, "Authorization": f"Bearer {token}", **(headers or {})}
        status, answer, text = await asyncio.to_thread(self._exchange, method, url, all_headers, body)
        if status == 401 and self._refresh is not None and body is None:
            await self._refresh(token)  # refused although it looked fresh: once more, refreshed
            all_headers["Authorization"] = f"Bearer {await self._bearer()}"
            status, answer, text = await asyncio.to_thread(self._exchange, method, url, all_headers, body)
        if status not in ok:
            message = text.decode("utf-8", "replace").strip()
            raise UploadError(status, answer.get("Amaro-Error", "http_error"), message,
                              retry_after(answer.get("Retry-After")))
        return answer

    # -- the tus verbs ----------------------------------------------------------------------------

    async def create(self, path: Path, metadata: dict[str, str] | None = None) -> Upload:
        length = (await asyncio.to_thread(path.stat)).st_size
        pairs = {"filename": path.name, **(metadata or {})}
        answer = await self._call("POST", self.endpoint, {"Upload-Length": str(length),
                                                          "Upload-Metadata": _metadata(pairs),
                                                          "Content-Length": "0"}, ok=(201,))
        url = urllib.parse.urljoin(self.endpoint, answer["Location"])
        return Upload(url, url.rstrip("/").rsplit("/", 1)[-1], answer.get("Amaro-Post-Id", ""), length,
                      int(answer.get("Upload-Offset", "0")))

    async def head(self, url: str) -> Upload:
        """The server's view of an upload: how far it got."""
        answer = await self._call("HEAD", url)
        return Upload(url, url.rstrip("/").rsplit("/", 1)[-1], answer.get("Amaro-Post-Id", ""),
                      int(answer.get("Upload-Length", "0")), int(answer.get("Upload-Offset", "0")))

    async def terminate(self, upload: Upload) -> None:
        """Abort an unfinished upload on the server (its draft post goes too)."""
        await self._call("DELETE", upload.url)

    def cancel(self) -> None:
        """Stop the transfer under way (from any thread); ``upload`` raises ``UploadCancelled``."""
        self._cancel.set()

    # -- streaming --------------------------------------------------------------------------------

    def _pieces(self, path: Path, start: int, end: int, sent: Callable[[int], None]) -> Iterator[bytes]:
        began, done = time.monotonic(), 0
        with path.open("rb") as f:
            f.seek(start)
            while done < end - start:
                if self._cancel.is_set():
                    raise UploadCancelled("cancelled")
                piece = f.read(min(PIECE, end - start - done))
                if not piece:
                    raise OSError(f"{path} shrank while it was being uploaded")
                yield piece
                done += len(piece)
                sent(start + done)
                if self.max_rate_bps:
                    ahead = done / self.max_rate_bps - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)

    def _digest(self, path: Path, start: int, end: int) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                piece = f.read(min(PIECE, left))
                if not piece:
                    raise OSError(f"{path} shrank while it was being uploaded")
                digest.update(piece)
                left -= len(piece)
        return "sha256 " + base64.b64encode(digest.digest()).decode()

    async def _patch(self, upload: Upload, path: Path, progress: Progress | None) -> None:
        loop = asyncio.get_running_loop()
        start, end = upload.offset, min(upload.length, upload.offset + self.chunk_size)

        def sent(offset: int) -> None:
            if progress is not None:
                loop.call_soon_threadsafe(progress, offset, upload.length)

        headers = {"Upload-Offset": str(start), "Content-Type": "application/offset+octet-stream",
                   "Content-Length": str(end - start)}
        if self.checksum:
            headers["Upload-Checksum"] = await asyncio.to_thread(self._digest, path, start, end)
        answer = await self._call("PATCH", upload.url, headers, self._pieces(path, start, end, sent), ok=(204,))
        upload.offset = int(answer.get("Upload-Offset", str(end)))

    async def send(self, upload: Upload, path: Path, progress: Progress | None = None) -> Upload:
        """PATCH ``path`` from ``upload.offset`` to its end, re-reading the offset after a failure."""
        failures = 0
        while not upload.complete:
            try:
                await self._patch(upload, path, progress)
                failures = 0
            except UploadCancelled:
                raise
            except (UploadError, OSError, http.client.HTTPException) as exc:
                refused = isinstance(exc, UploadError) and exc.status == 401 and self._refresh is not None
                if isinstance(exc, UploadError) and exc.status not in RETRYABLE and not refused and exc.code not in (
                        "offset_mismatch", "checksum_mismatch"):
                    raise
                failures += 1
                if failures > self.retries:
                    raise
                if refused and self._refresh is not None:
                    await self._refresh(await self._bearer())
                wait = exc.retry_after if isinstance(exc, UploadError) and exc.retry_after is not None \
                    else min(10.0, 0.25 * 2 ** failures)
                await asyncio.sleep(wait)
                upload.offset = (await self.head(upload.url)).offset
        if progress is not None:
            await asyncio.sleep(0)  # the last call_soon_threadsafe report runs before we return
        return upload

    async def upload(self, path: Path | str, *, metadata: dict[str, str] | None = None,
                     progress: Progress | None = None, user: str = "") -> Upload:
        """Upload ``path``: resumed if the store knows an unfinished upload of this very file,
        else created. Returns the finished upload (its ``upload_id`` and ``post_id``)."""
        path = Path(path)
        self._cancel.clear()
        key = await asyncio.to_thread(fingerprint, path, self.endpoint, user)
        known = self.store.get(key)
        upload: Upload | None = None
        if known is not None:
            try:
                upload = await self.head(str(known["url"]))
            except UploadError as exc:
                if exc.status not in (404, 410):
                    raise
                self.store.drop(key)  # expired or terminated: start over
        if upload is None:
            upload = await self.create(path, metadata)
            self.store.put(key, {"url": upload.url, "post_id": upload.post_id, "length": upload.length})
        if progress is not None:
            progress(upload.offset, upload.length)
        await self.send(upload, path, progress)
        self.store.drop(key)
        return upload

    async def abort(self, path: Path | str, *, user: str = "") -> bool:
        """Terminate the unfinished upload of ``path`` the store knows, if any."""
        key = await asyncio.to_thread(fingerprint, Path(path), self.endpoint, user)
        known = self.store.get(key)
        if known is None:
            return False
        for attempt in range(self.retries + 1):
            try:
                await self.terminate(Upload(str(known["url"]), "", "", 0))
                break
            except UploadError as exc:
                if exc.status in (404, 410):
                    break  # already gone (expired, or terminated before)
                if exc.status not in RETRYABLE or attempt == self.retries:
                    raise  # e.g. 409 complete: a finished upload is not aborted
                # 423: a PATCH that was just cut off is still being committed
                await asyncio.sleep(exc.retry_after if exc.retry_after is not None else 0.25 * 2 ** attempt)
        self.store.drop(key)
        return True
