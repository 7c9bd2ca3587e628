"""``amaro-client`` (and ``amaro client``) as a person runs it: subprocesses against a real node
and a real NARA-1r worker. Sign up and log in (the session kept 0600), whoami, rooms with unread
counts, tail a room while messages are sent, upload a clip and watch it become good enough, read
its media state, log out. Exit codes: 0 done, 1 refused, 2 usage."""

from __future__ import annotations

import asyncio
import json
import secrets
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from amaro_client import Api, AuthError, Grant, refresh
from tests.clients.conftest import Worker
from tests.conftest import RunningNode

PASSWORD = "a long passphrase for tests"
CLI = Path(sys.executable).parent / "amaro-client"


@dataclass
class Ran:
    code: int
    out: str
    err: str


class Person:
    def __init__(self, node: RunningNode, home: Path) -> None:
        self.home = home
        self.env = {"AMARO_CLIENT_HOME": str(home), "AMARO_URL": node.http_url, "AMARO_WS_URL": node.ws_url,
                    "PATH": str(CLI.parent)}

    async def start(self, *args: str, program: tuple[str, ...] = (str(CLI),)) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(*program, *args, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    async def run(self, *args: str, timeout_s: float = 60, program: tuple[str, ...] = (str(CLI),)) -> Ran:
        process = await self.start(*args, program=program)
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
        assert process.returncode is not None
        return Ran(process.returncode, out.decode(), err.decode())

    def grant(self) -> Grant:
        return Grant.from_json(json.loads((self.home / "session.json").read_text())["grant"])


async def test_the_cli_from_signup_to_upload_to_logout(running_node: RunningNode, nara_worker: Worker,
                                                        clip: Path, tmp_path: Path) -> None:
    ana, bo = Person(running_node, tmp_path / "ana"), Person(running_node, tmp_path / "bo")
    ana_name, bo_name = f"cli{secrets.token_hex(4)}", f"cli{secrets.token_hex(4)}"

    # usage mistakes: 2, before any account exists
    assert (await ana.run("whoami")).code == 2
    assert (await ana.run("fly")).code == 2
    assert (await ana.run("whoami", "--url", "ftp://x")).code == 2

    signed = await ana.run("signup", ana_name, "--password", PASSWORD, "--display-name", "Ana")
    assert signed.code == 0, signed.err
    assert stat.S_IMODE((ana.home / "session.json").stat().st_mode) == 0o600
    assert (await bo.run("signup", bo_name, "--password", PASSWORD)).code == 0
    refused = await bo.run("login", bo_name, "--password", "not the passphrase")
    assert refused.code == 1 and "invalid_credentials" in refused.err
    assert (await bo.run("login", bo_name, "--password", PASSWORD)).code == 0
    me = await ana.run("whoami", "--json")
    assert me.code == 0 and json.loads(me.out)["username"] == ana_name
    # `amaro client` is the same program
    delegated = await ana.run("client", "whoami", program=(sys.executable, "-m", "amaro"))
    assert delegated.code == 0 and ana_name in delegated.out, delegated.err

    room = (await Api(running_node.http_url, ana.grant()).open_direct_room(bo.grant().user_id))["id"]
    tail = await bo.start("tail", f"room:{room}", "--count", "2", "--timeout", "30")
    assert tail.stdout is not None
    assert (await asyncio.wait_for(tail.stdout.readline(), 30)).decode().startswith("# tailing room:")
    for text in ("Sastipe, Bo!", "Sar san?"):
        sent = await ana.run("send", room, text)
        assert sent.code == 0 and sent.out.startswith("sent: offset"), sent.err
    lines = [line for line in (await asyncio.wait_for(tail.stdout.read(), 30)).decode().splitlines()
             if not line.startswith("# ")]
    assert await tail.wait() == 0
    ana_id = ana.grant().user_id
    assert len(lines) == 2 and all("] " in line for line in lines), lines
    assert [line.split("] ", 1)[1] for line in lines] == [f"{ana_id}: Sastipe, Bo!", f"{ana_id}: Sar san?"]
    rooms = await bo.run("rooms")
    assert rooms.code == 0 and f"{room}  direct  Ana  2 unread" in rooms.out, rooms.out
    stranger = await ana.run("send", secrets.token_hex(8), "to nowhere")
    assert stranger.code == 1 and "refused" in stranger.err

    uploaded = await ana.run("upload", str(clip), "--body", "Khelas!", "--json", "--timeout", "120", timeout_s=150)
    assert uploaded.code == 0, uploaded.err + nara_worker.tail()
    events = [json.loads(line) for line in uploaded.out.splitlines()]
    upload_id, post_id = events[0]["upload_id"], events[0]["post_id"]
    assert events[-1]["phase"] == "good_enough" and events[-1]["upload_id"] == upload_id
    assert "upload 100%" in uploaded.err.splitlines()  # not a terminal: percentages, one a line
    media = await ana.run("media", upload_id, "--json")
    assert media.code == 0 and json.loads(media.out)["state"] in ("good_enough", "upgraded")
    watched = await ana.run("media", upload_id, "--wait-upgraded", "--timeout", "120", timeout_s=150)
    assert watched.code == 0 and f"{upload_id} upgraded" in watched.out, watched.err + nara_worker.tail()
    post = await Api(running_node.http_url, bo.grant()).post(post_id)
    assert (post["body"], post["state"], post["kind"]) == ("Khelas!", "published", "video")

    spent = ana.grant().refresh_token
    assert (await ana.run("logout")).code == 0
    assert not (ana.home / "session.json").exists()
    assert (await ana.run("whoami")).code == 2
    try:
        await refresh(running_node.http_url, spent)
        revoked = False
    except AuthError:
        revoked = True
    assert revoked
