"""The browser client (clients/js) against real hub nodes: three ``python -m amaro hub`` processes on
the suite's Redis and PostgreSQL, and ``node --test clients/js/test/live/`` told their addresses
and process ids. The JavaScript tests sign two people up over HTTP, chat in a direct room, freeze
one node (SIGSTOP: its sockets go silent), kill it, drain another (SIGTERM), and check that
nothing acknowledged is lost or doubled while the client moves between nodes; then they upload a
file over tus. Node.js and the package's node_modules are required: a missing one fails here."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from amaro.services import Services
from amaro.settings import Settings
from tests.conftest import free_port, node_env, wait_answering, with_node

pytestmark = pytest.mark.slow

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "js"
NODE_IDS = ("js-a", "js-b", "js-c")


@dataclass
class HubProcess:
    node_id: str
    port: int
    ws_port: int
    process: subprocess.Popen[bytes]
    log: Path

    def describe(self) -> dict[str, object]:
        return {"id": self.node_id, "http": f"http://127.0.0.1:{self.port}", "ws": f"ws://127.0.0.1:{self.ws_port}/ws",
                "pid": self.process.pid}

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)  # a test may have left it frozen
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


async def start_hub(settings: Settings, node_id: str, tmp: Path) -> HubProcess:
    port, ws_port = free_port(), free_port()
    data = tmp / node_id
    data.mkdir()
    env = node_env(with_node(settings, node_id=node_id, port=port, ws_port=ws_port, data_dir=data),
                   AMARO_PING_INTERVAL="1", AMARO_DRAIN_TIMEOUT="3")
    log = tmp / f"{node_id}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "amaro", "hub"], env=env, stdout=out, stderr=out)
    hub = HubProcess(node_id, port, ws_port, process, log)
    try:
        await wait_answering(process, f"http://127.0.0.1:{port}/healthz", lambda: log.read_text(errors="replace"))
    except RuntimeError:
        hub.stop()
        raise
    return hub


@pytest_asyncio.fixture(loop_scope="session")
async def three_hubs(settings: Settings, services: Services,
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[HubProcess]]:
    tmp = tmp_path_factory.mktemp("js-hubs")
    hubs = list(await asyncio.gather(*(start_hub(settings, node_id, tmp) for node_id in NODE_IDS)))
    try:
        yield hubs
    finally:
        for hub in hubs:
            hub.stop()


def node_modules_ready() -> None:
    """Install the locked packages when node_modules is missing or older than the lock; fail (not
    skip) when Node.js or npm is missing or the install fails."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node.js (node and npm) is required for the JS client tests: install Node.js 20+")
    installed = PACKAGE / "node_modules" / ".package-lock.json"
    lock = PACKAGE / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(PACKAGE)], capture_output=True,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        pytest.fail(f"npm ci in clients/js failed (node_modules missing):\n{done.stdout}\n{done.stderr}")


async def test_the_js_client_against_real_hubs(three_hubs: list[HubProcess]) -> None:
    node_modules_ready()
    env = {**os.environ, "AMARO_JS_HUBS": json.dumps([hub.describe() for hub in three_hubs])}
    process = await asyncio.create_subprocess_exec(
        "node", "--test", "--test-reporter=tap", str(PACKAGE / "test" / "live"), cwd=PACKAGE, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 120)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail("node --test clients/js/test/live did not finish within 120 s")
    report = out.decode(errors="replace")
    logs = "\n".join(f"--- {hub.node_id} log ---\n{hub.log.read_text(errors='replace')[-3000:]}" for hub in three_hubs)
    assert process.returncode == 0, f"{report}\n{logs}"
    counts = {key: int(n) for key, n in re.findall(r"^# (tests|pass|fail) (\d+)$", report, re.MULTILINE)}
    assert counts.get("fail") == 0 and counts.get("pass", 0) >= 8 and counts["pass"] == counts["tests"], report
    print(report)  # shown with -s: what the client went through
