"""The README's quick start ends with a two-user chat; it must work as written. The script is
taken from the README itself and run, unchanged but for the node's address, as its own process."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.conftest import RunningNode

README = Path(__file__).resolve().parents[2] / "README.md"


def chat_script() -> str:
    section = README.read_text().split("### Two people chatting", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "the README's chat section has no python block"
    return found.group(1)


async def test_the_readme_chat_runs_as_written(running_node: RunningNode) -> None:
    script = chat_script()
    assert '"http://127.0.0.1:8000", "ws://127.0.0.1:8001/ws"' in script  # what `make dev` serves
    script = script.replace("http://127.0.0.1:8000", running_node.http_url).replace(
        "ws://127.0.0.1:8001/ws", running_node.ws_url)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines() == ["Luca reads: Sastipe, Luca!", "Ana reads: Sastipe, Ana! Sar san?"]
