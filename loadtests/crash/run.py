"""``python -m loadtests crash``: replay the five-user crash (issue 24) and judge it.

Simulated people (`model.py`, `people.py`) use a target (the platform through its SDK, or the
naive baseline) before, during and after M of them upload phone-like raw videos, paced to a shared
uplink. Every light action is a sample; the figures per action and phase, the uploads, the box
(CPU per role, memory, disk, network) and a verdict go out as one JSON document (stdout and
``--json``), optionally as an HTML report (``--html``). A progress bar runs on stderr.

Exit code: 0 when the first run's verdict (the platform's, or the only target's) is PASS, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import importlib
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from loadtests.crash import model, video
from loadtests.crash.box import BoxSampler
from loadtests.crash.people import Crowd
from loadtests.crash.target import ACTIONS, Target, UploadOutcome
from loadtests.crash.verdict import comparison, figures, verdict
from loadtests.report import emit

UPLOAD_GRACE_S = 1.0   # phases end this long after the last upload settles: its last frames arrive
UPLOAD_OVERRUN_S = 15.0  # how long past the phase's cap an upload still waiting may take to report


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class ProgressBar:
    """One line on stderr: target, phase, elapsed/total, uploads done %, samples so far."""

    def __init__(self, label: str, total_s: float) -> None:
        self.label, self.total_s = label, total_s
        self.phase = "setup"
        self.uploaded = 0
        self.upload_bytes = 1
        self.origin = time.monotonic()
        self.samples = 0
        self._tty = sys.stderr.isatty()
        self._last_line = 0.0

    def draw(self, final: bool = False) -> None:
        now = time.monotonic()
        if not self._tty and not final and now - self._last_line < 5:
            return
        self._last_line = now
        elapsed = now - self.origin
        done = min(1.0, elapsed / self.total_s) if self.total_s else 1.0
        bar = "#" * int(24 * done) + "." * (24 - int(24 * done))
        pct = 100 * self.uploaded / self.upload_bytes
        line = (f"[crash {self.label}] [{bar}] {self.phase:<6} {elapsed:5.0f}/{self.total_s:.0f} s  "
                f"uploads {pct:5.1f}%  samples {self.samples}")
        sys.stderr.write(("\r" + line) if self._tty else (line + "\n"))
        if final and self._tty:
            sys.stderr.write("\n")
        sys.stderr.flush()

    async def run(self, crowd: Crowd) -> None:
        while True:
            self.samples = sum(len(v) for v in crowd.samples.values())
            self.draw()
            await asyncio.sleep(0.5)


async def upload_one(crowd: Crowd, index: int, clip: Path, config: model.Config, delay_s: float,
                     sent: list[int], end: float) -> UploadOutcome:
    """One uploader's video, waiting for its media events no later than `end` (the phase's cap)."""
    await asyncio.sleep(delay_s)
    person = crowd.states[index].person
    rate_bps = config.uplink_mbps * 1e6 / max(1, config.uploads)

    def progress(offset: int) -> None:
        sent[index] = offset

    # The wait for media events is what the phase leaves after the transfer, with room for pacing
    # and checksums running slower than the nominal rate.
    expected_s = (await asyncio.to_thread(clip.stat)).st_size * 8 / rate_bps * 1.1 + 2.0
    wait_s = max(1.0, min(config.media_wait_s, end - time.monotonic() - expected_s))
    return await person.upload_video(clip, rate_bps, f"Khelas! video {index}", progress, wait_s)


def upload_entry(crowd: Crowd, index: int, outcome: UploadOutcome | None, size: int, error: str) -> dict[str, Any]:
    def rel(t: float | None) -> float | None:
        return round(t - crowd.origin, 3) if t is not None else None

    user = crowd.world.accounts[index].username
    if outcome is None:
        return {"user": user, "bytes": size, "started": None, "last_byte": None, "good_enough": None,
                "upgraded": None, "throughput_mbps": None, "ok": False, "error": error}
    spent = (outcome.last_byte - outcome.started) if outcome.last_byte is not None else None
    return {"user": user, "bytes": outcome.bytes, "started": rel(outcome.started), "last_byte": rel(outcome.last_byte),
            "good_enough": rel(outcome.good_enough), "upgraded": rel(outcome.upgraded),
            "throughput_mbps": round(outcome.bytes * 8 / 1e6 / spent, 3) if spent else None,
            "ok": outcome.ok, "error": outcome.error}


async def run_target(target: Target, config: model.Config, clips: list[Path]) -> dict[str, Any]:
    """One RUN: set the world up, gather the people, then before, during and after the uploads."""
    bar = ProgressBar(target.name, config.duration_s)
    async with target:
        world = await target.setup(config.users, config.seed)
        crowd = Crowd(world, [target.person(a) for a in world.accounts], config)
        await crowd.gather_online()
        box = BoxSampler(lambda: {**target.pids(), "generator": [os.getpid()]})
        crowd.start()
        bar.origin = crowd.origin
        box.start(crowd.origin)
        drawing = asyncio.create_task(bar.run(crowd))
        try:
            bar.phase = "before"
            await asyncio.sleep(config.before_s)
            t1 = time.monotonic()
            bar.phase = "during"
            sent = [0] * config.users
            sizes = [(await asyncio.to_thread(p.stat)).st_size for p in clips]
            bar.upload_bytes = max(1, sum(sizes))
            tasks = [asyncio.create_task(upload_one(crowd, k, clips[k], config, config.stagger_s * k, sent,
                                                    t1 + config.during_cap_s)) for k in range(config.uploads)]
            watcher = asyncio.create_task(_watch_uploads(bar, sent))
            done, late = await asyncio.wait(tasks, timeout=config.during_cap_s) if tasks else (set(), set())
            if late:  # a transfer slower than its pace: its media wait still ends soon after
                more, _ = await asyncio.wait(late, timeout=UPLOAD_OVERRUN_S)
                done |= more
            watcher.cancel()
            bar.uploaded = sum(sent)
            t2 = max(time.monotonic() + (UPLOAD_GRACE_S if tasks else 0.0), t1 + config.min_during_s)
            await asyncio.sleep(max(0.0, t2 - time.monotonic()))
            uploads: list[dict[str, Any]] = []
            for k, task in enumerate(tasks):
                if task in done and task.exception() is None:
                    uploads.append(upload_entry(crowd, k, task.result(), sizes[k], ""))
                else:
                    task.cancel()
                    reason = (f"upload: {task.exception()!r}"[:400] if task in done
                              else f"not finished {config.during_cap_s + UPLOAD_OVERRUN_S:g} s into the upload phase")
                    uploads.append(upload_entry(crowd, k, None, sizes[k], reason))
            bar.phase = "after"
            await asyncio.sleep(config.after_s)
            t3 = time.monotonic()
            bar.phase = "stop"
            await crowd.stop()
        finally:
            drawing.cancel()
            box_series = await box.stop()
            bar.samples = sum(len(v) for v in crowd.samples.values())
            bar.draw(final=True)
    phases = {"before": [0.0, round(t1 - crowd.origin, 4)], "during": [round(t1 - crowd.origin, 4),
              round(t2 - crowd.origin, 4)], "after": [round(t2 - crowd.origin, 4), round(t3 - crowd.origin, 4)]}
    actions = {a: figures(crowd.samples[a], phases) for a in ACTIONS}
    return {"target": target.name, "phases": phases, "actions": actions, "samples": crowd.samples,
            "uploads": uploads, "box": box_series, "verdict": verdict(actions, uploads),
            "error_kinds": {a: kinds for a, kinds in crowd.error_kinds.items() if kinds}}


async def _watch_uploads(bar: ProgressBar, sent: list[int]) -> None:
    while True:
        bar.uploaded = sum(sent)
        await asyncio.sleep(0.5)


def make_target(kind: str, url: str | None, config: model.Config) -> Target:
    if kind == "naive":
        try:
            naive = importlib.import_module("loadtests.crash.naive_target")
        except ImportError as exc:
            raise SystemExit(f"the naive target is not available: {exc}") from None
        target: Target = naive.make_target(url)
        return target
    from loadtests.crash import platform_target

    return platform_target.make_target(url, config)


def configure(args: argparse.Namespace) -> model.Config:
    config = model.SMOKE if args.smoke else model.PRESETS[args.preset]
    changes: dict[str, Any] = {"seed": args.seed}
    for name, key in (("users", "users"), ("uploads", "uploads"), ("uplink_mbps", "uplink_mbps"),
                      ("duration", "duration_s"), ("hubs", "hubs"), ("ingest", "ingest"), ("workers", "workers")):
        value = getattr(args, name)
        if value is not None:
            changes[key] = value
    if "duration_s" in changes:  # the quiet phases keep their share of the run
        share = changes["duration_s"] / config.duration_s
        changes["before_s"] = max(5.0, round(config.before_s * share, 1))
        changes["after_s"] = max(5.0, round(config.after_s * share, 1))
    if "users" in changes and config.idle:  # the preset's share of idle people, at the new size
        changes["idle"] = round(config.idle * changes["users"] / config.users)
    config = replace(config, **changes)
    if config.uploads > config.users:
        raise SystemExit(f"--uploads {config.uploads} > --users {config.users}: uploaders are people too")
    if config.uploads > config.active:
        raise SystemExit(f"--uploads {config.uploads} > {config.active} active people")
    if config.users < 2:
        raise SystemExit("--users must be at least 2 (deliveries need a receiver)")
    return config


async def run(args: argparse.Namespace) -> dict[str, Any]:
    config = configure(args)
    # Every HTTP call of the SDK and every paced upload holds a thread; the default pool (cpus + 4)
    # would queue light actions behind uploads in the load generator itself.
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=2 * config.users + config.uploads + 16))
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    wanted = [config.clip_for(k) for k in range(config.uploads)]
    sys.stderr.write(f"[crash] preparing {len(set(c.key for c in wanted))} video(s) in {args.clip_dir}\n")
    clips = await video.make_clips(wanted, Path(args.clip_dir))
    if args.target == "both":
        kinds: list[tuple[str, str | None]] = [("platform", None), ("naive", None)]
    elif args.target in ("platform", "naive"):
        kinds = [(args.target, None)]
    else:
        kinds = [("platform", args.target)]
    runs = [await run_target(make_target(kind, url, config), config, clips) for kind, url in kinds]
    by_name = {r["target"]: r for r in runs}
    return {"benchmark": "crash", "seed": config.seed, "commit": commit(), "preset": config.preset,
            "config": config.as_dict() | {"target": args.target, "clip_dir": str(args.clip_dir)},
            "started_at": started_at, "runs": runs,
            "comparison": comparison(by_name["platform"], by_name.get("naive")) if "platform" in by_name else None}


def write_html(result: dict[str, Any], path: str) -> None:
    try:
        report = importlib.import_module("loadtests.crash.report")
    except ImportError:
        sys.stderr.write(f"[crash] no HTML report yet (loadtests.crash.report is missing): {path} not written\n")
        return
    Path(path).write_text(report.render_html(result), encoding="utf-8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(model.PRESETS), default="beta", help="the scenario's size")
    parser.add_argument("--smoke", action="store_true", help="beta shortened to about 20 s, small videos")
    parser.add_argument("--users", type=int, help="active people (overrides the preset)")
    parser.add_argument("--uploads", type=int, help="how many of them upload a video")
    parser.add_argument("--uplink-mbps", type=float, help="the uplink the uploads share, Mbit/s")
    parser.add_argument("--duration", type=float,
                        help="the run's length bound in seconds (before and after keep their share)")
    parser.add_argument("--seed", type=int, default=24, help="seeds every choice of the people")
    parser.add_argument("--target", default="platform",
                        help="platform, naive, both, or the URL of a running platform")
    parser.add_argument("--html", help="also write the HTML report to this file")
    parser.add_argument("--clip-dir", default=str(video.default_cache()), help="cache of generated videos")
    parser.add_argument("--hubs", type=int, help="hub nodes of the platform cluster (default 1)")
    parser.add_argument("--ingest", type=int, help="upload-only nodes of the platform cluster (default 1)")
    parser.add_argument("--workers", type=int, help="NARA workers of the platform cluster (default 1)")


def main(args: argparse.Namespace) -> int:
    # stdout carries the JSON document alone: logs of the embedded services go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    result = asyncio.run(run(args))
    emit(result, args.json)
    if args.html:
        write_html(result, args.html)
    for r in result["runs"]:
        state = "PASS" if r["verdict"]["pass"] else f"FAIL ({len(r['verdict']['failures'])} rule breaks)"
        sys.stderr.write(f"[crash] {r['target']}: {state}\n")
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    return 0 if result["runs"][0]["verdict"]["pass"] else 1
