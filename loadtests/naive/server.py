"""The naive HTTP server: a fixed pool of synchronous workers, one request each, start to end.

The listening thread only accepts connections and queues them; ``workers`` threads take them in
order and each handles its request completely (body, database, ffmpeg) before taking the next.
A request that finds every worker busy waits in that queue: that waiting is what the crash replay
measures.

The API (JSON bodies and answers; ``Authorization: Bearer TOKEN`` on all but sign-up and log-in):
``POST /signup`` and ``POST /login`` {username, password} -> {user_id, token}; ``POST /follow/ID``;
``GET /timeline?cursor=`` -> {posts, next}; ``GET /users/ID`` -> the profile and its first posts;
``POST /posts`` {text, media?} -> {id}; ``POST /posts/ID/reactions`` {kind}; ``POST /rooms``
{name, members}; ``POST /rooms/ID/messages`` {text}; ``GET /chat?since=`` -> {messages, last};
``POST /presence`` (heartbeat), ``DELETE /presence`` (leave), ``GET /presence`` -> {online};
``POST /uploads`` with the whole file as the body -> {id, output, output_bytes, transcode_s};
``GET /health``.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import socket
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loadtests.naive.store import Conflict, Store, User
from loadtests.naive.transcode import TranscodeFailed, receive, stop_transcodes, transcode

PAGE = 20
MAX_JSON = 64 * 1024


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PooledServer(HTTPServer):
    """HTTPServer whose requests run on ``workers`` fixed threads, each with its own Store."""

    request_queue_size = 128  # the listen backlog; accepted connections then wait in ``queue``

    def __init__(self, address: tuple[str, int], database_url: str, data_dir: Path, workers: int) -> None:
        super().__init__(address, Handler)
        self.database_url = database_url
        self.data_dir = data_dir
        self.uploads_dir = data_dir / "uploads"
        self.media_dir = data_dir / "media"
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.queue: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue()
        self._busy = 0
        self._idle = threading.Condition()
        self._local = threading.local()
        self._stores: list[Store] = []
        # Daemon threads: a request still running past the stop's grace period does not hold the exit.
        self._threads = [threading.Thread(target=self._worker, name=f"naive-worker-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def store(self) -> Store:
        """This worker thread's database connection, opened on its first request."""
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = Store(self.database_url)
            self._local.store = store
            with self._idle:
                self._stores.append(store)
        return store

    def process_request(self, request: Any, client_address: Any) -> None:
        self.queue.put((request, client_address))

    def _worker(self) -> None:
        while (item := self.queue.get()) is not None:
            request, client_address = item
            with self._idle:
                self._busy += 1
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def stop(self, grace_s: float) -> bool:
        """After ``shutdown()``: drop queued connections, stop ffmpeg runs, wait up to ``grace_s``
        for running requests; True when every worker finished."""
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in self._threads:
            self.queue.put(None)
        stop_transcodes()
        with self._idle:
            finished = self._idle.wait_for(lambda: self._busy == 0, timeout=grace_s)
            if finished:
                for store in self._stores:
                    store.close()
        self.server_close()
        return finished


Route = Callable[["Handler", re.Match[str]], tuple[int, Any]]


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: every answer closes its connection, so an idle client never holds a worker.
    protocol_version = "HTTP/1.0"
    server: PooledServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would cost more than the requests measured

    # -- plumbing --------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            for route_method, pattern, route in ROUTES:
                if route_method != method:
                    continue
                match = pattern.fullmatch(parts.path)
                if match is not None:
                    status, body = route(self, match)
                    break
            else:
                raise HttpError(404, "no such route")
        except HttpError as e:
            status, body = e.status, {"error": str(e)}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def length(self) -> int:
        try:
            return int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise HttpError(411, "Content-Length required") from None

    def json_body(self) -> dict[str, Any]:
        n = self.length()
        if n > MAX_JSON:
            raise HttpError(413, "body too large")
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            raise HttpError(400, "body is not JSON") from None
        if not isinstance(body, dict):
            raise HttpError(400, "body must be an object")
        return body

    def text(self, body: dict[str, Any], key: str, limit: int = 2000) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value or len(value) > limit:
            raise HttpError(400, f"{key}: a non-empty string of at most {limit} characters")
        return value

    def user(self) -> User:
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        user = self.server.store().session_user(token) if token else None
        if user is None:
            raise HttpError(401, "log in first")
        return user

    def int_param(self, name: str) -> int | None:
        raw = self.query.get(name)
        if raw in (None, ""):
            return None
        try:
            return int(raw)
        except ValueError:
            raise HttpError(400, f"{name}: an integer") from None


