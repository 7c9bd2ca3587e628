"""Helpers for the tests of background scheduling (realtime/cpus.py)."""

from __future__ import annotations

import threading

from amaro.infra.cpus import background_scheduling


def background_scheduling_supported() -> bool:
    """Whether this kernel takes a custom slice (6.12+): tried on a throwaway thread."""
    result: list[bool] = []
    probe = threading.Thread(target=lambda: result.append(background_scheduling(0)))
    probe.start()
    probe.join()
    return result[0]
