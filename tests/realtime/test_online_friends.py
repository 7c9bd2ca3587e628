"""``online:friends`` over real sockets, with the graph changed over real HTTP: a snapshot of the
friends online, then their joins and leaves re-labelled; strangers never show; a block or an
unfollow that ends the relationship hides presence at once; across nodes too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from amaro.services import Services
from amaro.settings import Settings
from protocol import frames as F
from protocol.errors import ErrorCode
from tests.conftest import RunningNode, serve_node, with_node
from tests.feed.people import Member, crowd
from tests.realtime.wsclient import Client

FRIENDS = "online:friends"


@pytest.fixture
async def http(running_node: RunningNode) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running_node.http_url, timeout=30) as client:
        yield client


async def watch_friends(member: Member, ws_url: str) -> tuple[Client, F.PresenceSnapshot]:
    client = await member.socket(ws_url)
    sub = await client.subscribe(FRIENDS)
    assert sub.ch == FRIENDS
    snap = await client.expect(F.PresenceSnapshot, lambda s: s.ch == FRIENDS)
    return client, snap


def presence_of(client: Client, user: str) -> list[str]:
    """The ``online:friends`` presence frames ``client`` got about ``user``, in order."""
    return [f.TYPE for f in client.seen
            if isinstance(f, F.PresenceJoin | F.PresenceLeave) and f.ch == FRIENDS and f.user == user]


async def test_a_snapshot_then_joins_and_leaves_of_friends_only(http: httpx.AsyncClient,
                                                                running_node: RunningNode) -> None:
    ann, bob, cay, dan = await crowd(http, 4)
    await ann.follow(bob)  # ann follows bob, cay follows ann: both are ann's friends
    await cay.follow(ann)
    await dan.follow(bob)  # dan is nobody to ann
    bob_socket = await bob.socket(running_node.ws_url)
    watcher, snap = await watch_friends(ann, running_node.ws_url)
    assert (snap.users, snap.count, snap.truncated) == ((bob.id,), 1, False)

    cay_socket = await cay.socket(running_node.ws_url)
    joined = await watcher.expect(F.PresenceJoin, lambda f: f.ch == FRIENDS)
    assert joined.user == cay.id
    dan_socket = await dan.socket(running_node.ws_url)
    await bob_socket.close()
    left = await watcher.expect(F.PresenceLeave, lambda f: f.ch == FRIENDS, timeout=15)
    assert left.user == bob.id
    rid = watcher.next_id()
    await watcher.send(F.PresenceQuery(id=rid, ch=FRIENDS))
    asked = await watcher.expect(F.PresenceSnapshot, lambda s: s.id == rid)
    assert (asked.ch, asked.users) == (FRIENDS, (cay.id,))
    assert presence_of(watcher, dan.id) == []

    # After unsub, nothing more arrives.
    answer = await watcher.request(F.Unsubscribe(id=watcher.next_id(), ch=FRIENDS))
    assert isinstance(answer, F.Unsubscribed)
    bob_socket = await bob.socket(running_node.ws_url)
    await asyncio.sleep(0.5)
    assert presence_of(watcher, bob.id) == ["presence.leave"]
    for client in (watcher, bob_socket, cay_socket, dan_socket):
        await client.close()


async def test_a_block_hides_presence_at_once_both_ways(http: httpx.AsyncClient, running_node: RunningNode) -> None:
    ann, bob = await crowd(http, 2)
    await ann.follow(bob)
    await bob.follow(ann)
    ann_watch, ann_snap = await watch_friends(ann, running_node.ws_url)
    bob_watch, bob_snap = await watch_friends(bob, running_node.ws_url)
    assert ann_snap.users == () and bob_snap.users == (ann.id,)
    assert (await ann_watch.expect(F.PresenceJoin, lambda f: f.ch == FRIENDS)).user == bob.id
    await ann_watch.subscribe(f"online:{bob.id}")

    assert (await bob.send("POST", f"/api/v1/users/{ann.id}/block")).status_code == 204
    gone = await ann_watch.expect(F.PresenceLeave, lambda f: f.ch == FRIENDS)
    assert gone.user == bob.id
    ended = [f for f in ann_watch.seen if isinstance(f, F.Unsubscribed) and f.ch == f"online:{bob.id}"]
    assert [f.id for f in ended] == [0]  # the direct subscription ended too (before the leave)
    assert (await bob_watch.expect(F.PresenceLeave, lambda f: f.ch == FRIENDS)).user == ann.id
    # Neither can look again, directly or among friends.
    denied = await ann_watch.request(F.Subscribe(id=ann_watch.next_id(), ch=f"online:{bob.id}"))
    assert isinstance(denied, F.Error) and denied.code == ErrorCode.PERMISSION_DENIED
    _, again = await watch_friends(ann, running_node.ws_url)
    assert again.users == () and again.count == 0
    # A second device of bob's coming and going tells ann nothing.
    other = await bob.socket(running_node.ws_url)
    await other.close()
    await asyncio.sleep(0.3)
    assert presence_of(ann_watch, bob.id) == ["presence.join", "presence.leave"]
    await ann_watch.close()
    await bob_watch.close()


async def test_an_unfollow_that_ends_the_relationship_ends_the_presence(http: httpx.AsyncClient,
                                                                        running_node: RunningNode) -> None:
    ann, bob, cay = await crowd(http, 3)
    await ann.follow(bob)
    await ann.follow(cay)
    await cay.follow(ann)
    online = [await bob.socket(running_node.ws_url), await cay.socket(running_node.ws_url)]
    watcher, snap = await watch_friends(ann, running_node.ws_url)
    assert set(snap.users) == {bob.id, cay.id}
    assert (await ann.send("DELETE", f"/api/v1/users/{bob.id}/follow")).status_code == 200
    assert (await watcher.expect(F.PresenceLeave, lambda f: f.ch == FRIENDS)).user == bob.id
    # cay still follows ann: still friends after ann's unfollow.
    assert (await ann.send("DELETE", f"/api/v1/users/{cay.id}/follow")).status_code == 200
    await asyncio.sleep(0.3)
    assert presence_of(watcher, cay.id) == []
    for client in (watcher, *online):
        await client.close()


async def test_new_friends_show_from_the_next_subscribe(http: httpx.AsyncClient, running_node: RunningNode) -> None:
    ann, bob = await crowd(http, 2)
    watcher, snap = await watch_friends(ann, running_node.ws_url)
    assert snap.users == ()
    await bob.follow(ann)
    bob_socket = await bob.socket(running_node.ws_url)
    await asyncio.sleep(0.3)
    assert presence_of(watcher, bob.id) == []  # the list was read when ann subscribed
    await watcher.request(F.Unsubscribe(id=watcher.next_id(), ch=FRIENDS))
    await watcher.subscribe(FRIENDS)
    assert (await watcher.expect(F.PresenceSnapshot, lambda s: s.ch == FRIENDS)).users == (bob.id,)
    await watcher.close()
    await bob_socket.close()


async def test_friends_on_another_node(http: httpx.AsyncClient, running_node: RunningNode, settings: Settings,
                                       services: Services) -> None:
    ann, bob = await crowd(http, 2)
    await bob.follow(ann)
    watcher, _ = await watch_friends(ann, running_node.ws_url)
    async with serve_node(with_node(settings, node_id="friends-second"), services) as second, \
            httpx.AsyncClient(base_url=second.http_url, timeout=30) as other_http:
        bob_socket = await bob.socket(second.ws_url)
        assert (await watcher.expect(F.PresenceJoin, lambda f: f.ch == FRIENDS)).user == bob.id
        # A block made through the second node reaches ann's relay on the first.
        ann_there = Member(ann.id, ann.username, ann.token, other_http)
        assert (await ann_there.send("POST", f"/api/v1/users/{bob.id}/block")).status_code == 204
        assert (await watcher.expect(F.PresenceLeave, lambda f: f.ch == FRIENDS)).user == bob.id
        await bob_socket.close()
    await watcher.close()


async def test_only_the_one_friends_channel(http: httpx.AsyncClient, running_node: RunningNode) -> None:
    (ann,) = await crowd(http, 1)
    client = await ann.socket(running_node.ws_url)
    for name in ("online:FRIENDS", "online:friend", "online:friends_", "room:friends", "user:friends"):
        answer = await client.request(F.Subscribe(id=client.next_id(), ch=name))
        assert isinstance(answer, F.Error) and answer.code == ErrorCode.CHANNEL_NOT_FOUND, name
    await client.subscribe(FRIENDS)
    answer = await client.request(F.Publish(id=client.next_id(), ch=FRIENDS, key="k", data={"x": 1}))
    assert isinstance(answer, F.Error) and answer.code == ErrorCode.PERMISSION_DENIED
    answer = await client.request(F.Subscribe(id=client.next_id(), ch=FRIENDS))
    assert isinstance(answer, F.Error) and answer.code == ErrorCode.ALREADY_SUBSCRIBED
    await client.close()
