"""The Lua scripts of realtime/lua, registered once per Redis client.

Each runs as ``EVALSHA`` and is loaded on ``NOSCRIPT`` (after a Redis restart), so each operation is
one round trip and the script text crosses the wire only once: by redis-py's ``Script``, or on the
hot paths by ``redisconn.run_script`` / ``redisconn.run_scripts``, which take the ``Script`` for its hash and text.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript


def _source(name: str) -> str:
    return resources.files("realtime").joinpath("lua", f"{name}.lua").read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Scripts:
    publish: AsyncScript
    watch: AsyncScript
    nodes: AsyncScript
    presence_join: AsyncScript
    presence_leave: AsyncScript
    presence_sweep: AsyncScript

    @classmethod
    def register(cls, redis: aioredis.Redis) -> Scripts:
        return cls(**{name: redis.register_script(_source(name)) for name in cls.__slots__})
