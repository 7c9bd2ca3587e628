"""The upload lifecycle table (pure)."""

from __future__ import annotations

from media.uploads import ENDINGS, LIVE_STATES, TRANSITIONS, UploadEvent, UploadState, moves


def test_every_event_leads_to_one_state_from_the_states_that_allow_it() -> None:
    for event in UploadEvent:
        sources, target = moves(event)
        assert sources and all(TRANSITIONS[UploadState(s)][event] is target for s in sources)
    assert moves(UploadEvent.PUBLISH) == (["uploading"], UploadState.COMPLETE)
    assert moves(UploadEvent.ENQUEUE) == (["complete"], UploadState.ENQUEUED)


def test_endings_are_terminal_and_hold_no_quota() -> None:
    for ending, event in ENDINGS.items():
        assert TRANSITIONS[ending] == {} and moves(event)[1] is ending
        assert ending.value not in LIVE_STATES
    # A finished upload ends only with its post: deleted, and its bytes leave the quota.
    assert TRANSITIONS[UploadState.ENQUEUED] == {UploadEvent.DELETE: UploadState.DELETED}
    assert moves(UploadEvent.DELETE) == (["complete", "enqueued"], UploadState.DELETED)
    assert UploadState.DELETED.value not in LIVE_STATES and TRANSITIONS[UploadState.DELETED] == {}
