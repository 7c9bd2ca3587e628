"""Inside the upload request: the whole body to local disk, then one blocking ffmpeg run.

This is the beta's mistake kept on purpose: the worker that received the bytes is the one that
transcodes them, so the request holds a pool slot (and the CPU) from the first byte to the last
frame encoded.
"""

from __future__ import annotations

import subprocess
import threading
import time
from io import BufferedIOBase
from pathlib import Path

from nara.tools import locate

CHUNK = 256 * 1024
# One rendition: H.264 whose short side is at most 720 px (the picture is never upscaled), AAC.
SCALE = ("scale=w='if(gt(iw,ih),-2,min(720,iw))':h='if(gt(iw,ih),min(720,ih),-2)'")


_lock = threading.Lock()
_running: set[subprocess.Popen[bytes]] = set()
_stopping = threading.Event()


class TranscodeFailed(Exception):
    """ffmpeg exited non-zero (or took too long); the message is the tail of its stderr."""


def receive(stream: BufferedIOBase, length: int, path: Path) -> int:
    """Copy exactly ``length`` bytes of the request body to ``path``; returns how many arrived."""
    got = 0
    with path.open("wb") as out:
        while got < length:
            chunk = stream.read(min(CHUNK, length - got))
            if not chunk:
                break
            out.write(chunk)
            got += len(chunk)
    return got


def transcode(source: Path, output: Path, timeout_s: float = 900.0) -> float:
    """Transcode ``source`` to ``output`` (MP4, faststart) and wait for it; returns the seconds it took."""
    ffmpeg = locate().ffmpeg
    argv = [str(ffmpeg), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(source),
            "-map", "0:v:0", "-map", "0:a:0?", "-vf", SCALE, "-c:v", "libx264", "-preset", "veryfast",
            "-crf", "23", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
            "-movflags", "+faststart", str(output)]
    started = time.monotonic()
    with _lock:
        if _stopping.is_set():
            raise TranscodeFailed("the server is stopping")
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _running.add(process)
    try:
        _, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        process.kill()
        process.communicate()
        output.unlink(missing_ok=True)
        raise TranscodeFailed(f"ffmpeg took over {timeout_s:.0f} s") from e
    finally:
        with _lock:
            _running.discard(process)
    if process.returncode != 0 or not output.is_file():
        output.unlink(missing_ok=True)
        raise TranscodeFailed(stderr.decode(errors="replace")[-500:].strip() or f"exit {process.returncode}")
    return time.monotonic() - started


def stop_transcodes() -> None:
    """Terminate every running ffmpeg and refuse new ones (the server is stopping)."""
    with _lock:
        _stopping.set()
        for process in _running:
            process.terminate()
