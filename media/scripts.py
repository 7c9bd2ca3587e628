"""The Lua scripts in ``media/lua``, loaded once per Redis client (one round trip per operation)."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def source(name: str) -> str:
    return resources.files("media").joinpath("lua", f"{name}.lua").read_text("utf-8")
