"""Conformance to SPEC.md: a client that speaks only the SPEC (the SDK's frame-level
``Connection``, through ``tests.realtime.wsclient.Client``) against real nodes on real services.

Each test names the SPEC section it holds the server to. Nodes whose timings a test needs to
change (drain window, ping interval, rate limits) are started by ``spec_node``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from amaro.services import Services
from amaro.settings import Settings
from tests.conftest import RunningNode, serve_node, with_node


@contextlib.asynccontextmanager
async def spec_node(settings: Settings, services: Services, name: str, *, drain_timeout_s: float = 20.0,
                    **hub: Any) -> AsyncIterator[RunningNode]:
    """A node of its own, with ``hub`` overriding its ``HubConfig`` fields."""
    base = dataclasses.replace(settings, hub=dataclasses.replace(settings.hub, **hub))
    async with serve_node(with_node(base, node_id=name, drain_timeout_s=drain_timeout_s), services,
                          uploads=False) as node:
        yield node
