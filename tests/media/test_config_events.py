"""The progress throttle (pure). (Parsing media settings from the environment is tested with the
composition root, tests/amaro.)"""

from __future__ import annotations

from media.events import ProgressThrottle


def test_progress_is_throttled_by_time_and_step() -> None:
    throttle = ProgressThrottle(length=1000, interval_s=1.0, step=0.05)
    assert throttle.due(0, now=0.0)
    assert not throttle.due(10, now=0.1)
    assert throttle.due(60, now=0.2)        # 5% passed
    assert not throttle.due(70, now=0.3)
    assert throttle.due(71, now=1.3)        # a second passed
    assert throttle.due(1000, now=1.31)     # the end is always reported
    assert not throttle.due(1000, now=1.32)
