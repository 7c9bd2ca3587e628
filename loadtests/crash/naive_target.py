"""The crash replay against the naive baseline (loadtests/naive): the first beta's stack.

`NaiveTarget` starts ``python -m loadtests.naive`` on a free port with its own database and data
folder (or attaches to a running one by URL), builds the same world as the platform target (the
follow graph and rooms of `loadtests.crash.model`), and gives `NaivePerson`s that use plain HTTP:
every light action is one request, chat and presence arrive by polling GETs every 1-2 s, and a
video is one POST of the whole file, paced to the uplink like the platform's uploads, whose answer
comes after the server transcoded it (so good-enough and upgraded are both that answer's arrival).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from amaro.cli import read_settings
from amaro.embedded import EmbeddedPostgres
from loadtests.crash.box import processes_named
from loadtests.crash.model import PRESETS, follow_graph, room_groups
from loadtests.crash.target import (
    Account,
    ChatReceived,
    Inbox,
    PresenceSeen,
    Progress,
    UploadOutcome,
    World,
)
from loadtests.uploads import TokenBucket

POLL_S = (1.0, 2.0)          # a poll every 1-2 s, as the beta's web page did with setInterval
HEARTBEAT_S = 5.0            # the server counts a user online for 10 s after a heartbeat
REQUEST_TIMEOUT_S = 60.0     # a light request still unanswered after this is an error
SEED_POSTS = 3               # text posts each person has before the run, so timelines have pages
CHUNK = 64 * 1024
CLOSE_WAIT_S = 5.0
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.status_code} "
                           f"{response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body


class NaivePerson:
    """One simulated tester against the naive server: plain HTTP, polling, one-shot uploads."""

    def __init__(self, base_url: str, account: Account) -> None:
        self.account = account
        self.base_url = base_url
        self.token = ""
        self.http = httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S)
        self._poller: asyncio.Task[None] | None = None
        self.failed_polls = 0
        self._rng = random.Random(f"naive-poll:{account.index}")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _get(self, path: str, **params: str) -> dict[str, Any]:
        return _check(await self.http.get(path, params=params, headers=self._auth()))

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return _check(await self.http.post(path, json=body, headers=self._auth()))

    async def log_in(self) -> None:
        answer = await self._post("/login", {"username": self.account.username, "password": self.account.password})
        self.token = answer["token"]

    async def go_online(self, inbox: Inbox) -> None:
        await self.go_offline()
        _check(await self.http.post("/presence", headers=self._auth()))
        since = (await self._get("/chat"))["last"]
        self._poller = asyncio.create_task(self._poll(inbox, since), name=f"naive-poll-{self.account.index}")

    async def _poll(self, inbox: Inbox, since: str) -> None:
        """The page's setInterval: new chat messages and the online list, one GET each, every 1-2 s."""
        online: set[str] = set()
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(self._rng.uniform(*POLL_S))
            try:
                if time.monotonic() - last_beat >= HEARTBEAT_S:
                    last_beat = time.monotonic()
                    _check(await self.http.post("/presence", headers=self._auth()))
                chat = await self._get("/chat", since=since)
                arrived = time.monotonic()
                since = chat["last"]
                for message in chat["messages"]:
                    if message["user_id"] != self.account.user_id:
                        inbox(ChatReceived(room=message["room"], body=message["body"], at=arrived))
                now_online = set((await self._get("/presence"))["online"])
                seen = time.monotonic()
                for user_id in sorted(now_online - online):
                    inbox(PresenceSeen(user_id=user_id, online=True, at=seen))
                for user_id in sorted(online - now_online):
                    inbox(PresenceSeen(user_id=user_id, online=False, at=seen))
                online = now_online
            except Exception:
                self.failed_polls += 1  # retried at the next tick, as the page would

    async def go_offline(self) -> None:
        if self._poller is None:
            return
        self._poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._poller
        self._poller = None
        _check(await self.http.delete("/presence", headers=self._auth()))

    async def timeline_page(self, cursor: str | None) -> str | None:
        answer = await self._get("/timeline", **({"cursor": cursor} if cursor else {}))
        return answer["next"]  # type: ignore[no-any-return]

    async def profile(self, user_id: str) -> None:
        await self._get(f"/users/{user_id}")

    async def post(self, text: str) -> str:
        return str((await self._post("/posts", {"text": text}))["id"])

    async def react(self, post_id: str) -> None:
        await self._post(f"/posts/{post_id}/reactions", {"kind": "heart"})

    async def chat_send(self, room: str, text: str) -> None:
        await self._post(f"/rooms/{room}/messages", {"text": text})

    async def upload_video(self, path: Path, uplink_bps: float, caption: str,
                           progress: Progress | None = None, wait_s: float = 120.0) -> UploadOutcome:
        size = (await asyncio.to_thread(path.stat)).st_size
        outcome = UploadOutcome(bytes=size, started=time.monotonic())
        # The SDK's pacing (clients/python Uploads, max_rate_bps): 64 KiB pieces at the uplink's rate.
        # A token bucket of one piece gives the same stream, and after a stall (no free worker to
        # read the body) it does not burst to catch up, as a real uplink could not.
        bucket = TokenBucket(uplink_bps / 8, burst=CHUNK)

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            with path.open("rb") as f:
                while chunk := await asyncio.to_thread(f.read, CHUNK):
                    await bucket.take(len(chunk))
                    yield chunk
                    sent += len(chunk)
                    if progress is not None:
                        progress(sent)
            outcome.last_byte = time.monotonic()

        # The server reads the body only when a worker is free, so a write may wait that long.
        timeout = httpx.Timeout(connect=REQUEST_TIMEOUT_S, read=wait_s, write=wait_s, pool=None)
        try:
            response = await self.http.post("/uploads", content=body(), timeout=timeout,
                                            headers={**self._auth(), "Content-Length": str(size),
                                                     "Content-Type": "application/octet-stream"})
            answer = _check(response)
            # One rendition, made inside the request: it is both good enough and the final quality.
            outcome.good_enough = outcome.upgraded = time.monotonic()
            await self._post("/posts", {"text": caption, "media": answer["id"]})
            outcome.ok = True
        except (httpx.HTTPError, RuntimeError) as e:
            outcome.error = f"{type(e).__name__}: {e}"[:300]
        return outcome

    async def close(self) -> None:
        # A jammed server may never answer the leave: the person goes anyway after a few seconds.
        with contextlib.suppress(httpx.HTTPError, RuntimeError, TimeoutError):
            await asyncio.wait_for(self.go_offline(), CLOSE_WAIT_S)
        await self.http.aclose()


