"""A live subscription never outlives the right to it, on any node: two real hub processes; the
changes are made over HTTP on one, the sockets watch posts on the other. A post's visibility
narrowed, an unfollow, a block and an account turned private each end exactly the subscriptions
the access rule now refuses (``unsub.ok`` with id 0), and the others keep receiving."""

from __future__ import annotations

import uuid

import httpx
import pytest

from protocol import frames as F
from tests.feed.people import Member, join
from tests.realtime.test_cluster import NodeProcess, two_nodes  # noqa: F401 - the fixture
from tests.realtime.wsclient import Client

pytestmark = pytest.mark.slow


async def ended(client: Client, *channels: str) -> None:
    """Each channel's subscription is ended by the server (``unsub.ok`` with id 0), in any order."""
    waiting = set(channels)
    while waiting:
        gone = await client.expect(F.Unsubscribed, lambda f: f.ch in waiting)
        assert gone.id == 0
        waiting.discard(gone.ch)


async def comment_reaches(author: Member, post: str, watchers: list[Client]) -> None:
    """A comment by the author arrives on each watcher's post channel (their subscription lives)."""
    marker = f"still here {uuid.uuid4()}"
    answer = await author.send("POST", f"/api/v1/posts/{post}/comments", {"body": marker})
    assert answer.status_code == 201, answer.text
    for client in watchers:
        event = await client.expect(F.Event, lambda e: e.ch == f"post:{post}"
                                    and e.data.get("type") == "comment.created" and e.data["comment"]["body"] == marker)
        assert event.sender == author.id


async def publish(author: Member, visibility: str) -> str:
    answer = await author.send("POST", "/api/v1/posts", {"body": f"a {visibility} post", "visibility": visibility})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def test_rights_lost_anywhere_end_live_post_subscriptions_everywhere(
        two_nodes: tuple[NodeProcess, NodeProcess]) -> None:  # noqa: F811
    node_a, node_b = two_nodes
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node_a.port}", timeout=15) as http:
        ana, bo, cy, dee, eve = [await join(http) for _ in range(5)]
        for follower in (bo, dee):
            assert await follower.follow(ana) == "following"
        public, followers_only = await publish(ana, "public"), await publish(ana, "followers")
        sockets = {m.id: await m.socket(node_b.ws_url) for m in (bo, cy, dee, eve)}
        b, c, d, e = (sockets[m.id] for m in (bo, cy, dee, eve))
        assert {s.welcome.node for s in sockets.values()} == {"it-b"}
        for client in (b, c, d):
            await client.subscribe(f"post:{public}")
        await b.subscribe(f"post:{followers_only}")

        # Public -> followers: the stranger's subscription ends, the followers' stay.
        narrowed = await ana.send("PATCH", f"/api/v1/posts/{public}", {"visibility": "followers"})
        assert narrowed.status_code == 200, narrowed.text
        await ended(c, f"post:{public}")
        await comment_reaches(ana, public, [b, d])

        # An unfollow ends both of the follower's subscriptions to followers-only posts.
        assert (await bo.send("DELETE", f"/api/v1/users/{ana.id}/follow")).status_code == 200
        await ended(b, f"post:{public}", f"post:{followers_only}")

        # A block by the author ends the blocked follower's subscription.
        assert (await ana.send("POST", f"/api/v1/users/{dee.id}/block")).status_code == 204
        await ended(d, f"post:{public}")

        # An account turned private: its public post is for followers only from now on.
        assert await bo.follow(ana) == "following"
        open_post = await publish(ana, "public")
        await b.subscribe(f"post:{open_post}")
        await e.subscribe(f"post:{open_post}")
        went = await ana.send("PATCH", "/api/v1/me", {"private": True})
        assert went.status_code == 200, went.text
        await ended(e, f"post:{open_post}")
        await comment_reaches(ana, open_post, [b])
        assert not any(isinstance(f, F.Unsubscribed) and f.ch == f"post:{open_post}" for f in b.seen)

        # What ended stays refused: a resubscribe is a permission error.
        refused = await c.request(F.Subscribe(id=c.next_id(), ch=f"post:{public}"))
        assert isinstance(refused, F.Error) and refused.code == 300
        for client in sockets.values():
            await client.close()
