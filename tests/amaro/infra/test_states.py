"""The shared lifecycle helper refuses tables it could not turn into one guarded statement."""

from __future__ import annotations

from enum import StrEnum

import pytest

from amaro.infra.states import moves


class S(StrEnum):
    A = "a"
    B = "b"
    C = "c"


class E(StrEnum):
    GO = "go"
    SPLIT = "split"
    NEVER = "never"


TABLE = {S.A: {E.GO: S.C, E.SPLIT: S.B}, S.B: {E.GO: S.C, E.SPLIT: S.C}, S.C: {}}


def test_sources_and_the_one_target() -> None:
    assert moves(TABLE, E.GO) == (["a", "b"], S.C)


@pytest.mark.parametrize("event", [E.SPLIT, E.NEVER])
def test_an_event_leading_to_two_states_or_none_is_refused(event: E) -> None:
    with pytest.raises(ValueError, match="exactly one state"):
        moves(TABLE, event)
