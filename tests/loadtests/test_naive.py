"""The naive baseline (loadtests/naive) answers its API, polls, transcodes inside the upload request,
and really has a fixed pool of workers; its crash-replay target drives it."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from loadtests.crash.naive_target import NaivePerson, NaiveTarget
from loadtests.crash.target import ChatReceived, Delivery, Person, PresenceSeen, Target, World
from nara.tools import locate
from tests.conftest import ServiceUrls, free_port, with_database
from tests.nara.conftest import make_clip

WORKERS = 2


@pytest.fixture(scope="module")
async def target(service_urls: ServiceUrls) -> AsyncIterator[NaiveTarget]:
    # The session's server, through its maintenance database: the target makes a database of its own.
    async with NaiveTarget(database_url=with_database(service_urls.database_url, "postgres"), workers=WORKERS) as t:
        yield t


@pytest.fixture(scope="module")
async def world(target: NaiveTarget) -> World:
    return await target.setup(5, seed=7)


async def logged_in(target: NaiveTarget, world: World, index: int) -> NaivePerson:
    person = target.person(world.accounts[index])
    await person.log_in()
    return person


async def wait_for(inbox: list[Delivery], wanted: Any, timeout_s: float = 8.0) -> Delivery:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for delivery in inbox:
            if wanted(delivery):
                return delivery
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing wanted arrived in {timeout_s} s; got {inbox}")


def test_the_target_and_person_follow_the_runner_protocols(target: NaiveTarget, world: World) -> None:
    assert isinstance(target, Target)
    assert isinstance(target.person(world.accounts[0]), Person)
    assert target.name == "naive"
    assert target.process is not None and target.pids()["naive"] == [target.process.pid]
    # The backends of its workers' connections, and only those: found by its database's name.
    backends = [psutil.Process(pid).cmdline() for pid in target.pids()["postgres"]]
    name = urlsplit(target.database_url).path.lstrip("/")
    assert backends and all(f" {name} " in " ".join(c) for c in backends)
    assert "amaro_naive_" in target.database_url


async def test_every_light_endpoint_answers(target: NaiveTarget, world: World) -> None:
    assert [a.index for a in world.accounts] == list(range(5)) and all(a.user_id for a in world.accounts)
    assert all(world.friends[i] for i in range(5)) and world.rooms and len(world.posts) == 15
    alice = await logged_in(target, world, 0)
    try:
        followed = [world.accounts[j] for j in world.friends[0]]
        reacted_to = world.posts[-1]  # by the last person, whom alice follows (ring neighbours)
        assert world.accounts[4] in followed
        post_id = await alice.post("dancing tonight")
        await alice.react(reacted_to)
        room = next(r for r, members in world.rooms.items() if 0 in members)
        await alice.chat_send(room, "hello room")
        await alice.profile(followed[0].user_id)

        # The first page starts with alice's newest post; pages chain by cursor to the end, no repeats.
        first = await alice._get("/timeline")
        assert first["posts"][0]["id"] == post_id and first["posts"][0]["body"] == "dancing tonight"
        posts = {p["id"]: p for p in first["posts"]}
        cursor = await alice.timeline_page(None)
        while cursor is not None:
            page = (await alice._get("/timeline", cursor=cursor))["posts"]
            assert not posts.keys() & {p["id"] for p in page}
            posts |= {p["id"]: p for p in page}
            cursor = await alice.timeline_page(cursor)
        assert len(posts) == 1 + 3 * (1 + len(followed))
        assert posts[reacted_to]["reactions"] == 1

        profile = await alice._get(f"/users/{followed[0].user_id}")
        assert profile["username"] == followed[0].username and len(profile["posts"]) == 3
        # Without a token nothing answers but sign-up and log-in; a wrong password is refused.
        assert (await alice.http.get("/timeline")).status_code == 401
        wrong = {"username": alice.account.username, "password": "wrong"}
        assert (await alice.http.post("/login", json=wrong)).status_code == 401
        outsider = next(r for r, members in world.rooms.items() if 0 not in members) if len(world.rooms) > 1 else None
        if outsider is not None:
            assert (await alice.http.post(f"/rooms/{outsider}/messages", json={"text": "x"},
                                          headers=alice._auth())).status_code == 403
    finally:
        await alice.close()


async def test_chat_and_presence_arrive_by_polling(target: NaiveTarget, world: World) -> None:
    room, members = next(iter(world.rooms.items()))
    a, b = members[0], next(j for j in members[1:] if j in world.friends[members[0]])
    sender, reader = await logged_in(target, world, a), await logged_in(target, world, b)
    inbox: list[Delivery] = []
    try:
        await reader.go_online(inbox.append)
        await sender.go_online(lambda d: None)
        joined = await wait_for(inbox, lambda d: isinstance(d, PresenceSeen) and d.online
                                and d.user_id == sender.account.user_id)
        sent_at = time.monotonic()
        await sender.chat_send(room, "token-24 are you there")
        got = await wait_for(inbox, lambda d: isinstance(d, ChatReceived) and d.body == "token-24 are you there")
        assert isinstance(got, ChatReceived) and got.room == room
        # A poll every 1-2 s: the message is seen after the send, within a poll period or two.
        assert sent_at < got.at < sent_at + 6.0
        assert not any(isinstance(d, ChatReceived) and d.body == "hello room" for d in inbox)  # history is not news

        await sender.go_offline()
        left = await wait_for(inbox, lambda d: isinstance(d, PresenceSeen) and not d.online
                              and d.user_id == sender.account.user_id)
        assert left.at > joined.at
        assert reader.failed_polls == 0
    finally:
        await sender.close()
        await reader.close()


async def test_an_upload_is_transcoded_inside_its_request(target: NaiveTarget, world: World, tmp_path: Path) -> None:
    tools = locate()
    clip = make_clip(tools, tmp_path / "phone.mp4", seconds=2.0, size="640x360")
    person = await logged_in(target, world, 2)
    try:
        # Straight over HTTP first: the answer names an output that exists and is a real H.264 MP4.
        started = time.time()
        answer = httpx.post(f"{target.url}/uploads", content=clip.read_bytes(), headers=person._auth(),
                            timeout=60).json()
        answered = time.time()
        assert target.data_dir is not None
        output = target.data_dir / "media" / answer["output"]
        assert answer["bytes"] == clip.stat().st_size and answer["transcode_s"] > 0
        assert output.stat().st_size == answer["output_bytes"] > 0
        assert started <= output.stat().st_mtime <= answered  # written during the request, before its answer
        assert not any((target.data_dir / "uploads").iterdir())  # the raw body is gone once transcoded
        probe = json.loads(subprocess.run(
            [str(tools.ffprobe), "-v", "error", "-show_streams", "-of", "json", str(output)],
            check=True, capture_output=True).stdout)
        video = next(s for s in probe["streams"] if s["codec_type"] == "video")
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)

        # Bytes ffmpeg cannot read are refused in the same request, after the attempt.
        bad = httpx.post(f"{target.url}/uploads", content=b"not a video" * 1000, headers=person._auth(), timeout=60)
        assert bad.status_code == 422 and "cannot transcode" in bad.json()["error"]

        # Through the person: paced to 8 Mbit/s, good enough (= upgraded) when the answer came.
        sent: list[int] = []
        outcome = await person.upload_video(clip, 8e6, "my first dance", progress=sent.append)
        assert outcome.ok and outcome.error is None and outcome.bytes == clip.stat().st_size
        assert outcome.last_byte is not None and outcome.good_enough is not None
        assert outcome.last_byte - outcome.started >= outcome.bytes * 8 / 8e6 * 0.8  # the pacing held
        assert outcome.started < outcome.last_byte <= outcome.good_enough == outcome.upgraded
        assert sent[-1] == outcome.bytes
        assert (await person._get("/timeline"))["posts"][0]["body"] == "my first dance"
    finally:
        await person.close()


def _hold_an_upload(port: int, token: str) -> socket.socket:
    """A request that keeps a worker: an upload whose body stops after its first byte."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"POST /uploads HTTP/1.0\r\nAuthorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\nx".encode())
    return sock


