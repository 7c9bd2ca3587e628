"""What the feed tells people, live: ``feed`` frames on ``user:<id>`` and ``event`` frames on
``post:<id>``, durable and resumable like every durable event (SPEC §9). The hub implements
``FeedEvents``; the composition root hands it in.

Feed kinds (``feed.kind``; ``data`` carries ids and small summaries, full objects come over HTTP):

===================  =====================================================================
kind                 to whom, when
===================  =====================================================================
``post.created``     the author's followers (unless the post is private) and the author, when a
                     post is published (a media post: when its media is good enough); ``data``:
                     post (id, kind, visibility, author: small profile)
``post.updated``     the author, when a post's body or visibility changes, or its media upgrades;
                     ``data``: post (id), changes (body|visibility|media)
``post.deleted``     the author's followers (unless the post was private) and the author, when a
                     published post is deleted; ``data``: post (id)
``comment.created``  a post's watchers (its author and commenters) who may see it, but not the
                     commenter nor anyone a block stands between with them; ``data``: post (id),
                     comment (id, parent_id, author: small profile)
``reaction.created`` a post's author, when someone else reacts to it; ``data``: post (id), emoji,
                     user (small profile)
``follow.new``       the followed user; ``data``: user (the follower's small profile: id,
                     username, display_name)
``follow.request``   a private account's owner, when someone asks to follow; ``data``: user
                     (the requester's small profile)
``follow.accepted``  the requester, when the owner accepts (or turns the account public);
                     ``data``: user (the owner's small profile)
``room.added``       users who joined a room (created with them, added, a direct room opened),
                     the creator too; ``data``: room, kind, title, by
``room.removed``     a user removed from a room, leaving it (their other devices) or whose direct
                     room a block closed; ``data``: room, by, reason (removed|left|closed)
``room.updated``     the members who stay, when a room's title, members or roles change; the
                     member alone when they mute or unmute it; ``data``: room, by, change
                     (title|members|roles|muted) and its fields (title, added, removed,
                     members_count, roles: {user: role}, muted)
===================  =====================================================================

``event`` frames on ``post:<id>`` (``data.type``): ``comment.created`` (``comment``: the comment
as ``GET .../comments`` lists it), ``comment.deleted`` (``comment_id``), ``post.deleted``
(``post_id``).
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

    async def recheck(self, channel: str) -> None:
        """Every node asks the access rule again for each subscriber of ``channel`` and ends the
        subscriptions it now refuses (a post's visibility narrowed)."""
        ...
