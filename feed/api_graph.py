"""Endpoints of the feed's graph (being built: see feed/app.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feed.web import Endpoint

if TYPE_CHECKING:
    from feed.app import FeedApi


def endpoints(api: FeedApi) -> list[Endpoint]:
    return []
