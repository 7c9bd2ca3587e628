"""The platform as a crash-replay target: a throwaway cluster (or a running platform) and SDK people.

Without a URL it starts `loadtests.cluster.Cluster`: hub(s) for the API and sockets, an ingest
node for uploads (the platform's own answer to the beta: heavy bytes never share the hubs'
processes) and NARA worker(s). With a URL it reads `/app/config.json` for the socket and upload
addresses. People act only through the SDK: `Api` (HTTP), `Client` (the socket: chat, reactions,
presence, media events) and `Uploads` (tus, paced with `max_rate_bps`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from amaro_client import Api, Client, ResumeStore, Uploads
from loadtests.cluster import Cluster
from loadtests.crash import model
from loadtests.crash.box import processes_named
from loadtests.crash.target import (
    Account,
    ChatReceived,
    Inbox,
    Person,
    PresenceSeen,
    Progress,
    Target,
    UploadOutcome,
    World,
)
from protocol import frames as F

SETUP_CONCURRENCY = 4
FRIENDS = "online:friends"


class PlatformPerson:
    def __init__(self, account: Account, target: PlatformTarget, rooms: list[str]) -> None:
        self.account = account
        self._target = target
        self._rooms = rooms
        self.api: Api | None = None
        self.client: Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._media: dict[tuple[str, str], float] = {}
        self._media_changed = asyncio.Event()

    def _api(self) -> Api:
        if self.api is None:
            raise RuntimeError(f"{self.account.username} is not logged in")
        return self.api

    def _client(self) -> Client:
        if self.client is None:
            raise RuntimeError(f"{self.account.username} is offline")
        return self.client

    async def log_in(self) -> None:
        self.api = await Api.login(self._target.http_url, self.account.username, self.account.password)

    async def go_online(self, inbox: Inbox) -> None:
        api = self._api()
        client = Client(self._target.ws_url, token_source=api.access_token)
        await client.connect()
        self.client = client
        self._reader = asyncio.create_task(self._read(client, inbox), name=f"crash-read-{self.account.index}")
        await client.subscribe(f"user:{await api.user_id()}")
        await client.subscribe(FRIENDS)
        for room in self._rooms:
            await client.subscribe(f"room:{room}")

    async def _read(self, client: Client, inbox: Inbox) -> None:
        async for frame in client.events():
            now = time.monotonic()
            if isinstance(frame, F.ChatMessage):
                inbox(ChatReceived(frame.room, frame.body, now))
            elif isinstance(frame, F.PresenceJoin | F.PresenceLeave) and frame.ch == FRIENDS:
                inbox(PresenceSeen(frame.user, isinstance(frame, F.PresenceJoin), now))
            elif isinstance(frame, F.MediaEvent):
                self._media.setdefault((frame.upload, frame.phase), now)
                self._media_changed.set()

    async def go_offline(self) -> None:
        client, self.client = self.client, None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if client is not None:
            await client.close()

    async def timeline_page(self, cursor: str | None) -> str | None:
        page = await self._api().home(cursor=cursor, limit=20)
        return page.get("next_cursor")

    async def profile(self, user_id: str) -> None:
        api = self._api()
        await api.user(user_id)
        await api.user_posts(user_id, limit=10)

    async def post(self, text: str) -> str:
        return str((await self._api().publish(text))["id"])

    async def react(self, post_id: str) -> None:
        await self._client().react("post", post_id, "heart")

    async def chat_send(self, room: str, text: str) -> None:
        await self._client().chat_send(room, text)

    async def _media_phase(self, upload_id: str, phases: tuple[str, ...], until: float) -> str | None:
        while True:
            for phase in phases:
                if (upload_id, phase) in self._media:
                    return phase
            left = until - time.monotonic()
            if left <= 0:
                return None
            self._media_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._media_changed.wait(), left)

    async def upload_video(self, path: Path, uplink_bps: float, caption: str,
                           progress: Progress | None = None, wait_s: float = 120.0) -> UploadOutcome:
        api = self._api()
        size = (await asyncio.to_thread(path.stat)).st_size
        outcome = UploadOutcome(bytes=size, started=time.monotonic())
        last_sent: list[float] = []

        def sent(offset: int, total: int) -> None:
            if offset >= total and not last_sent:
                last_sent.append(time.monotonic())
            if progress is not None:
                progress(offset)

        with tempfile.TemporaryDirectory(prefix="amaro-crash-resume-") as tmp:
            uploads = Uploads(self._target.upload_url, api.access_token, store=ResumeStore(Path(tmp) / "resume.json"),
                              max_rate_bps=uplink_bps / 8, refresh=lambda stale: api.refresh(stale=stale))
            try:
                done = await uploads.upload(path, progress=sent, user=self.account.username)
            except Exception as exc:  # the outcome reports it: the run goes on and the verdict fails
                outcome.error = f"upload: {type(exc).__name__}: {exc}"[:400]
                return outcome
        outcome.last_byte = last_sent[0] if last_sent else time.monotonic()
        try:
            await api.create_post(upload_id=done.upload_id, body=caption)
        except Exception as exc:
            outcome.error = f"compose: {type(exc).__name__}: {exc}"[:400]
            return outcome
        until = outcome.last_byte + wait_s
        first = await self._media_phase(done.upload_id, ("good_enough", "upgraded", "failed"), until)
        final = await self._media_phase(done.upload_id, ("upgraded", "failed"), until) if first else None
        outcome.good_enough = self._media.get((done.upload_id, "good_enough"))
        outcome.upgraded = self._media.get((done.upload_id, "upgraded"))
        if outcome.good_enough is None and outcome.upgraded is not None:
            outcome.good_enough = outcome.upgraded  # upgraded implies good enough (its frame may be the first seen)
        if final == "failed" or first == "failed":
            outcome.error = "media: the pipeline reported failed"
        elif first is None:
            outcome.error = f"media: no media event {wait_s:g} s after the last byte"
        outcome.ok = outcome.error is None  # complete: stored, composed, processing; upgraded may come later
        return outcome

    async def close(self) -> None:
        await self.go_offline()


class PlatformTarget:
    name = "platform"

    def __init__(self, url: str | None = None, *, hubs: int = 1, ingest: int = 1, workers: int = 1) -> None:
        self.url = url
        self.cluster: Cluster | None = None
        self._shape = (hubs, ingest, workers)
        self.http_url = self.ws_url = self.upload_url = ""
        self._rooms_of: dict[int, list[str]] = {}

    async def __aenter__(self) -> PlatformTarget:
        if self.url is None:
            hubs, ingest, workers = self._shape
            # Its own job streams: a worker of another platform on the same Redis never takes our jobs.
            # The run is over when the nodes stop: no graceful drain, no waiting for a transcode.
            # Every simulated person comes from 127.0.0.1, where real testers each have an address:
            # the per-address attempt budget is lifted (the per-username one stays as shipped).
            env = {"AMARO_NARA_KEY_NAMESPACE": f"crash-{secrets.token_hex(4)}", "AMARO_DRAIN_TIMEOUT": "1",
                   "AMARO_NARA_SHUTDOWN_GRACE_S": "0", "AMARO_AUTH_ATTEMPTS_PER_ADDRESS": "1000000"}
            self.cluster = Cluster(hubs_wanted=hubs, ingest_wanted=ingest, workers_wanted=workers, extra_env=env)
            await self.cluster.__aenter__()
            hub = self.cluster.hubs[0]
            self.http_url, self.ws_url = hub.http_url, hub.ws_url
            self.upload_url = self.cluster.ingests[0].http_url if self.cluster.ingests else hub.http_url
        else:
            self.http_url = self.upload_url = self.url.rstrip("/")
            config = await asyncio.to_thread(_get_json, f"{self.http_url}/app/config.json")
            self.ws_url = str(config["ws"][0])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.cluster is not None:
            await self.cluster.__aexit__(None, None, None)

    async def setup(self, users: int, seed: int, *, follows: int = model.FOLLOWS,
                    room_size: int = model.ROOM_SIZE) -> World:
        tag = secrets.token_hex(3)
        accounts = [Account(i, f"crash{seed}_{tag}_{i}", f"crash replay passphrase {i}") for i in range(users)]
        gate = asyncio.Semaphore(SETUP_CONCURRENCY)
        apis: list[Api] = []

        async def signup(account: Account) -> Api:
            async with gate:
                return await Api.signup(self.http_url, account.username, account.password, f"Tester {account.index}")

        apis = list(await asyncio.gather(*(signup(a) for a in accounts)))
        ids = [await api.user_id() for api in apis]
        accounts = [Account(a.index, a.username, a.password, uid) for a, uid in zip(accounts, ids, strict=True)]
        graph = model.follow_graph(users, follows, seed)

        async def follow(i: int, j: int) -> None:
            async with gate:
                await apis[i].follow(ids[j])

        await asyncio.gather(*(follow(i, j) for i, followed in graph.items() for j in followed))
        rooms: dict[str, list[int]] = {}
        for number, members in enumerate(model.room_groups(users, room_size)):
            if len(members) < 2:
                continue
            room = await apis[members[0]].create_group(f"crash room {number}", [ids[m] for m in members[1:]])
            rooms[str(room["id"])] = members
        self._rooms_of = {i: [r for r, members in rooms.items() if i in members] for i in range(users)}

        async def seed_posts(i: int) -> list[str]:
            async with gate:
                return [str((await apis[i].publish(f"Sastipe from tester {i}, #{k}"))["id"]) for k in range(2)]

        posts = [p for chunk in await asyncio.gather(*(seed_posts(i) for i in range(users))) for p in chunk]
        return World(accounts=accounts, friends=graph, rooms=rooms, posts=posts)

    def person(self, account: Account) -> Person:
        return PlatformPerson(account, self, self._rooms_of.get(account.index, []))

    def pids(self) -> dict[str, list[int]]:
        if self.cluster is None:
            return {}
        roles: dict[str, list[int]] = {
            "hub": [h.process.pid for h in self.cluster.hubs],
            "ingest": [h.process.pid for h in self.cluster.ingests],
            "worker": [w.process.pid for w in self.cluster.workers],
            "redis": processes_named(("redis-server",)),
        }
        db = self.cluster.database_url.rsplit("/", 1)[-1]
        roles["postgres"] = processes_named(("postgres",), needle=f" {db} ")
        return roles


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - the operator's own platform URL
        return json.loads(answer.read())


def make_target(url: str | None, config: model.Config | None = None) -> Target:
    if config is None:
        return PlatformTarget(url)
    return PlatformTarget(url, hubs=config.hubs, ingest=config.ingest, workers=config.workers)
