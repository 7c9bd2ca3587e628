"""Two people in two browsers meet, chat, react and ride out a hub restart; one posts a video that
uploads with a real progress bar, shows as processing, then plays. Everything through the web app
served by ``amaro dev``, in Debian's chromium; any console error or CSP violation fails the test."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import OUTAGE_NOISE, Browsing, DevPlatform, screenshot
from tests.e2e.ui import (
    expect_connected,
    expect_once,
    expect_reconnecting,
    find_person,
    follow,
    go,
    message,
    message_order,
    send,
    sign_up,
)

pytestmark = pytest.mark.slow

THUMBS_UP = "👍"


def test_the_app_is_served_under_a_strict_csp(platform: DevPlatform) -> None:
    page = httpx.get(f"{platform.base_url}/")
    assert page.status_code == 200, page.text[:300]
    policy = {d.split()[0]: d.split()[1:] for d in page.headers["content-security-policy"].split(";") if d.strip()}
    scripts = policy.get("script-src", policy.get("default-src"))
    assert scripts == ["'self'"], policy
    assert "'unsafe-inline'" not in policy.get("style-src", []), policy
    inline = [s for s in re.findall(r"<script\b([^>]*)>", page.text) if "src=" not in s]
    assert not inline, f"inline scripts in index.html: {inline}"


def test_a_failed_log_in_shows_the_servers_message(browsing: Browsing, platform: DevPlatform) -> None:
    credentials = {"username": f"nobody_{secrets.token_hex(3)}", "password": "not-the-right-one"}
    answer = httpx.post(f"{platform.base_url}/api/v1/auth/login", json=credentials)
    assert answer.status_code == 401, answer.text
    page = browsing.open("stranger")
    page.get_by_role("textbox", name="Username", exact=True).fill(credentials["username"])
    page.get_by_label("Password", exact=True).fill(credentials["password"])
    with browsing.expecting(re.compile(r"status of 401 .*/api/v1/auth/login")):
        page.get_by_role("button", name="Log in", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text(answer.json()["error"]["message"])
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)


def test_two_people_meet_chat_react_and_ride_out_a_hub_restart(browsing: Browsing, platform: DevPlatform) -> None:
    tag = secrets.token_hex(3)
    ana_name, bo_name = f"ana_{tag}", f"bo_{tag}"
    ana, bo = browsing.open("Ana"), browsing.open("Bo")
    screenshot(ana, "01-signed-out")
    sign_up(ana, ana_name, "Ana")
    sign_up(bo, bo_name, "Bo")
    expect(ana.get_by_role("heading", name="Home", exact=True)).to_be_visible()
    screenshot(ana, "02-home")

    # They follow each other from the profile pages.
    find_person(ana, bo_name, "Bo")
    follow(ana)
    screenshot(ana, "03-profile")
    find_person(bo, ana_name, "Ana")
    follow(bo)

    # A post of Ana's reaches Bo's open home live, behind the "New posts" banner.
    go(bo, "Home", "Home")
    go(ana, "Home", "Home")
    news = f"Dancing at the wedding tonight {tag}"
    ana.get_by_role("textbox", name="What's happening?").fill(news)
    ana.get_by_role("button", name="Post", exact=True).click()
    expect(ana.get_by_role("article").filter(has_text=news)).to_have_count(1)
    banner = bo.get_by_role("button", name=re.compile(r"^New posts"))
    expect(banner).to_be_visible()
    expect(bo.get_by_role("article").filter(has_text=news)).to_have_count(0)
    banner.click()
    expect(bo.get_by_role("article").filter(has_text=news)).to_have_count(1)

    # Ana opens the direct room with "Message" and writes first; Bo finds it, unread, in Rooms.
    find_person(ana, bo_name, "Bo")
    ana.get_by_role("button", name="Message", exact=True).click()
    expect(ana).to_have_url(re.compile(r"#/rooms/[^/]+$"))
    expect(ana.get_by_role("heading", name="Bo", exact=True)).to_be_visible()
    hello = f"Hi Bo, it's Ana {tag}"
    send(ana, hello)
    expect_once(ana, hello)
    go(bo, "Rooms", "Rooms")
    room_link = bo.get_by_role("link", name=re.compile(r"^Ana\b"))
    expect(room_link).to_be_visible()
    expect(room_link.get_by_label("1 unread", exact=True)).to_be_visible()
    screenshot(bo, "04-rooms")
    room_link.click()
    expect(bo.get_by_role("heading", name="Ana", exact=True)).to_be_visible()
    expect_once(bo, hello)

    # Presence: each sees the other online.
    expect(ana.get_by_role("region", name="Online")).to_contain_text("Bo")
    expect(bo.get_by_role("region", name="Online")).to_contain_text("Ana")

    # Typing shows at the other side, then the message arrives; Ana answers.
    reply = f"Hey Ana! Bo here {tag}"
    bo.get_by_role("textbox", name="Message", exact=True).press_sequentially(reply, delay=20)
    expect(ana.get_by_role("status", name="Typing")).to_have_text("Bo is typing…")
    bo.get_by_role("button", name="Send", exact=True).click()
    expect_once(ana, reply)
    expect_once(bo, reply)
    answer = f"Nice to meet you {tag}"
    send(ana, answer)
    expect_once(bo, answer)

    # A 👍 from Ana on Bo's message: pressed for her, counted on both sides.
    react = message(ana, reply).get_by_role("button", name=f"React {THUMBS_UP}")
    react.click()
    expect(react).to_have_attribute("aria-pressed", "true")
    one = re.compile(rf"{THUMBS_UP}\s*1(?!\d)")
    expect(message(ana, reply)).to_contain_text(one)
    expect(message(bo, reply)).to_contain_text(one)
    expect(message(bo, reply).get_by_role("button", name=f"React {THUMBS_UP}")).not_to_have_attribute(
        "aria-pressed", "true")

    # Bo has the room open, so his read receipt marks Ana's last message "Seen".
    expect(message(ana, answer)).to_contain_text("Seen")
    screenshot(ana, "05-room")

    ride_out_a_hub_restart(browsing, platform, ana, bo, tag, earlier=[hello, reply, answer])


def ride_out_a_hub_restart(browsing: Browsing, platform: DevPlatform, ana: Page, bo: Page, tag: str,
                           earlier: list[str]) -> None:
    """Kill the hub mid-chat: both pages say "Reconnecting…" and recover on their own once the
    supervisor has restarted it; messages from before, during and after arrive once each, in order."""
    before = f"Sent just before the restart {tag}"
    send(ana, before)
    expect_once(ana, before)
    expect_once(bo, before)
    with browsing.expecting(OUTAGE_NOISE):
        killed = platform.kill_hub()
        expect_reconnecting(ana)
        expect_reconnecting(bo)
        screenshot(ana, "06-reconnecting")
        platform.wait_ready(not_pid=killed)
        # Bo writes as soon as his page is back, whether or not Ana's is yet.
        expect_connected(bo)
        during = f"Sent by Bo as the hub came back {tag}"
        send(bo, during)
        expect_connected(ana)
    after = f"Sent by Ana after recovery {tag}"
    send(ana, after)
    everything = [*earlier, before, during, after]
    for page in (ana, bo):
        for text in (before, during, after):
            expect_once(page, text)
        positions = message_order(page, everything)
        assert positions == sorted(positions), f"out of order: {dict(zip(everything, positions, strict=True))}"
    noise = browsing.excused()
    print(f"{len(noise)} connection failures logged by chromium while the hub was down: {noise[:4]}")


PROGRESS_RECORDER = """caption => {
  const seen = window.__e2eUpload = {values: [], processing: false};
  const nameOf = el => (el.getAttribute("aria-label")
    || (el.getAttribute("aria-labelledby") || "").split(/\\s+/)
         .map(id => document.getElementById(id)?.textContent || "").join(" ")
    || [...(el.labels || [])].map(l => l.textContent).join(" ")).trim();
  const look = () => {
    for (const bar of document.querySelectorAll("[role=progressbar], progress")) {
      if (nameOf(bar) !== "Upload progress" || !bar.checkVisibility()) continue;
      const raw = bar.getAttribute("aria-valuenow")
        ?? (bar instanceof HTMLProgressElement && bar.hasAttribute("value") ? bar.value / bar.max * 100 : null);
      if (raw !== null && seen.values.at(-1) !== Number(raw)) seen.values.push(Number(raw));
    }
    for (const post of document.querySelectorAll("article")) {
      if (post.textContent.includes(caption) && post.textContent.includes("Processing")) seen.processing = true;
    }
  };
  new MutationObserver(look).observe(document.body,
    {subtree: true, childList: true, attributes: true, characterData: true});
}"""


def test_a_video_post_uploads_shows_processing_then_plays(browsing: Browsing, platform: DevPlatform,
                                                          ten_second_video: Path) -> None:
    tag = secrets.token_hex(3)
    cam = browsing.open("Cam")
    sign_up(cam, f"cam_{tag}", "Cam")
    expect(cam.get_by_role("heading", name="Home", exact=True)).to_be_visible()

    # An uplink of 256 KiB/s, like the beta's testers: the upload takes seconds, not milliseconds.
    cdp = cam.context.new_cdp_session(cam)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 256 * 1024})
    caption = f"First steps of the dance {tag}"
    cam.evaluate(PROGRESS_RECORDER, caption)
    cam.get_by_role("textbox", name="What's happening?").fill(caption)
    cam.get_by_label("Add a video").set_input_files(ten_second_video)
    cam.get_by_role("button", name="Post", exact=True).click()
    expect(cam.get_by_role("progressbar", name="Upload progress")).to_be_visible()
    cam.wait_for_function("() => window.__e2eUpload.values.includes(100)", timeout=60_000)
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    progress = cam.evaluate("window.__e2eUpload.values")
    assert all(0 <= v <= 100 for v in progress) and progress == sorted(progress), progress
    assert len(progress) >= 3, f"the bar jumped instead of progressing: {progress}"

    post = cam.get_by_role("article").filter(has_text=caption)
    expect(post).to_have_count(1)
    cam.wait_for_function("() => window.__e2eUpload.processing", timeout=30_000)

    video = post.locator("video")
    expect(video).to_be_visible(timeout=90_000)
    element, first_url = video.element_handle(), video.evaluate("v => v.dataset.src")  # the good-enough playlist
    if video.evaluate("v => v.paused"):
        video.click()  # a person's click, like pressing play
    cam.wait_for_function("v => v.currentTime > 1 || v.error !== null", arg=video.element_handle(), timeout=30_000)
    assert video.evaluate("v => v.error && v.error.code") is None
    screenshot(cam, "07-video-playing")
    assert video.evaluate("v => v.currentTime") > 1

    # The better renditions arrive while the viewer has paused: the same element switches to the
    # upgraded playlist in place (no reload, no new player), at the same position, and plays on.
    element.evaluate("v => v.pause()")  # the viewer pauses (a 10 s clip would end before the upgrade)
    paused_at = element.evaluate("v => v.currentTime")
    cam.wait_for_function("([v, first]) => v.dataset.src !== first", arg=[element, first_url], timeout=120_000)
    assert element.evaluate("v => v.isConnected") and post.locator("video").count() == 1, \
        "the player was replaced instead of upgraded"
    cam.wait_for_function("([v, at]) => v.readyState >= 2 && Math.abs(v.currentTime - at) < 1",
                          arg=[element, paused_at], timeout=30_000)
    element.evaluate("v => v.play()")  # and presses play again
    cam.wait_for_function("([v, at]) => v.currentTime > at + 1 || v.error !== null", arg=[element, paused_at],
                          timeout=30_000)
    assert element.evaluate("v => v.error && v.error.code") is None
