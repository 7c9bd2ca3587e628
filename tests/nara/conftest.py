"""Fixtures for NARA-1r tests: real ffmpeg/ffprobe, generated clips, real Redis."""

from __future__ import annotations

import struct
import subprocess
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from nara.guard import Limits
from nara.keys import NaraKeys
from nara.tools import Tools, locate
from tests.conftest import ServiceUrls


@pytest.fixture(scope="session")
def tools() -> Tools:
    return locate()


@pytest.fixture(scope="session")
def limits() -> Limits:
    return Limits(probe_timeout_s=10.0)


def make_clip(
    tools: Tools,
    path: Path,
    *,
    seconds: float = 3.0,
    size: str = "320x240",
    rate: float = 30,
    audio: bool = True,
    video: bool = True,
    extra: tuple[str, ...] = (),
) -> Path:
    """Generate a real clip with motion (testsrc2) and a tone (sine)."""
    argv = [str(tools.ffmpeg), "-hide_banner", "-loglevel", "error", "-y"]
    if video:
        argv += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        argv += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    argv += ["-t", str(seconds)]
    if video:
        argv += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30"]
    if audio:
        argv += ["-c:a", "aac", "-b:a", "64k"]
    argv += [*extra, str(path)]
    subprocess.run(argv, check=True, timeout=60)
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header claims ``width`` x ``height``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b""
    )


@pytest.fixture(scope="session")
def clips(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Clips shared by the suite, generated once (each in well under a second)."""
    d = tmp_path_factory.mktemp("clips")
    # Uploads are stored without their user-given extension: demuxers probe by content.
    out = {
        "av": make_clip(tools, d / "av.mp4"),
        "six": make_clip(tools, d / "six.mp4", seconds=6.0),
        "audio_only": make_clip(tools, d / "audio.m4a", video=False),
        "fps1000": make_clip(tools, d / "fps1000.mp4", seconds=0.2, size="64x48", rate=1000, audio=False),
    }
    rotated = d / "rotated.mp4"
    subprocess.run(
        [str(tools.ffmpeg), "-hide_banner", "-loglevel", "error", "-y", "-display_rotation", "90",
         "-i", str(out["av"]), "-c", "copy", str(rotated)],
        check=True, timeout=30,
    )
    out["rotated"] = rotated
    for name, src in list(out.items()):
        bare = d / f"{name}_source"
        bare.write_bytes(src.read_bytes())
        out[name] = bare
    return out


@pytest.fixture
def redis_url(service_urls: ServiceUrls) -> str:
    """The suite's Redis (tests/conftest.py: AMARO_TEST_REDIS_URL, else an embedded server)."""
    return service_urls.redis_url


@pytest.fixture
async def redis_ns(redis_url: str) -> AsyncIterator[tuple[Redis, NaraKeys]]:
    """A real Redis client and a key namespace unique to this test; only its keys are removed."""
    client = Redis.from_url(redis_url)
    try:
        await client.ping()
    except OSError as exc:  # pragma: no cover - environment problem, not a test result
        pytest.skip(f"no Redis at {redis_url}: {exc}")
    nk = NaraKeys(namespace=f"test-{uuid.uuid4().hex[:10]}:nara")
    try:
        yield client, nk
    finally:
        async for key in client.scan_iter(match=f"{nk.namespace}:*", count=500):
            await client.delete(key)
        await client.aclose()


def jpeg_with_orientation(tools: Tools, path: Path, orientation: int, size: str = "400x300") -> Path:
    """A real JPEG (ffmpeg testsrc2) with an EXIF APP1 segment carrying ``orientation``."""
    plain = path.with_suffix(".plain.jpg")
    subprocess.run(
        [str(tools.ffmpeg), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={size}", "-frames:v", "1", str(plain)],
        check=True, timeout=30,
    )
    data = plain.read_bytes()
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])
    return path
