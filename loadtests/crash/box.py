"""The box while the people run: CPU (% of one core) and RSS per role, disk and network rates.

Sampled every `interval_s` in a thread (psutil reads /proc; the event loop never waits on it).
A role's processes are asked anew each tick (`roles()`), children included (a worker's ffmpeg
counts as worker; the generator, whose children are the cluster's nodes, counts alone). CPU is
the change of user+system time over the tick; a process first seen in a tick counts all of its
CPU time (it started during the tick), except at the first tick, which
only sets the baseline. Network is bytes received on every interface (loopback included: the
uploads and the API travel there), disk is the whole machine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import psutil

Roles = Callable[[], dict[str, list[int]]]


def role_processes(pids: list[int], children: bool = True) -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            found[pid] = proc
            for child in proc.children(recursive=True) if children else ():
                found[child.pid] = child
        except psutil.Error:
            continue
    return list(found.values())


def processes_named(names: tuple[str, ...], needle: str = "") -> list[int]:
    """Pids whose name is one of `names` and, when `needle` is given, whose command line holds it."""
    pids: list[int] = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if (proc.info["name"] or "") in names and (not needle or needle in " ".join(proc.info["cmdline"] or ())):
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return pids


class BoxSampler:
    def __init__(self, roles: Roles, interval_s: float = 1.0, childless: tuple[str, ...] = ("generator",)) -> None:
        self.roles = roles
        self.childless = childless
        self.interval_s = interval_s
        self.series: list[dict[str, Any]] = []
        self._cpu: dict[int, float] = {}
        self._last: tuple[float, Any, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._origin = 0.0

    def _tick(self, now: float) -> dict[str, Any] | None:
        disk, net = psutil.disk_io_counters(), psutil.net_io_counters()
        cpu: dict[str, float] = {}
        rss: dict[str, float] = {}
        seen: dict[int, float] = {}
        first = self._last is None
        for role, pids in self.roles().items():
            cpu_s, rss_b = 0.0, 0
            for proc in role_processes(pids, children=role not in self.childless):
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        used = times.user + times.system
                        rss_b += proc.memory_info().rss
                except psutil.Error:
                    continue
                seen[proc.pid] = used
                cpu_s += used - self._cpu.get(proc.pid, 0.0)
            cpu[role], rss[role] = cpu_s, rss_b / 2**20
        self._cpu = seen
        last, self._last = self._last, (now, disk, net)
        if first or last is None:
            return None
        wall = max(1e-6, now - last[0])
        mb = 2**20 * wall
        return {
            "t": round(now - self._origin, 3),
            "cpu": {role: round(100 * used / wall, 1) for role, used in cpu.items()},
            "rss_mb": {role: round(v, 1) for role, v in rss.items()},
            "disk_write_mb_s": round((disk.write_bytes - last[1].write_bytes) / mb, 3) if disk and last[1] else None,
            "disk_read_mb_s": round((disk.read_bytes - last[1].read_bytes) / mb, 3) if disk and last[1] else None,
            "net_mb_s": round((net.bytes_recv - last[2].bytes_recv) / mb, 3),
        }

    async def _run(self) -> None:
        while True:
            point = await asyncio.to_thread(self._tick, time.monotonic())
            if point is not None:
                self.series.append(point)
            await asyncio.sleep(self.interval_s)

    def start(self, origin: float) -> None:
        self._origin = origin
        self._task = asyncio.create_task(self._run(), name="crash-box-sampler")

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return {"interval_s": self.interval_s, "series": self.series}