async def test_the_pool_is_fixed_a_request_past_it_waits(target: NaiveTarget, world: World) -> None:
    person = await logged_in(target, world, 3)
    assert target.url is not None
    port = int(target.url.rsplit(":", 1)[1])
    held: list[socket.socket] = []
    try:
        async with httpx.AsyncClient(base_url=target.url, timeout=30) as http:
            for _ in range(WORKERS - 1):
                held.append(_hold_an_upload(port, person.token))
            await asyncio.sleep(0.3)
            quick = time.monotonic()
            assert (await http.get("/health")).status_code == 200  # one worker still free: it answers
            assert time.monotonic() - quick < 1.5

            held.append(_hold_an_upload(port, person.token))
            await asyncio.sleep(0.3)
            waiting = asyncio.create_task(http.get("/health"))
            await asyncio.sleep(2.0)
            assert not waiting.done()  # every worker is reading a body: the request queues

            held.pop().close()  # that upload ends short: its worker answers 400 and takes the next request
            released = time.monotonic()
            assert (await asyncio.wait_for(waiting, 5)).status_code == 200
            assert time.monotonic() - released < 1.5
    finally:
        for sock in held:
            sock.close()
        await person.close()


def test_the_server_starts_fast_and_stops_cleanly(service_urls: ServiceUrls, tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "loadtests.naive", "--port", str(port), "--data",
                                str(tmp_path), "--db", service_urls.database_url],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()["workers"] == 4:
                    break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() - started < 10
                time.sleep(0.02)
        ready_s = time.monotonic() - started
        times = psutil.Process(process.pid).cpu_times()
        ready_cpu_s = times.user + times.system
        process.terminate()
        assert process.wait(10) == 0
        assert process.stdout is not None and b"naive stopped\n" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # "Well under a second": about half a second of wall time on an idle box. Beside other work on two
    # cores the wall time stretches, so the bound that holds anywhere is the CPU the start-up used.
    assert ready_cpu_s < 1.0 and ready_s < 10.0, (ready_cpu_s, ready_s)
