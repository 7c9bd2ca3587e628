"""The tus 1.0 HTTP endpoint as a pure ASGI app: core, creation, creation-with-upload, termination,
checksum and expiration. Mount it at ``/uploads``; upload URLs are ``<mount>/<upload id>``.

HTTP framing only: parsing headers, authenticating, mapping ``TusError`` to responses. What each
verb does lives in ``ingest.py``. The request body is consumed message by message as the upload
needs it, so uvicorn's flow control slows a fast client instead of buffering it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
from collections.abc import AsyncIterator

import structlog
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from media import ingest, metrics
from media.errors import MediaError, TusError, unauthorized, unsupported_media
from media.ingest import CHECKSUMS, BodyInterrupted, Checksum
from media.runtime import MediaContext
from media.uploads import Upload, UploadState
from protocol.errors import ErrorCode, ProtocolError

log = structlog.get_logger(__name__)

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
OFFSET_TYPE = "application/offset+octet-stream"
MAX_METADATA = 4096
_VERBS = frozenset({"OPTIONS", "POST", "HEAD", "PATCH", "DELETE"})


def parse_metadata(raw: str | None) -> dict[str, str]:
    """``key base64,key2 base64,key3`` -> dict; values must be base64 (UTF-8 text after decoding)."""
    if not raw:
        return {}
    if len(raw) > MAX_METADATA:
        raise TusError("Upload-Metadata is too long", status=400, code="bad_metadata")
    found: dict[str, str] = {}
    for pair in raw.split(","):
        key, _, value = pair.strip().partition(" ")
        if not key or not key.isascii() or key in found:
            raise TusError("Upload-Metadata keys must be unique ASCII words", status=400, code="bad_metadata")
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8", "replace")
        except binascii.Error:
            raise TusError(f"Upload-Metadata value of {key!r} is not base64", status=400,
                           code="bad_metadata") from None
    return found


def encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v else k for k, v in metadata.items())


def _int_header(headers: Headers, name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise TusError(f"{name} must be a non-negative integer", status=400, code="bad_header")
    return int(raw)


def _expires(upload: Upload) -> dict[str, str]:
    if upload.state is not UploadState.UPLOADING:
        return {}
    return {"Upload-Expires": email.utils.format_datetime(upload.expires_at, usegmt=True)}


async def _body(receive: Receive, idle_timeout_s: float, draining: asyncio.Event) -> AsyncIterator[bytes]:
    """The request body, message by message. Ends with ``BodyInterrupted`` when the client goes away,
    sends nothing for ``idle_timeout_s``, or the node starts draining (what arrived is committed)."""
    while True:
        if draining.is_set():
            raise BodyInterrupted("draining")
        received = asyncio.ensure_future(receive())
        drained = asyncio.ensure_future(draining.wait())
        try:
            done, _ = await asyncio.wait({received, drained}, timeout=idle_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
            if not received.done():
                received.cancel()
        if received not in done:
            raise BodyInterrupted("draining" if draining.is_set() else "idle")
        message = received.result()
        if message["type"] == "http.disconnect":
            raise BodyInterrupted("disconnect")
        if data := message.get("body", b""):
            yield data
        if not message.get("more_body", False):
            return


class TusApp:
    def __init__(self, ctx: MediaContext) -> None:
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        status = 500

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
        try:
            await self._handle(scope, receive, counted)
        finally:
            verb = scope["method"] if scope["method"] in _VERBS else "OTHER"  # bounded label values
            metrics.REQUESTS.labels(verb, str(status)).inc()

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        method = scope["method"]
        if method == "POST" and headers.get("x-http-method-override"):
            method = headers["x-http-method-override"].upper()
        root = scope.get("root_path", "")
        path: str = scope["path"]
        rest = path[len(root):] if root and path.startswith(root) else path
        upload_id = rest.strip("/")
        try:
            if method == "OPTIONS":
                await self._respond(send, 204, self._capabilities())
                return
            if headers.get("tus-resumable") != TUS_VERSION:
                raise TusError("Tus-Resumable 1.0.0 is required", status=412, code="version_unsupported",
                               headers={"Tus-Version": TUS_VERSION})
            if "/" in upload_id:
                raise TusError("upload not found", status=404, code="not_found")
            user_id = self._authenticate(headers)
            if self.ctx.draining.is_set() and method in ("POST", "PATCH"):
                raise TusError("this node is shutting down; retry", status=503, code="draining",
                               headers={"Retry-After": "1", "Connection": "close"})
            if not upload_id and method == "POST":
                await self._post(scope, receive, send, headers, user_id)
            elif upload_id and method == "HEAD":
                await self._head(send, user_id, upload_id)
            elif upload_id and method == "PATCH":
                await self._patch(receive, send, headers, user_id, upload_id)
            elif upload_id and method == "DELETE":
                await ingest.terminate(self.ctx, user_id, upload_id)
                await self._respond(send, 204)
            else:
                raise TusError(f"{method} is not allowed here", status=405, code="method_not_allowed",
                               headers={"Allow": "POST, OPTIONS" if not upload_id else "HEAD, PATCH, DELETE, OPTIONS"})
        except TusError as exc:
            await self._error(send, exc.status, exc.code, "" if method == "HEAD" else exc.message, exc.headers)
        except BodyInterrupted as exc:
            # A stalled client gets 408 (if it still listens); a vanished one gets nothing useful; on a
            # draining node the client retries (503) and resumes on another node from HEAD's offset.
            if exc.reason == "draining":
                await self._error(send, 503, "draining", "this node is shutting down; resume from the offset "
                                  "HEAD reports", {"Retry-After": "1", "Connection": "close"})
            else:
                await self._error(send, 408 if exc.reason == "idle" else 400, "interrupted",
                                  f"request body {exc.reason}; resume from the offset HEAD reports", {})
        except MediaError as exc:
            log.error("upload_failed", error=exc.message, code=exc.code, upload_id=upload_id)
            await self._error(send, 500, exc.code, "the upload could not be stored; retry", {})
        except Exception:
            # Store or database trouble: the committed offset is intact, so the client may retry.
            log.exception("upload_error", upload_id=upload_id, method=method)
            await self._error(send, 500, "internal", "the upload could not be stored; retry", {})

    def _capabilities(self) -> dict[str, str]:
        return {"Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
                "Tus-Max-Size": str(self.ctx.media.max_file_size),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUMS)}

    def _authenticate(self, headers: Headers) -> str:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise unauthorized()
        try:
            return self.ctx.tokens.user_of(token.strip())
        except ProtocolError as exc:
            expired = exc.code is ErrorCode.TOKEN_EXPIRED
            err = unauthorized("access token expired" if expired else "invalid access token")
            err.code = "token_expired" if expired else "unauthorized"
            raise err from None

    def _location(self, scope: Scope, headers: Headers, upload_id: str) -> str:
        host = headers.get("host")
        if host is None:
            server = scope.get("server") or ("localhost", 80)
            host = f"{server[0]}:{server[1]}"
        root = scope.get("root_path", "").rstrip("/")
        return f"{scope.get('scheme', 'http')}://{host}{root}/{upload_id}"

    async def _post(self, scope: Scope, receive: Receive, send: Send, headers: Headers, user_id: str) -> None:
        if headers.get("upload-defer-length") is not None:
            raise TusError("Upload-Defer-Length is not supported; send Upload-Length", status=400,
                           code="length_required")
        length = _int_header(headers, "upload-length")
        if length is None:
            raise TusError("Upload-Length is required", status=400, code="length_required")
        metadata = parse_metadata(headers.get("upload-metadata"))
        content_length = _int_header(headers, "content-length")
        with_body = headers.get("content-type") == OFFSET_TYPE and content_length != 0
        checksum = Checksum.parse(headers["upload-checksum"]) if headers.get("upload-checksum") else None
        upload = await ingest.create(self.ctx, user_id, length, metadata)
        out = {"Location": self._location(scope, headers, upload.id), "Amaro-Post-Id": upload.post_id}
        if with_body:
            try:
                upload = await ingest.patch(self.ctx, user_id, upload.id, 0, content_length, checksum,
                                            _body(receive, self.ctx.media.idle_timeout_s, self.ctx.draining))
            except BodyInterrupted:
                upload = await ingest.head(self.ctx, user_id, upload.id)
            out["Upload-Offset"] = str(upload.offset)
        await self._respond(send, 201, out | _expires(upload))

    async def _head(self, send: Send, user_id: str, upload_id: str) -> None:
        upload = await ingest.head(self.ctx, user_id, upload_id)
        out = {"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length),
               "Cache-Control": "no-store", "Amaro-Post-Id": upload.post_id}
        if upload.metadata:
            out["Upload-Metadata"] = encode_metadata(upload.metadata)
        await self._respond(send, 200, out | _expires(upload))

    async def _patch(self, receive: Receive, send: Send, headers: Headers, user_id: str, upload_id: str) -> None:
        if headers.get("content-type") != OFFSET_TYPE:
            raise unsupported_media(f"PATCH requires Content-Type: {OFFSET_TYPE}")
        offset = _int_header(headers, "upload-offset")
        if offset is None:
            raise TusError("Upload-Offset is required", status=400, code="offset_required")
        checksum = Checksum.parse(headers["upload-checksum"]) if headers.get("upload-checksum") else None
        upload = await ingest.patch(self.ctx, user_id, upload_id, offset, _int_header(headers, "content-length"),
                                    checksum, _body(receive, self.ctx.media.idle_timeout_s, self.ctx.draining))
        await self._respond(send, 204, {"Upload-Offset": str(upload.offset)} | _expires(upload))

    async def _error(self, send: Send, status: int, code: str, message: str, extra: dict[str, str]) -> None:
        await self._respond(send, status, {"Amaro-Error": code, **extra}, (message + "\n").encode() if message else b"")

    async def _respond(self, send: Send, status: int, extra: dict[str, str] | None = None,
                       body: bytes = b"") -> None:
        raw = [(b"tus-resumable", TUS_VERSION.encode()), (b"content-length", str(len(body)).encode())]
        if body:
            raw.append((b"content-type", b"text/plain; charset=utf-8"))
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (extra or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
