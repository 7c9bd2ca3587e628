"""End-to-end fixtures: the real ``amaro dev`` command, Debian's chromium driven by Playwright, and
a watch on every page (console errors, page errors, CSP violations, requests to other origins).

``amaro dev`` runs as a child process on free ports against the suite's Redis database and its
fresh PostgreSQL database (tests/conftest.py); it supervises ``amaro hub`` and ``amaro worker``
exactly as on a developer's machine, so killing the hub child exercises the real restart path.
Playwright never downloads a browser: it launches ``/usr/bin/chromium`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, sync_playwright

from nara.tools import locate
from tests.conftest import TEST_TOKEN_SECRET, ServiceUrls, free_port
from tests.nara.conftest import make_clip

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Chromium itself logs, as console errors, every failed connection and every HTTP error answer,
# whatever the page does with them. Tests excuse these lines only while they cause them on purpose
# (``Browsing.expecting``): connection failures while the hub is held down, a refused log-in.
OUTAGE_NOISE = re.compile(r"net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|CONNECTION_CLOSED|EMPTY_RESPONSE)")


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("AMARO_TEST_ARTIFACTS") or REPO / "test-artifacts" / "e2e")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot of a main screen as ``<artifacts>/<name>.png``."""
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- the platform -------------------------------------------------------------------------------


@dataclass
class DevPlatform:
    """``amaro dev`` running on loopback: its HTTP origin, socket port and supervised children."""

    process: subprocess.Popen[bytes]
    base_url: str
    ws_port: int
    log_path: Path

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def origins(self) -> tuple[str, ...]:
        host = urlsplit(self.base_url).netloc
        return (f"http://{host}", f"ws://127.0.0.1:{self.ws_port}", f"ws://{host}")

    def hub(self) -> psutil.Process:
        """The supervised ``amaro hub`` child (started as ``python -m amaro hub``)."""
        for child in psutil.Process(self.process.pid).children():
            with contextlib.suppress(psutil.NoSuchProcess):
                argv = child.cmdline()
                if argv[-2:] == ["amaro", "hub"] and child.status() != psutil.STATUS_ZOMBIE:
                    return child
        raise LookupError(f"no running `amaro hub` child of amaro dev:\n{self.log_tail()}")

    def kill_hub(self) -> int:
        """SIGKILL the hub child (no drain, sockets cut); returns its pid."""
        hub = self.hub()
        hub.send_signal(signal.SIGKILL)
        hub.wait(10)
        return hub.pid

    def wait_ready(self, timeout_s: float = 60.0, *, not_pid: int | None = None) -> None:
        """Until ``/readyz`` answers 200 from a hub child (other than ``not_pid``, a killed one)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"amaro dev exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                fresh = not_pid is None or self.hub().pid != not_pid
                if fresh and httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except (httpx.HTTPError, LookupError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"amaro dev not ready within {timeout_s}s:\n{self.log_tail()}")


def dev_environment(urls: ServiceUrls, data_dir: Path) -> dict[str, str]:
    """The suite's services and test-suite costs; nothing else of this process's ``AMARO_*``."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AMARO_")},
        "AMARO_DATA_DIR": str(data_dir),
        "AMARO_REDIS_URL": urls.redis_url,
        "AMARO_DATABASE_URL": urls.database_url,
        "AMARO_TOKEN_SECRET": TEST_TOKEN_SECRET,
        # Every browser signs up from 127.0.0.1, with a cheap password hash (as in the rest of the suite).
        "AMARO_PASSWORD_MEMORY_KIB": "8192",
        "AMARO_PASSWORD_ITERATIONS": "1",
        "AMARO_AUTH_ATTEMPTS_PER_ADDRESS": "100000",
        # Its worker reads only the jobs of its own hub, never those of other tests sharing the Redis database.
        "AMARO_NARA_KEY_NAMESPACE": "nara-e2e",
        "AMARO_NARA_PRESET": "ultrafast",
        "AMARO_DRAIN_TIMEOUT": "5",  # stopping at the end of the package, nobody is left to drain
        "AMARO_LOG_FORMAT": "console",
        "AMARO_LOG_LEVEL": "warning",
    }


# Package scope: the platform (its NARA worker included) stops before the rest of the suite runs.
@pytest.fixture(scope="package")
def platform(service_urls: ServiceUrls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevPlatform]:
    folder = tmp_path_factory.mktemp("e2e")
    port, ws_port = free_port(), free_port()
    log_path = folder / "amaro-dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "amaro", "dev", "--data-dir", str(folder / "data"), "--port", str(port),
             "--ws-port", str(ws_port)],
            env=dev_environment(service_urls, folder / "data"), stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        )
    dev = DevPlatform(process=process, base_url=f"http://127.0.0.1:{port}", ws_port=ws_port, log_path=log_path)
    try:
        dev.wait_ready()
        yield dev
    finally:
        children = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _, alive = psutil.wait_procs(children, timeout=15)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        shutil.copy(log_path, artifacts_dir() / "amaro-dev.log")


