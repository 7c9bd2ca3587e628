"""The crash replay's HTML report: self-contained, built from the samples it is given, and it opens in
Debian's chromium with every plot loaded and the verdict in sight.

The result is generated here, seeded, in the exact schema the runner writes (two runs: a platform
that holds and a naive baseline that collapses during uploads); its figures, verdict and comparison
come from the runner's own functions (loadtests.crash.verdict) applied to the generated samples.
"""

from __future__ import annotations

import base64
import copy
import math
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Browser, sync_playwright

from loadtests.crash.report import render_html
from loadtests.crash.svgplot import log_ticks, nice_ticks
from loadtests.crash.target import ACTIONS
from loadtests.crash.verdict import comparison, figures, verdict
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

REPO = Path(__file__).resolve().parents[2]
SVG_PREFIX = "data:image/svg+xml;base64,"
BOUNDS = {"before": (0.0, 20.0), "during": (20.0, 50.0), "after": (50.0, 70.0)}


def make_run(target: str, rng: random.Random, slowdown: float, error_rate: float) -> dict[str, Any]:
    samples: dict[str, list[list[Any]]] = {}
    for action in ACTIONS:
        rows: list[list[Any]] = []
        t = rng.uniform(0, 0.5)
        while t < 70:
            during = 20 <= t < 50
            ms = rng.lognormvariate(math.log(8), 0.4) * (slowdown if during else 1.0)
            ok = not (during and rng.random() < error_rate)
            rows.append([round(t, 3), round(ms, 3), ok])
            t += rng.expovariate(4.0)
        samples[action] = rows
    phases = {p: list(b) for p, b in BOUNDS.items()}
    actions = {action: figures(rows, phases) for action, rows in samples.items()}
    uploads: list[dict[str, Any]] = []
    for i, started in enumerate((21.0, 24.5)):
        last = started + rng.uniform(15, 25)
        size = int((last - started) * rng.uniform(8, 10) / 8 * 1e6)   # one 20 Mbit/s uplink, shared by two
        naive = target == "naive"
        failed = naive and i == 1
        good = None if failed else round(last + (rng.uniform(8, 30) if naive else rng.uniform(0.8, 2.5)), 2)
        uploads.append({"user": f"person-{i}", "bytes": size, "started": started, "last_byte": round(last, 2),
                        "good_enough": good, "upgraded": None if naive else round(last + rng.uniform(20, 40), 2),
                        "throughput_mbps": round(size * 8 / 1e6 / (last - started), 2), "ok": not failed,
                        "error": "HTTP 504 after 60 s" if failed else None})
    roles = ("hub", "worker", "ingest", "postgres", "redis", "generator") if target == "platform" else (
        "naive", "postgres", "generator")
    series = []
    for step in range(71):
        busy = 20 <= step < 50
        series.append({"t": float(step),
                       "cpu": {r: round(rng.uniform(2, 20) + (rng.uniform(40, 90) if busy else 0), 1) for r in roles},
                       "rss_mb": {r: round(60 + 10 * roles.index(r) + rng.uniform(0, 5), 1) for r in roles},
                       "disk_write_mb_s": round(rng.uniform(0, 1) + (4.5 if busy else 0), 2),
                       "disk_read_mb_s": round(rng.uniform(0, 0.5), 2),
                       "net_mb_s": round(rng.uniform(0, 0.2) + (5.0 if busy else 0), 2)})
    return {"target": target, "phases": phases, "actions": actions, "samples": samples, "uploads": uploads,
            "box": {"interval_s": 1.0, "series": series}, "verdict": verdict(actions, uploads)}


