"""Fixtures of the SDK tests: a real clip made by ffmpeg, and a NARA-1r worker process for the
node the tests run (media events come from it)."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nara.tools import locate
from tests.conftest import RunningNode, free_port, node_env

REPO = Path(__file__).resolve().parents[2]


def make_clip(path: Path, *, seconds: float = 3.0, bitrate: str = "8M") -> Path:
    """A real H.264/AAC MP4 whose size is about ``seconds`` times ``bitrate`` (constant bit rate)."""
    ffmpeg = str(locate().ffmpeg)
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30",
                    "-b:v", bitrate, "-minrate", bitrate, "-maxrate", bitrate, "-bufsize", "2M",
                    "-x264-params", "nal-hrd=cbr", "-c:a", "aac", "-b:a", "64k", str(path)],
                   check=True, timeout=60)
    return path


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 3 MB of video: big enough to be interrupted mid-upload."""
    return make_clip(tmp_path_factory.mktemp("clips") / "dance.mp4")


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture(scope="session")
def nara_worker(running_node: RunningNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker on the node's services, data folder and secret (``python -m amaro worker``)."""
    folder = tmp_path_factory.mktemp("sdk-worker")
    env = node_env(running_node.settings, AMARO_NODE_ID=f"sdk-worker-{secrets.token_hex(3)}",
                   AMARO_WS_PORT=str(free_port()), AMARO_NARA_WORKDIR=str(folder / "work"),
                   AMARO_NARA_CONCURRENCY="2")
    log = folder / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "amaro", "worker"], env=env, cwd=REPO, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Worker(process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
