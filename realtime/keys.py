"""Every Redis key the hub uses, in one place (the arq way).

Redis Cluster: each Lua script touches keys of exactly one hash slot. Channel keys share the hash
tag ``{<channel>}``, so the publish script (meta + stream + interested nodes) runs in the channel's
slot. A node inbox lives in the node's slot (``{<node_id>}``); routing a published event to inboxes
is therefore a second, pipelined step after the script (one XADD per interested node), never a
cross-slot script.
"""

from __future__ import annotations


def channel_stream(ch: str) -> str:
    """Capped history of a channel: entry id ``<offset>-0``, field ``p`` = the encoded frame."""
    return f"ch:{{{ch}}}:s"


def channel_meta(ch: str) -> str:
    """Hash ``e`` (epoch) and ``top`` (highest offset in the stream)."""
    return f"ch:{{{ch}}}:m"


def channel_nodes(ch: str) -> str:
    """ZSET node id -> expiry (ms): the nodes holding subscribers of the channel."""
    return f"ch:{{{ch}}}:nodes"


def presence_entries(ch: str) -> str:
    """ZSET ``<user>|<conn>`` -> expiry (ms): one entry per connection present in the channel."""
    return f"ch:{{{ch}}}:p"


def presence_users(ch: str) -> str:
    """Hash user -> number of entries: a user with several devices is counted once."""
    return f"ch:{{{ch}}}:pu"


def typing_throttle(ch: str, user: str) -> str:
    return f"ch:{{{ch}}}:ty:{user}"


def reaction_flush(target_kind: str, target_id: str) -> str:
    """Set NX for a short window by the node that will broadcast the coalesced counts."""
    return f"rx:{{{target_kind}:{target_id}}}:f"


def node_inbox(node_id: str) -> str:
    """Stream of events routed to one node: ``c`` channel, ``o`` offset (-1: ephemeral), ``k``
    frame type, ``ts`` publish time (ms), ``p`` the encoded frame."""
    return f"node:{{{node_id}}}:inbox"


def user_limit(user: str, name: str, window: int) -> str:
    """Fixed-window counter shared by every node."""
    return f"rl:{{{user}}}:{name}:{window}"
