"""The SDK's README examples run as written, each as its own process, against a real node (and a
NARA-1r worker for the upload's media events); only the addresses and the video's path change."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import Worker
from tests.conftest import RunningNode

README = Path(__file__).resolve().parents[2] / "clients/python/README.md"


def example(heading: str) -> str:
    section = README.read_text().split(f"### {heading}\n", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, f"the README's {heading!r} section has no python block"
    return found.group(1)


async def run(script: str, node: RunningNode, cwd: Path) -> list[str]:
    assert "http://127.0.0.1:8000" in script  # what `amaro dev` serves
    script = script.replace("http://127.0.0.1:8000", node.http_url).replace("ws://127.0.0.1:8001/ws", node.ws_url)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=cwd,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 150)
    assert process.returncode == 0, err.decode()
    return out.decode().splitlines()


@pytest.mark.parametrize(("heading", "printed"), [
    ("Accounts, people, posts", ["Luca follows Ana: following", "Ana posted Akana", "Ana posted Khelas?",
                                 "Ana posted Sastipe!", "comments: ['Šukar!']", "refused: 422 cannot_follow_self"]),
    ("Chat on the socket", ["Luca reads: Sastipe, Luca! at offset True", "Luca is present: True",
                            "Luca's room is with Ana"]),
])
async def test_the_readme_examples_run_as_written(running_node: RunningNode, tmp_path: Path, heading: str,
                                                  printed: list[str]) -> None:
    assert await run(example(heading), running_node, tmp_path) == printed


async def test_the_readme_upload_example_runs_as_written(running_node: RunningNode, nara_worker: Worker,
                                                         clip: Path, tmp_path: Path) -> None:
    (tmp_path / "dance.mp4").symlink_to(clip)
    lines = await run(example("Uploads and media events"), running_node, tmp_path)
    assert lines == ["sent: 0% 50% 100%", "post: True", "playable: True", "playlist: True"], nara_worker.tail()
    assert (tmp_path / "uploads.json").read_text() == "{}"  # the finished upload was forgotten
