"""Typed feed events on ``user:<me>`` from a real node: a follow and a post arrive as
``FeedEvent``s with their ids; frames of other kinds are not views. And the CLI's progress line:
a bar redrawn in place on a terminal, one line per 10 % elsewhere."""

from __future__ import annotations

import io
import secrets

from amaro_client import Api, Client, FeedEvent, view_of
from amaro_client.cli import ProgressLine
from protocol import frames as F
from tests.conftest import RunningNode

PASSWORD = "a long passphrase for tests"


async def next_feed(client: Client, kind: str) -> FeedEvent:
    while True:
        view = view_of(await client.next_event(timeout_s=10))
        if isinstance(view, FeedEvent) and view.kind == kind:
            return view


async def test_feed_frames_are_typed_views(running_node: RunningNode) -> None:
    ana = await Api.signup(running_node.http_url, f"sdk{secrets.token_hex(4)}", PASSWORD, "Ana")
    bo = await Api.signup(running_node.http_url, f"sdk{secrets.token_hex(4)}", PASSWORD, "Bo")
    a, b = await ana.user_id(), await bo.user_id()
    async with Client(running_node.ws_url, token_source=ana.access_token) as inbox:
        subscribed = await inbox.subscribe(f"user:{a}")
        assert view_of(subscribed) is None
        await bo.follow(a)
        followed = await next_feed(inbox, "follow.new")
        assert followed.known and followed.user is not None and followed.user["id"] == b
        post = await ana.publish("Sastipe!")  # to the author, too
        created = await next_feed(inbox, "post.created")
        assert (created.post_id, created.post_kind) == (post["id"], "text")
        await ana.edit_post(post["id"], body="Sastipe, Bo!")
        updated = await next_feed(inbox, "post.updated")
        assert updated.post_id == post["id"] and updated.changes == ["body"]
        room = await bo.open_direct_room(a)
        added = await next_feed(inbox, "room.added")
        assert added.room_id == room["id"]
    unknown = FeedEvent.of(F.FeedUpdate(ch=f"user:{a}", epoch="e", offset=1, mid="m", kind="party.started"))
    assert not unknown.known and unknown.post_id == ""


def test_the_progress_line_on_a_terminal_and_off_it() -> None:
    tty, log = io.StringIO(), io.StringIO()
    on_tty, off_tty = ProgressLine(tty, True), ProgressLine(log, False)
    for sent in range(0, 1001, 50):
        on_tty(sent, 1000)
        off_tty(sent, 1000)
    assert tty.getvalue().count("\r") == 21 and tty.getvalue().endswith("] 100% 0.0/0.0 MB\n")
    assert "[###############...............]  50%" in tty.getvalue()
    assert log.getvalue().splitlines() == [f"upload {p}%" for p in range(0, 101, 10)]
