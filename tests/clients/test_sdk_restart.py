"""Acceptance: the Python SDK's reconnect and resume against a hub restarted mid-conversation.

Two ``Client``s chat in a direct room through a real hub process (``python -m amaro hub``). The
hub is SIGKILLed while both talk and started again on the same ports. Both clients reconnect by
themselves and resume from their offsets. One of them is held back while the other sends, so it
must catch up on messages sent while it was reconnecting. Every acknowledged message reaches each
client exactly once, in order; nothing is lost."""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from amaro.settings import Settings
from amaro_client import Api, Client, ClientError, signup
from amaro_client.sessionfile import SessionFile
from protocol import frames as F
from tests.conftest import free_port, node_env, wait_answering, with_node

PASSWORD = "a long passphrase for tests"


class Hub:
    """A hub node process that can be killed and started again on the same ports."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.port, self.ws_port = free_port(), free_port()
        self.folder = folder
        node = with_node(settings, node_id=f"sdk-restart-{secrets.token_hex(3)}", port=self.port,
                         ws_port=self.ws_port, data_dir=folder, log_format="console", log_level="warning")
        self.env = node_env(node, AMARO_DRAIN_TIMEOUT="2")
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws"

    def log(self) -> str:
        return "".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.folder.glob("hub-*.log")))

    async def start(self) -> None:
        self.starts += 1
        with (self.folder / f"hub-{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "amaro", "hub"], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        await wait_answering(self.process, f"{self.http_url}/healthz", self.log)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest_asyncio.fixture(loop_scope="session")
async def hub(settings: Settings, tmp_path: Path) -> AsyncIterator[Hub]:
    node = Hub(settings, tmp_path)
    await node.start()
    try:
        yield node
    finally:
        node.stop()


class Talker:
    """One person's SDK client and everything of the room it was delivered, in arrival order."""

    def __init__(self, client: Client, room: str) -> None:
        self.client, self.room = client, room
        self.received: list[F.ChatMessage] = []
        self.acked: list[F.ChatAck] = []
        self.said: dict[str, str] = {}  # body by mid
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.client.events():
            if isinstance(frame, F.ChatMessage) and frame.room == self.room:
                self.received.append(frame)

    async def say(self, body: str, timeout_s: float = 60.0) -> F.ChatAck:
        """Send until acknowledged, always with the same ``cmid``: a retry never duplicates."""
        cmid, deadline = uuid.uuid4().hex, time.monotonic() + timeout_s
        while True:
            try:
                ack = await self.client.chat_send(self.room, body, cmid=cmid)
            except (ConnectionError, TimeoutError, ClientError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            self.acked.append(ack)
            self.said[ack.mid] = body
            return ack


async def test_both_clients_resume_after_the_hub_is_killed_and_restarted(hub: Hub, tmp_path: Path) -> None:
    ana = await signup(hub.http_url, f"sdk{secrets.token_hex(4)}", PASSWORD, "Ana")
    bo = await signup(hub.http_url, f"sdk{secrets.token_hex(4)}", PASSWORD, "Bo")
    room = (await Api(hub.http_url, ana).open_direct_room(bo.user_id))["id"]

    bo_may_reconnect = asyncio.Event()
    bo_logins = 0

    async def bo_token() -> str:
        nonlocal bo_logins
        bo_logins += 1
        if bo_logins > 1:
            await bo_may_reconnect.wait()  # held back: Ana talks while Bo is reconnecting
        return bo.access_token

    home = tmp_path / "cli"
    SessionFile(home).save(bo, {"url": hub.http_url, "ws": hub.ws_url})
    tail = await asyncio.create_subprocess_exec(
        Path(sys.executable).parent / "amaro-client", "tail", f"room:{room}", "--count", "17",
        "--timeout", "90", env={"AMARO_CLIENT_HOME": str(home), "AMARO_URL": hub.http_url, "AMARO_WS_URL": hub.ws_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert tail.stdout is not None
    assert (await asyncio.wait_for(tail.stdout.readline(), 30)).startswith(b"# tailing")
    a = Client(hub.ws_url, token=ana.access_token, max_backoff_s=1.0)
    b = Client(hub.ws_url, token_source=bo_token, max_backoff_s=1.0)
    await a.connect()
    await b.connect()
    talkers: list[Talker] = []
    try:
        for client in (a, b):
            await client.subscribe(f"room:{room}")
        ta, tb = Talker(a, room), Talker(b, room)
        talkers = [ta, tb]
        for i in range(4):
            await ta.say(f"before {i} from Ana")
            await tb.say(f"before {i} from Bo")

        # Mid-conversation: both keep talking while the hub dies and comes back.
        hub.kill()
        during = [asyncio.create_task(ta.say("during from Ana")), asyncio.create_task(tb.say("during from Bo"))]
        await asyncio.sleep(0.5)
        await hub.start()
        await asyncio.wait_for(during[0], 60)
        assert a.reconnects >= 1
        # Bo is still held back: what Ana says now, Bo must get on resume.
        assert not during[1].done() and b.reconnects == 0
        for i in range(3):
            await ta.say(f"while Bo reconnects {i}")
        bo_may_reconnect.set()
        await asyncio.wait_for(during[1], 60)
        for i in range(2):
            await tb.say(f"after {i} from Bo")
            await ta.say(f"after {i} from Ana")

        acked = sorted([*ta.acked, *tb.acked], key=lambda ack: ack.offset)
        assert len({ack.mid for ack in acked}) == len(acked) == 8 + 2 + 3 + 4
        deadline = time.monotonic() + 30
        while any(len(t.received) < len(acked) for t in talkers) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for talker in talkers:
            got = [(m.mid, m.offset) for m in talker.received]
            assert got == [(ack.mid, ack.offset) for ack in acked], hub.log()  # exactly once, in order
        assert b.reconnects >= 1
        out, err = await asyncio.wait_for(tail.communicate(), 60)
        assert tail.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert sum(line.startswith("# connected to") for line in lines) == 2, lines  # and after the restart
        said = {**ta.said, **tb.said}
        senders = {ack.mid: user for t, user in ((ta, ana.user_id), (tb, bo.user_id)) for ack in t.acked}
        assert [line for line in lines if not line.startswith("# ")] == [
            f"[{ack.offset}] {senders[ack.mid]}: {said[ack.mid]}" for ack in acked]
    finally:
        if tail.returncode is None:
            tail.kill()
        for talker in talkers:
            talker.reader.cancel()
        await asyncio.gather(a.close(), b.close(), return_exceptions=True)
