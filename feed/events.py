"""What the feed tells people, live: ``feed`` frames on ``user:<id>`` and ``event`` frames on
``post:<id>``, durable and resumable like every durable event (SPEC §9). The hub implements
``FeedEvents``; the composition root hands it in.

Feed kinds (``feed.kind``; ``data`` carries ids and small summaries, full objects come over HTTP):

===================  =====================================================================
kind                 to whom, when
===================  =====================================================================
``post.created``     the author's followers (and the author), when a post is published
``post.updated``     the author, when a post's text or visibility changes, or its media upgrades
``post.deleted``     the author's followers (and the author), when a post is deleted
``comment.created``  a post's watchers (its author and commenters), but not the commenter
``reaction.created`` a post's author, when someone reacts to it
``follow.new``       the followed user
``follow.request``   a private account's owner, when someone asks to follow
``follow.accepted``  the requester, when the owner accepts
``room.added``       a user added to a room (``room.updated``, ``room.removed`` likewise)
===================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class FeedEvents(Protocol):
    async def feed_update(self, user_id: str, kind: str, data: dict[str, object],
                          idem_key: str | None = None) -> None:
        """Store and publish one ``feed`` frame on ``user:<user_id>``."""
        ...

    async def feed_updates(self, user_ids: Sequence[str], kind: str, data: dict[str, object],
                           idem_key: str | None = None) -> None:
        """The same frame for many users, batched."""
        ...

    async def channel_event(self, channel: str, sender: str, data: dict[str, object],
                            idem_key: str | None = None) -> int:
        """Store and publish an ``event`` frame on a ``post:`` channel; returns its offset."""
        ...

    async def revoke(self, channel: str, user: str) -> None:
        """End ``user``'s subscriptions of ``channel`` on every node."""
        ...
