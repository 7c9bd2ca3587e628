"""The web app as a hub node serves it: its static files at ``/`` under a strict Content Security
Policy, and ``/app/config.json``, which tells the app where the sockets, uploads and API are.

The files are the committed build of ``clients/web`` (no build step on a node). Content-hashed
assets (``assets/*-<hash>.*``) are cached for a year; everything else is revalidated by ETag.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from amaro.infra.web import JSONResponse

BUNDLED = Path(__file__).resolve().parent.parent / "clients" / "web" / "dist"
UPLOADS_PATH = "/uploads/"
API_PATH = "/api/v1"
IMMUTABLE = "public, max-age=31536000, immutable"
COMPRESSIBLE = (".js", ".mjs", ".css", ".html", ".json", ".svg", ".webmanifest", ".map")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def web_root(setting: str) -> Path | None:
    """The folder of the web app: ``bundled`` is the repository's build when present; ``none``: no app."""
    if setting == "none":
        return None
    root = BUNDLED if setting == "bundled" else Path(setting)
    return root.resolve() if (root / "index.html").is_file() else None


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(socket_urls: list[str], media_base: str) -> str:
    connect = ["'self'", *dict.fromkeys(socket_urls)]
    media = ["'self'", "blob:"]
    images = ["'self'", "data:", "blob:"]
    if media_base:
        # Playlists and segments are fetched by hls.js (connect), posters are images.
        extra = origin_of(media_base)
        connect.append(extra)
        media.append(extra)
        images.append(extra)
    return "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self'", f"img-src {' '.join(images)}",
        f"media-src {' '.join(media)}", f"connect-src {' '.join(connect)}", "worker-src 'self' blob:",
        "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'",
    ])


def socket_urls(request: Request, public: tuple[str, ...], ws_port: int) -> list[str]:
    """The configured public URLs, else this node's socket port on the host the browser used."""
    if public:
        return list(public)
    host = request.url.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return [f"{scheme}://{host}:{ws_port}/ws"]


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    gzipped: bytes | None
    etag: str
    media_type: str


class StaticFiles:
    """Files of one folder, read when first asked and again when they change on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[Path, tuple[tuple[int, int], StaticFile]] = {}

    def find(self, relative: str) -> StaticFile | None:
        if not relative or any(part in ("", ".", "..") for part in relative.split("/")) or "\\" in relative:
            return None
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        body = path.read_bytes()
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix in (".js", ".mjs"):
            media_type = "text/javascript"
        if media_type.startswith("text/") or path.suffix in (".json", ".webmanifest", ".svg"):
            media_type += "; charset=utf-8"
        gzipped = gzip.compress(body, 9, mtime=0) if path.suffix in COMPRESSIBLE and len(body) > 512 else None
        found = StaticFile(body, gzipped, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', media_type)
        self._cache[path] = (stamp, found)
        return found


def _is_hashed(relative: str) -> bool:
    return relative.startswith("assets/")


def web_routes(web_dir: str, public_ws_urls: tuple[str, ...], media_base: str,
               ws_port: Callable[[], int]) -> list[BaseRoute]:
    """``/app/config.json`` and the app's files (mount these last: every other route wins).
    ``ws_port`` gives the port this node's sockets really listen on."""
    root = web_root(web_dir)
    files = StaticFiles(root) if root is not None else None

    def security_headers(request: Request) -> dict[str, str]:
        urls = socket_urls(request, public_ws_urls, ws_port())
        return {"Content-Security-Policy": content_security_policy(urls, media_base),
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

    async def config(request: Request) -> Response:
        body = {"ws": socket_urls(request, public_ws_urls, ws_port()), "uploads": UPLOADS_PATH, "api": API_PATH}
        return JSONResponse(body, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    async def serve(request: Request) -> Response:
        relative = request.path_params["path"] or "index.html"
        found = None
        if files is not None and request.method in ("GET", "HEAD"):
            # Reading and compressing a file the first time is not work for the event loop.
            found = await run_in_threadpool(files.find, relative)
        if found is None:
            return JSONResponse({"error": {"code": "not_found", "message": "not found"}}, status_code=404)
        zipped = found.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "")
        # Each encoding is its own representation, with its own strong validator.
        etag = found.etag[:-1] + '-gz"' if zipped else found.etag
        headers = {**security_headers(request), "ETag": etag, "Vary": "Accept-Encoding",
                   "Cache-Control": IMMUTABLE if _is_hashed(relative) else "no-cache"}
        if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        body = found.body
        if zipped and found.gzipped is not None:
            body = found.gzipped
            headers["Content-Encoding"] = "gzip"
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return Response(status_code=200, headers=headers, media_type=found.media_type)
        return Response(body, headers=headers, media_type=found.media_type)

    return [Route("/app/config.json", config, methods=["GET", "HEAD"]),
            Route("/{path:path}", serve, methods=ALL_METHODS)]