# --- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: apt-get install -y --no-install-recommends chromium"
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield launched
    finally:
        launched.close()


CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__e2eCspViolation({directive: e.violatedDirective, blocked: e.blockedURI,
                            source: e.sourceFile, line: e.lineNumber, sample: e.sample});
});
"""


@dataclass
class PageWatch:
    """What one page did wrong: console errors, uncaught exceptions, CSP violations, requests to
    origins other than the platform's. Errors of failed connections are excused only while the
    test holds the hub down (``outage``), and kept in ``outage_noise`` for the report."""

    label: str
    origins: tuple[str, ...]
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[dict[str, Any]] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    excused: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "") if message.location else ""
        text = f"{message.text} ({where})" if where else message.text
        if any(p.search(text) for p in self.expected) and any(origin in text for origin in self.origins):
            self.excused.append(text)
        else:
            self.console_errors.append(text)

    def on_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return
        if f"{parts.scheme}://{parts.netloc}" not in self.origins:
            self.foreign_requests.append(url)

    def problems(self) -> list[str]:
        found = [f"console error: {e}" for e in self.console_errors]
        found += [f"page error: {e}" for e in self.page_errors]
        found += [f"CSP violation: {v}" for v in self.csp_violations]
        found += [f"request to another origin: {u}" for u in self.foreign_requests]
        return [f"[{self.label}] {p}" for p in found]


class Browsing:
    """Opens pages in fresh browser contexts (one per person) and watches each of them."""

    def __init__(self, browser: Browser, platform: DevPlatform) -> None:
        self.browser = browser
        self.platform = platform
        self.watches: list[PageWatch] = []
        self.contexts: list[BrowserContext] = []

    def open(self, label: str, *, path: str | None = "/") -> Page:
        """A page in a context of its own (cookies, storage, cache), at ``path`` unless None."""
        context = self.browser.new_context(base_url=self.platform.base_url, viewport={"width": 420, "height": 860})
        self.contexts.append(context)
        watch = PageWatch(label=label, origins=self.platform.origins())
        self.watches.append(watch)
        context.expose_binding("__e2eCspViolation", lambda _source, v: watch.csp_violations.append(v))
        context.add_init_script(CSP_LISTENER)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", watch.on_console)
        page.on("pageerror", lambda exc: watch.page_errors.append(str(exc)))
        page.on("request", lambda request: watch.on_url(request.url))
        page.on("websocket", lambda ws: watch.on_url(ws.url))
        if path is not None:
            page.goto(path)
        return page

    @contextlib.contextmanager
    def expecting(self, noise: re.Pattern[str]) -> Iterator[None]:
        """Within the block, chromium's own console errors matching ``noise`` and naming one of the
        platform's origins are caused on purpose by the test: kept in ``excused``, not failures."""
        for watch in self.watches:
            watch.expected.append(noise)
        try:
            yield
        finally:
            for watch in self.watches:
                watch.expected.remove(noise)

    def excused(self) -> list[str]:
        return [line for watch in self.watches for line in watch.excused]

    def problems(self) -> list[str]:
        return [p for watch in self.watches for p in watch.problems()]

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, "\n".join(problems)

    def close(self) -> None:
        for context in self.contexts:
            with contextlib.suppress(Exception):
                context.close()


@pytest.fixture
def browsing(browser: Browser, platform: DevPlatform) -> Iterator[Browsing]:
    """Fresh contexts for one test; no page may log an error or violate the CSP (checked by the
    hook below, so that it fails the test itself rather than its teardown)."""
    session = Browsing(browser, platform)
    try:
        yield session
    finally:
        session.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    session = getattr(item, "funcargs", {}).get("browsing")
    try:
        result = yield
    except BaseException:
        if isinstance(session, Browsing) and session.problems():
            print("Pages also reported:", *session.problems(), sep="\n")
        raise
    if isinstance(session, Browsing):
        session.assert_clean()
    return result


# --- media --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ten_second_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 s 640x360 H.264/AAC clip with motion and a tone, a few hundred KB, from the project's ffmpeg."""
    folder = tmp_path_factory.mktemp("e2e-media")
    return make_clip(locate(), folder / "dance.mp4", seconds=10.0, size="640x360",
                     extra=("-b:v", "280k", "-maxrate", "280k", "-bufsize", "560k"))
