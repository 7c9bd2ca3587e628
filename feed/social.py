"""Posts, comments and timelines of one node, built once from its ``FeedApi`` (``api.social``): the
objects the endpoints share, the announcer the node starts and stops, and what the hub calls
when someone reacts (``PostReactions``, realtime's ``ReactionObserver``).

=================  ==========================================================================
object             does
=================  ==========================================================================
``viewers``        a viewer's follows and blocks, cached (viewers.py)
``reader``         post maps, reaction totals and authors from the caches (content.py)
``posts``          text posts, composing media posts, edits, deletion (content.py)
``timelines``      home and profile timelines in Redis, fan-out, rebuilds (timelines.py)
``comments``       comments and replies (comments.py)
``announcer``      post.created once per publication, LISTEN, the sweep (announce.py)
``reactions``      ``reaction.created`` to a post's author; reaction totals' cache
=================  ==========================================================================
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import structlog

from feed.announce import Announcer, Connect
from feed.comments import Comments
from feed.content import PostReader, Posts
from feed.profiles import Profiles, small
from feed.timelines import Timelines
from feed.viewers import Viewers

if TYPE_CHECKING:
    from feed.app import FeedApi

log = structlog.get_logger(__name__)


class PostReactions:
    """Told by the hub after a reaction was stored: totals shown with posts are dropped from the
    caches, and the post's author hears of a new reaction (``reaction.created``)."""

    def __init__(self, api: FeedApi, reader: PostReader, viewers: Viewers, profiles: Profiles) -> None:
        self.api = api
        self.reader = reader
        self.viewers = viewers
        self.profiles = profiles

    async def reaction_changed(self, target_kind: str, target_id: str, user: str, emoji: str, on: bool) -> None:
        if target_kind != "post":
            return
        await self.api.caches.reactions.invalidate(target_id)
        if not on:
            return
        post = await self.reader.one(target_id)
        if post is None or post["author_id"] == user:
            return
        if user in (await self.viewers.of(post["author_id"])).blocked:
            return
        who = await self.profiles.get(user)
        if who is None:
            return
        await self.api.events.feed_update(post["author_id"], "reaction.created",
                                          {"post": {"id": target_id}, "emoji": emoji, "user": small(who)})


class Social:
    def __init__(self, api: FeedApi) -> None:
        self.api = api
        self.profiles = Profiles(api.db, api.caches.profiles)
        self.viewers = Viewers(api.db, api.caches.relations)
        self.reader = PostReader(api, self.viewers, self.profiles)
        self.timelines = Timelines(api.redis, api.db, api.settings, self.reader, self.viewers)
        self.announcer = Announcer(api, self.reader, self.timelines, self.viewers, self.profiles)
        self.posts = Posts(api, self.reader, self.announcer)
        self.comments = Comments(api, self.reader, self.viewers, self.profiles)
        self.reactions = PostReactions(api, self.reader, self.viewers, self.profiles)

    def start(self, connect: Connect) -> None:
        """The node's background work: listening for publications and graph changes, the sweep."""
        self.announcer.start(connect, self.api.settings.announce_sweep_s)

    async def stop(self) -> None:
        await self.announcer.stop()

    # The database announces every follow and block to every hub (feed/announce.py); the code that
    # made the change calls these too, so that its own next request already reads the new graph.

    async def blocked(self, blocker: str, blocked: str) -> None:
        """A block committed (graph's ``after_block``): what either may see changes now, on every node."""
        await self.announcer.graph_changed(blocker, blocked, follow=False)

    async def privacy_changed(self, author: str) -> None:
        """An account turned private or public: who may see its posts changed, so every node drops
        the post maps it cached (they carry the author's privacy)."""
        rows = await self.api.db.fetch("SELECT id::text AS id FROM posts WHERE author_id = $1", uuid.UUID(author))
        ids = [r["id"] for r in rows]
        for start in range(0, len(ids), 500):
            await self.api.caches.posts.invalidate(*ids[start:start + 500])

    async def follow_changed(self, follower: str, followee: str) -> None:
        """A follow began or ended: the follower's home timeline and both users' relations change."""
        await self.announcer.graph_changed(follower, followee, follow=True)
