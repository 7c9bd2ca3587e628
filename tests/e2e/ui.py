"""What a person does in the web app, found by role and accessible name (the app's accessible
contract) rather than by CSS: what a test finds, a screen reader finds too."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

PASSWORD = "a-long-passphrase-for-e2e"
RECONNECTING = "Reconnecting…"


def sign_up(page: Page, username: str, display_name: str) -> None:
    expect(page.get_by_role("heading", name="Amaro Than")).to_be_visible()
    page.get_by_role("textbox", name="Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("textbox", name="Display name (optional)").fill(display_name)
    page.get_by_role("button", name="Sign up", exact=True).click()
    expect(main_nav(page)).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def main_nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


def go(page: Page, link: str, heading: str) -> None:
    """Follow a link of the main navigation and wait for the screen's heading."""
    main_nav(page).get_by_role("link", name=link, exact=True).click()
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()


def find_person(page: Page, username: str, display_name: str) -> None:
    """Type a username in "Find people" and press Enter: the profile opens."""
    box = page.get_by_role("textbox", name="Find people")
    box.fill(username)
    box.press("Enter")
    expect(page).to_have_url(re.compile(rf"#/u/{re.escape(username)}$"))
    expect(page.get_by_role("heading", name=display_name, exact=True)).to_be_visible()


def follow(page: Page) -> None:
    """Press "Follow" on the open profile; it becomes "Following" (a public account)."""
    page.get_by_role("button", name="Follow", exact=True).click()
    expect(page.get_by_role("button", name="Following", exact=True)).to_be_visible()


# --- a room -------------------------------------------------------------------------------------


def messages(page: Page) -> Locator:
    return page.get_by_role("log", name="Messages")


def message(page: Page, text: str) -> Locator:
    return messages(page).locator("li").filter(has_text=text)


def send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message", exact=True)
    box.fill(text)
    page.get_by_role("button", name="Send", exact=True).click()
    expect(box).to_have_value("")


def expect_once(page: Page, text: str) -> None:
    """The message with ``text`` is shown, exactly once."""
    expect(message(page, text)).to_have_count(1)


def message_order(page: Page, texts: list[str]) -> list[int]:
    """Each text's position among the room's `li` items (every text must occur exactly once)."""
    shown = messages(page).locator("li").all_inner_texts()
    positions = []
    for text in texts:
        found = [i for i, item in enumerate(shown) if text in item]
        assert len(found) == 1, f"{text!r} shown {len(found)} times in {shown}"
        positions.append(found[0])
    return positions


def connection(page: Page) -> Locator:
    return page.get_by_role("status", name="Connection")


def expect_reconnecting(page: Page) -> None:
    expect(connection(page)).to_be_visible()
    expect(connection(page)).to_have_text(RECONNECTING)


def expect_connected(page: Page, timeout_ms: float = 30_000) -> None:
    """The connection status is hidden or empty: nothing on the page says "Reconnecting…"."""
    expect(connection(page).filter(has_text=RECONNECTING)).to_have_count(0, timeout=timeout_ms)
