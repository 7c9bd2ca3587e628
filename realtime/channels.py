"""Channels and who may use them. Checked on the server on every subscribe and publish.

=================  ============================================  ================================
channel            subscribe                                     publish (``pub``)
=================  ============================================  ================================
``room:<id>``      members of the room                           members of the room
``user:<id>``      that user only                                nobody (server events only)
``post:<id>``      who can see the post                          same as subscribe
``online:<id>``    that user, users they follow or who follow    nobody (presence only)
                   them, unless a block stands between them
``online:friends`` any user: the presence of their friends        nobody (presence only)
                   (``Access.friends``), re-labelled
=================  ============================================  ================================

The social rules behind "member", "can see" and "friends" are not the hub's: the feed owns them
and the composition root hands the hub an ``Access`` that answers them.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from protocol.errors import ErrorCode, ProtocolError

KINDS = ("room", "user", "post", "online")
#: The one channel whose name is not an id: the presence of the subscriber's friends (hub.py).
FRIENDS = "online:friends"
#: Kind of the internal routed event that ends a user's subscriptions of a channel on every node.
REVOKE_KIND = "hub.revoke"
#: Kind of the internal routed event that makes every node ask again whether the subscribers of a
#: channel may still subscribe (a post's visibility narrowed).
RECHECK_KIND = "hub.recheck"


class ChannelError(ProtocolError):
    code = ErrorCode.CHANNEL_NOT_FOUND


class Access(Protocol):
    """The social rules the hub needs, answered for the authenticated ``user``."""

    async def is_member(self, room_id: str, user: str) -> bool: ...

    async def can_see_post(self, user: str, post_id: str) -> bool: ...

    async def can_see_online(self, user: str, other: str) -> bool: ...

    async def friends(self, user: str) -> list[str]:
        """The users whose presence ``user``'s ``online:friends`` shows: each one ``user`` may
        see online (``can_see_online``), the most recent first, a bounded number (the feed's cap)."""
        ...


def parse_channel(channel: str) -> tuple[str, str]:
    """``"room:<id>"`` -> ``("room", "<id>")``. Raises ``ChannelError`` for an unknown kind or an id
    that is not a UUID in its canonical spelling (every id in the system is one), except
    ``online:friends``."""
    if channel == FRIENDS:
        return "online", "friends"
    kind, sep, ident = channel.partition(":")
    if not sep or kind not in KINDS:
        raise ChannelError(f"unknown channel {channel[:80]!r}")
    try:
        canonical = str(uuid.UUID(ident))
    except ValueError:
        raise ChannelError(f"unknown channel {channel[:80]!r}") from None
    if canonical != ident:
        # One spelling per channel: "room:ABC..." and "room:abc..." must not be two Redis channels.
        raise ChannelError(f"channel ids are lowercase UUIDs with hyphens: {channel[:80]!r}")
    return kind, ident


class Permissions:
    """The table above, over an ``Access``. Every method answers for the authenticated ``user``."""

    def __init__(self, access: Access) -> None:
        self.access = access

    async def can_subscribe(self, user: str, channel: str) -> bool:
        kind, ident = parse_channel(channel)
        if kind == "room":
            return await self.access.is_member(ident, user)
        if kind == "user":
            return ident == user
        if kind == "post":
            return await self.access.can_see_post(user, ident)
        if channel == FRIENDS:
            return True  # whom it shows is decided per friend (Access.friends)
        return await self.access.can_see_online(user, ident)

    async def can_publish(self, user: str, channel: str) -> bool:
        kind, ident = parse_channel(channel)
        if kind == "room":
            return await self.access.is_member(ident, user)
        if kind == "post":
            return await self.access.can_see_post(user, ident)
        return False