class NaiveTarget:
    """The naive server as a system under test: its own process, database and data folder."""

    name = "naive"

    def __init__(self, url: str | None = None, database_url: str | None = None, workers: int = 4,
                 own_database: bool = True) -> None:
        """``database_url``: where PostgreSQL is (default ``AMARO_DATABASE_URL``, else an embedded one
        started for the run); with ``own_database`` a fresh database is created there for the run and
        dropped after, else the URL's own database is used."""
        self.url = url
        self.workers = workers
        self._admin_db_url = database_url or read_settings().services.database_url
        self._own_database = own_database
        self._db_name = ""
        self.database_url = self._admin_db_url
        self.data_dir: Path | None = None
        self._embedded: EmbeddedPostgres | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    async def __aenter__(self) -> NaiveTarget:
        if self.url is not None:
            return self
        self._tmp = tempfile.TemporaryDirectory(prefix="amaro-naive-")
        folder = Path(self._tmp.name)
        try:
            await self._start(folder)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _start(self, folder: Path) -> None:
        if not self._admin_db_url:
            # As the platform's cluster does with no AMARO_DATABASE_URL: a real PostgreSQL of its own.
            await asyncio.to_thread(folder.chmod, 0o755)  # pgserver runs PostgreSQL as its own user under root
            self._embedded = EmbeddedPostgres(folder / "postgres")
            self._admin_db_url = self.database_url = await asyncio.to_thread(self._embedded.start)
        if self._own_database:
            self._db_name = f"amaro_naive_{secrets.token_hex(4)}"
            conn = await asyncpg.connect(self._admin_db_url)
            try:
                await conn.execute(f'CREATE DATABASE "{self._db_name}"')
            finally:
                await conn.close()
            self.database_url = _with_database(self._admin_db_url, self._db_name)
        port = _free_port()
        self.process = await asyncio.to_thread(self._spawn, port, folder)
        self.url = f"http://127.0.0.1:{port}"
        await self._wait_answering()

    def _spawn(self, port: int, folder: Path) -> subprocess.Popen[bytes]:
        self._log = (folder / "naive.log").open("wb")
        self.data_dir = folder / "data"
        return subprocess.Popen(
            [sys.executable, "-m", "loadtests.naive", "--port", str(port), "--data", str(self.data_dir),
             "--db", self.database_url, "--workers", str(self.workers)],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    async def _wait_answering(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.url or "", timeout=2.0) as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"the naive server exited ({self.process.returncode}): {self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/health")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the naive server did not answer in {timeout_s:.0f} s: {self.log_tail()}")
                await asyncio.sleep(0.05)

    def log_tail(self) -> str:
        if self._tmp is None:
            return ""
        log = Path(self._tmp.name) / "naive.log"
        return log.read_text(errors="replace")[-1000:] if log.is_file() else ""

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._db_name:
            conn = await asyncpg.connect(self._admin_db_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self._db_name}" WITH (FORCE)')
            finally:
                await conn.close()
            self._db_name = ""
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def setup(self, users: int, seed: int) -> World:
        """Accounts, the model's follow graph and rooms, and a few text posts each, all over HTTP."""
        preset = PRESETS["beta"]
        graph = follow_graph(users, preset.follows, seed)
        groups = room_groups(users, preset.room_size)
        limit = asyncio.Semaphore(8)
        async with httpx.AsyncClient(base_url=self.url or "", timeout=REQUEST_TIMEOUT_S) as http:

            async def call(method: str, path: str, token: str = "", body: dict[str, Any] | None = None
                           ) -> dict[str, Any]:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with limit:
                    return _check(await http.request(method, path, json=body or {}, headers=headers))

            async def sign_up(i: int) -> tuple[Account, str]:
                account = Account(i, f"naive{seed}p{i}", f"pw-{seed}-{i}-{secrets.token_hex(4)}")
                answer = await call("POST", "/signup", body={"username": account.username,
                                                             "password": account.password})
                return Account(i, account.username, account.password, answer["user_id"]), answer["token"]

            signed = await asyncio.gather(*(sign_up(i) for i in range(users)))
            accounts = [a for a, _ in signed]
            tokens = [t for _, t in signed]
            await asyncio.gather(*(call("POST", f"/follow/{accounts[j].user_id}", tokens[i])
                                   for i, followed in graph.items() for j in followed))
            rooms: dict[str, list[int]] = {}
            for k, group in enumerate(groups):
                answer = await call("POST", "/rooms", tokens[group[0]],
                                    {"name": f"room {k}", "members": [accounts[i].user_id for i in group]})
                rooms[answer["id"]] = group
            posts = await asyncio.gather(*(call("POST", "/posts", tokens[i], {"text": f"hello {n} from {i}"})
                                           for n in range(SEED_POSTS) for i in range(users)))
        return World(accounts=accounts, friends=graph, rooms=rooms, posts=[p["id"] for p in posts])

    def person(self, account: Account) -> NaivePerson:
        return NaivePerson(self.url or "", account)

    def pids(self) -> dict[str, list[int]]:
        """The server ("naive", with the ffmpeg runs it starts inside requests: the sampler counts a
        role's children) and the PostgreSQL backends serving its database ("postgres")."""
        if self.process is None or self.process.poll() is not None:
            return {}
        db = urlsplit(self.database_url).path.lstrip("/")  # the URL may end in a socket folder's query
        return {"naive": [self.process.pid], "postgres": processes_named(("postgres",), needle=f" {db} ")}


def make_target(url: str | None) -> NaiveTarget:
    """The runner's entry point: None starts a naive server, a URL attaches to a running one."""
    return NaiveTarget(url)