def _signup(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    body = h.json_body()
    try:
        user, token = h.server.store().sign_up(h.text(body, "username", 64), h.text(body, "password", 256))
    except Conflict:
        raise HttpError(409, "username taken") from None
    return 201, {"user_id": str(user.id), "token": token}


def _login(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    body = h.json_body()
    found = h.server.store().log_in(h.text(body, "username", 64), h.text(body, "password", 256))
    if found is None:
        raise HttpError(401, "wrong username or password")
    return 200, {"user_id": str(found[0].id), "token": found[1]}


def _follow(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    if not h.server.store().follow(h.user().id, int(m["user"])):
        raise HttpError(404, "no such user")
    return 200, {}


def _timeline(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    posts = h.server.store().timeline(h.user().id, h.int_param("cursor"), PAGE)
    return 200, {"posts": posts, "next": posts[-1]["id"] if len(posts) == PAGE else None}


def _profile(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    h.user()
    found = h.server.store().profile(int(m["user"]), PAGE)
    if found is None:
        raise HttpError(404, "no such user")
    return 200, found


def _post(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    user = h.user()
    body = h.json_body()
    media = body.get("media")
    if media is not None and not (isinstance(media, str) and re.fullmatch(r"[0-9a-f]{32}", media)):
        raise HttpError(400, "media: an upload id")
    return 201, {"id": str(h.server.store().post(user.id, h.text(body, "text"), media))}


def _react(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    user = h.user()
    kind = h.text(h.json_body(), "kind", 16)
    if not h.server.store().react(user.id, int(m["post"]), kind):
        raise HttpError(404, "no such post")
    return 200, {}


def _room(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    user = h.user()
    body = h.json_body()
    members = body.get("members", [])
    if not isinstance(members, list) or not all(isinstance(x, str) and x.isdigit() for x in members):
        raise HttpError(400, "members: a list of user ids")
    room = h.server.store().create_room(h.text(body, "name", 100), sorted({user.id, *map(int, members)}))
    return 201, {"id": str(room)}


def _chat_send(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    user = h.user()
    sent = h.server.store().chat_send(user.id, int(m["room"]), h.text(h.json_body(), "text"))
    if sent is None:
        raise HttpError(403, "not a member of this room")
    return 201, {"id": str(sent)}


def _chat_poll(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    messages, last = h.server.store().chat_since(h.user().id, h.int_param("since"), 200)
    return 200, {"messages": messages, "last": str(last)}


def _heartbeat(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    h.server.store().heartbeat(h.user().id)
    return 200, {}


def _leave(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    h.server.store().leave(h.user().id)
    return 200, {}


def _online(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    return 200, {"online": h.server.store().online_friends(h.user().id)}


def _upload(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    """The whole body to disk, then ffmpeg, both before answering (the beta's upload path)."""
    user = h.user()
    length = h.length()
    upload_id = uuid.uuid4().hex
    raw = h.server.uploads_dir / f"{upload_id}.raw"
    output = h.server.media_dir / f"{upload_id}.mp4"
    try:
        got = receive(h.rfile, length, raw)
        if got != length:
            raise HttpError(400, f"body ended after {got} of {length} bytes")
        try:
            seconds = transcode(raw, output)
        except TranscodeFailed as e:
            raise HttpError(422, f"cannot transcode: {e}") from None
    finally:
        raw.unlink(missing_ok=True)
    h.server.store().record_upload(upload_id, user.id, length, output.name, seconds)
    return 201, {"id": upload_id, "bytes": length, "output": output.name, "output_bytes": output.stat().st_size,
                 "transcode_s": round(seconds, 3)}


def _health(h: Handler, m: re.Match[str]) -> tuple[int, Any]:
    free = shutil.disk_usage(h.server.data_dir).free
    return 200, {"ok": True, "workers": h.server.workers, "disk_free": free}


ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    (method, re.compile(path), route) for method, path, route in [
        ("GET", r"/health", _health),
        ("POST", r"/signup", _signup),
        ("POST", r"/login", _login),
        ("POST", r"/follow/(?P<user>\d+)", _follow),
        ("GET", r"/timeline", _timeline),
        ("GET", r"/users/(?P<user>\d+)", _profile),
        ("POST", r"/posts", _post),
        ("POST", r"/posts/(?P<post>\d+)/reactions", _react),
        ("POST", r"/rooms", _room),
        ("POST", r"/rooms/(?P<room>\d+)/messages", _chat_send),
        ("GET", r"/chat", _chat_poll),
        ("POST", r"/presence", _heartbeat),
        ("DELETE", r"/presence", _leave),
        ("GET", r"/presence", _online),
        ("POST", r"/uploads", _upload),
    ]
]