def make_result(seed: int = 24) -> dict[str, Any]:
    rng = random.Random(seed)
    platform = make_run("platform", rng, slowdown=1.1, error_rate=0.0)
    naive = make_run("naive", rng, slowdown=40.0, error_rate=0.03)
    return {"benchmark": "crash", "seed": seed, "commit": "0123abc", "preset": "beta",
            "config": {"users": 5, "uploads": 2, "uplink_mbps": 20, "target": "http://127.0.0.1:9/"},
            "started_at": "2026-12-08T01:50:00Z", "machine": {"cpus": 2, "memory_gb": 3.8, "python": "3.11.7"},
            "runs": [platform, naive], "comparison": comparison(platform, naive)}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def parse(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def images(html: str) -> list[dict[str, str]]:
    return [attrs for tag, attrs in parse(html) if tag == "img"]


def svg_of(img: dict[str, str]) -> ET.Element:
    assert img["src"].startswith(SVG_PREFIX)
    # Our own generated SVG, not untrusted input.
    return ET.fromstring(base64.b64decode(img["src"][len(SVG_PREFIX):]))  # noqa: S314


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return make_result()


def test_one_file_with_nothing_from_elsewhere_and_every_plot_an_svg(result: dict[str, Any]) -> None:
    html = render_html(result)
    assert "<script" not in html.lower()
    assert "url(" not in html, "CSS must not load anything"
    tags = parse(html)
    for tag, attrs in tags:
        for name in ("src", "href", "srcset", "poster", "action", "data"):
            value = attrs.get(name, "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, name, value)
        assert tag not in {"link", "iframe", "object", "embed"}, tag
    imgs = images(html)
    assert len(imgs) == 2 * (len(ACTIONS) + 3)   # per run: one latency plot per action, CPU, memory, disk+net
    for img in imgs:
        root = svg_of(img)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert int(root.attrib["width"]) > 0 and int(root.attrib["height"]) > 0
        assert len(img["alt"]) > 40, img["alt"]
    # The alt text says what the plot shows, in its figures.
    login = result["runs"][1]["actions"]["log_in"]
    assert imgs[1]["alt"].startswith("Log-in latency over time on the naive baseline")
    assert f"p99 during uploads {login['during']['p99']:,.0f} ms" in imgs[1]["alt"]
    assert f"{len(result['runs'][1]['samples']['log_in'])} samples drawn" in imgs[1]["alt"]
    # Headings and table headers for assistive technology.
    assert [t for t, _ in tags].count("h2") >= 5
    assert sum(1 for t, a in tags if t == "th" and a.get("scope") in {"col", "row", "rowgroup"}) > 50


def test_verdict_and_failures_in_words(result: dict[str, Any]) -> None:
    html = render_html(result)
    platform, naive = result["runs"]
    assert "<title>Crash replay beta, seed 24, 2026-12-08: Platform PASS, Naive baseline FAIL</title>" in html
    assert "<code>0123abc</code>" in html and "2 CPUs, 3.8 GB" in html
    assert platform["verdict"]["pass"] and not naive["verdict"]["pass"]
    assert re.search(r'class="verdict pass".*?Platform.*?PASS', html)
    assert re.search(r'class="verdict fail".*?Naive baseline.*?FAIL', html)
    chat = naive["actions"]["chat_delivery"]["during"]["p99"]
    assert f"Chat delivery p99 during uploads {chat:,.0f} ms &gt; 100 ms" in html
    assert "Upload of person-1 did not complete: HTTP 504 after 60 s" in html
    assert re.search(r"Upload of person-0: good enough [0-9.]+ s after its last byte, limit 3 s", html)
    regression = next(f for f in naive["verdict"]["failures"]
                      if f["rule"] == "p99_regression" and f["action"] == "post")
    assert (f"Post p99 during uploads {regression['value']:,.0f} ms &gt; {regression['limit']:.1f} ms (the larger of "
            "1.5 times and +10 ms of its p99 before uploads)") in html
    # Over-limit cells are marked in the naive run's table and nowhere in the platform's.
    tables = re.findall(r"<table><caption>(.*?)</caption>(.*?)</table>", html, re.S)
    phase_tables = {caption: body for caption, body in tables if "count" in body}
    assert "class=over" not in phase_tables["Platform"]
    assert phase_tables["Naive baseline"].count("class=over") >= len(ACTIONS)
    # The comparison table shows the ratio the runner computed.
    ratio = result["comparison"]["log_in"]["ratio"]
    assert f"{ratio:.1f}&times;" in html


def test_plots_are_drawn_from_the_samples(result: dict[str, Any]) -> None:
    before = [img["src"] for img in images(render_html(result))]
    changed = copy.deepcopy(result)
    changed["runs"][0]["samples"]["profile"][10][1] = 5000.0
    after = [img["src"] for img in images(render_html(changed))]
    profile = ACTIONS.index("profile") * 2   # figures go action by action, platform then naive
    assert after[profile] != before[profile]
    untouched = [i for i in range(len(before)) if i not in (profile, profile + 1)]   # the y scale is shared
    assert [after[i] for i in untouched] == [before[i] for i in untouched]
    cpu = len(ACTIONS) * 2
    changed["runs"][1]["box"]["series"][5]["cpu"]["naive"] = 199.0
    assert images(render_html(changed))[cpu + 1]["src"] != after[cpu + 1]
    # The upload windows shade every plot of their run, and only of their run.
    shifted = copy.deepcopy(result)
    shifted["runs"][1]["uploads"][0]["started"] = 30.0
    moved = [img["src"] for img in images(render_html(shifted))]
    assert all(moved[i] == before[i] for i in range(0, len(before), 2))
    assert all(moved[i] != before[i] for i in range(1, len(before), 2))


def test_cli_renders_a_saved_result(result: dict[str, Any], tmp_path: Path) -> None:
    saved, out = tmp_path / "crash.json", tmp_path / "crash.html"
    saved.write_bytes(orjson.dumps(result))
    subprocess.run([sys.executable, "-m", "loadtests.crash.report", str(saved), str(out)], check=True, cwd=REPO)
    assert out.read_text(encoding="utf-8") == render_html(orjson.loads(saved.read_bytes()))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: apt-get install -y --no-install-recommends chromium"
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_opens_in_chromium_with_every_plot_and_the_verdict(result: dict[str, Any], browser: Browser,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "crash.html"
    path.write_text(render_html(result), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    elsewhere: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(("data:", "file:")) else None)
    try:
        page.goto(path.as_uri(), wait_until="load")
        loaded = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.alt])")
        assert len(loaded) == 2 * (len(ACTIONS) + 3)
        assert all(complete and width > 0 for complete, width, _ in loaded), loaded
        verdicts = page.locator(".verdict .word")
        assert verdicts.nth(0).is_visible() and verdicts.nth(0).inner_text() == "PASS"
        assert verdicts.nth(1).is_visible() and verdicts.nth(1).inner_text() == "FAIL"
        # Wide: the two runs side by side; narrow: stacked.
        first, second = page.locator("#latency ~ .runs figure").nth(0), page.locator("#latency ~ .runs figure").nth(1)
        box1, box2 = first.bounding_box(), second.bounding_box()
        assert box1 and box2 and abs(box1["y"] - box2["y"]) < 1 and box2["x"] > box1["x"] + box1["width"]
        artifacts = REPO / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        shot = artifacts / "crash-report.png"
        shot.unlink(missing_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        page.set_viewport_size({"width": 800, "height": 900})
        box1, box2 = first.bounding_box(), second.bounding_box()
        assert box1 and box2 and box2["y"] >= box1["y"] + box1["height"]
        assert page.evaluate("document.documentElement.scrollWidth") <= 800, "no sideways scrolling when narrow"
        assert errors == [] and elsewhere == []
    finally:
        page.close()


def test_a_lone_run_with_gaps_still_renders(result: dict[str, Any]) -> None:
    """One target, an action that never ran (figures None), no box readings, no uploads: the report
    says so plainly (a dash, an empty plot) and every plot is still an SVG."""
    run = copy.deepcopy(result["runs"][0])
    run["samples"]["react"] = []
    run["actions"]["react"] = {p: {"count": 0, "p50": None, "p99": None, "max": None, "errors": 0} for p in BOUNDS}
    run["box"]["series"] = []
    run["uploads"] = []
    run["verdict"] = {"pass": False, "failures": [
        {"rule": "no_samples", "action": "react", "phase": "during", "value": None, "limit": None,
         "detail": "react: no sample during the uploads, nothing to judge"},
        {"rule": "upload_incomplete", "action": None, "phase": None, "value": None, "limit": None,
         "detail": "no upload ran"}]}
    lone = {**result, "runs": [run], "comparison": None}
    html = render_html(lone)
    assert "None" not in re.sub(r'src="[^"]*"', "", html)
    assert "React: no sample during the uploads, nothing to judge" in html and "No upload ran" in html
    assert 'class="runs two"' not in html and "Platform against the naive baseline" not in html
    assert re.search(r'>React</th><th scope="row">before</th>.*?during</th><td class=over>0', html, re.S)
    imgs = images(html)
    assert len(imgs) == len(ACTIONS) + 3
    for img in imgs:
        assert svg_of(img).tag == "{http://www.w3.org/2000/svg}svg"


def test_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 70) == [0, 20, 40, 60]
    assert nice_ticks(0, 70, 8) == [0, 10, 20, 30, 40, 50, 60, 70]
    assert nice_ticks(0.0, 4.7) == [0, 1, 2, 3, 4]
    assert log_ticks(2, 1200) == [2, 5, 10, 20, 50, 100, 200, 500, 1000]
    assert log_ticks(0.5, 50000) == [1, 10, 100, 1000, 10000]
