"""A media item's lifecycle in the catalog: the one table of how its state may change.

A worker records each phase of a job as it happens, and a reclaimed or retried job records them
again; the row's state moves only along ``TRANSITIONS``, and any other record leaves the state as it
is (a late ``good_enough`` after ``upgraded``, or ``processing`` again, changes nothing). Between
``good_enough`` and ``failed`` the latest worker's word wins: a clip that played and then turned out
truncated ends ``failed``, and a retry that succeeds makes it playable again. ``upgraded`` is final.

============  ===========================================
from          to
============  ===========================================
(no row)      the first phase recorded
processing    good_enough, upgraded, failed
good_enough   good_enough, upgraded, failed
failed        good_enough, upgraded, failed
upgraded      upgraded
============  ===========================================

The catalog's SQL is generated from this table (``allowed_sql``), so the two cannot disagree.
"""

from __future__ import annotations

from enum import StrEnum


class MediaState(StrEnum):
    PROCESSING = "processing"  # a worker took the job
    GOOD_ENOUGH = "good_enough"  # the first rendition plays
    UPGRADED = "upgraded"  # the full ladder, master playlist, preview and storyboard are stored
    FAILED = "failed"  # it cannot be played (the reason is a stable code: nara/errors.py)


M = MediaState
TRANSITIONS: dict[MediaState, frozenset[MediaState]] = {
    M.PROCESSING: frozenset({M.GOOD_ENOUGH, M.UPGRADED, M.FAILED}),
    M.GOOD_ENOUGH: frozenset({M.GOOD_ENOUGH, M.UPGRADED, M.FAILED}),
    M.FAILED: frozenset({M.GOOD_ENOUGH, M.UPGRADED, M.FAILED}),
    M.UPGRADED: frozenset({M.UPGRADED}),
}
PLAYABLE = frozenset({M.GOOD_ENOUGH, M.UPGRADED})


def after(current: MediaState | None, recorded: MediaState) -> MediaState:
    """The state once ``recorded`` is recorded on a row in ``current`` (None: no row yet)."""
    if current is None or recorded in TRANSITIONS[current]:
        return recorded
    return current


def allowed_sql(current: str, recorded: str) -> str:
    """A SQL condition true when the move from column ``current`` to ``recorded`` is in the table."""
    pairs = ", ".join(f"('{a.value}', '{b.value}')" for a, targets in TRANSITIONS.items() for b in sorted(targets))
    return f"({current}, {recorded}) IN ({pairs})"
