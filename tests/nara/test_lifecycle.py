"""The media lifecycle table, and the catalog's SQL agreeing with it on a real database."""

from __future__ import annotations

import itertools

import asyncpg
import pytest

from nara.lifecycle import TRANSITIONS, MediaState, after, allowed_sql

M = MediaState


def test_upgraded_is_final_and_processing_is_only_a_start() -> None:
    assert TRANSITIONS[M.UPGRADED] == {M.UPGRADED}
    assert all(M.PROCESSING not in targets for targets in TRANSITIONS.values())
    assert after(None, M.PROCESSING) is M.PROCESSING
    assert after(M.UPGRADED, M.FAILED) is M.UPGRADED
    assert after(M.FAILED, M.GOOD_ENOUGH) is M.GOOD_ENOUGH  # the latest worker's word wins
    assert after(M.GOOD_ENOUGH, M.PROCESSING) is M.GOOD_ENOUGH


@pytest.mark.parametrize(("current", "recorded"), list(itertools.product(list(M), list(M))))
async def test_the_sql_condition_is_the_table(db: asyncpg.Pool, current: MediaState, recorded: MediaState) -> None:
    moves = await db.fetchval(f"SELECT {allowed_sql('$1::text', '$2::text')}", current.value, recorded.value)
    assert moves == (recorded in TRANSITIONS[current])
