"""Lifecycles as tables (h11's ``_state.py`` idea): ``{state: {event: next state}}``, and the one
question every owner of such a table asks before it writes a guarded statement."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


def moves(table: Mapping[S, Mapping[E, S]], event: E) -> tuple[list[str], S]:
    """The states ``event`` may leave (their values, for a SQL ``state = ANY(...)`` guard) and the
    one state it leads to. Raises ``ValueError`` when no state accepts it, or when it would lead to
    different states from different ones (the guard could not say which)."""
    sources = [state.value for state, table_moves in table.items() if event in table_moves]
    targets = {table_moves[event] for table_moves in table.values() if event in table_moves}
    if len(targets) != 1:
        raise ValueError(f"event {event} must lead to exactly one state, not {sorted(targets)}")
    return sources, targets.pop()
