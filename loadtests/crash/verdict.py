"""Figures from samples, and the verdict of issue 24 (item 3). Pure functions, no I/O.

A sample is `[t, ms, ok]`: when the action started (seconds since the run started), how long it
took (a failed action counts the time until it failed: a timeout is latency too) and whether it
succeeded. A sample belongs to the phase whose `[start, end)` holds its `t` (the last phase's end
is inclusive). Percentiles are nearest-rank on the sorted durations: the value at index
`round(q * (n - 1))`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loadtests.crash.target import ACTIONS, PHASES

CEILING_MS = 100.0          # during uploads, every light action's p99 stays under this
RATIO = 1.5                 # ... and within max(RATIO x before-p99, before-p99 + SLACK_MS)
SLACK_MS = 10.0
GOOD_ENOUGH_S = 3.0         # every video good enough within this many seconds of its last byte

Sample = Sequence[Any]      # [t_s, ms, ok]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def phase_of(t: float, phases: Mapping[str, Sequence[float]]) -> str | None:
    last = PHASES[-1]
    for name in PHASES:
        start, end = phases[name]
        if start <= t < end or (name == last and t == end):
            return name
    return None


def figures(samples: Sequence[Sample], phases: Mapping[str, Sequence[float]]) -> dict[str, dict[str, Any]]:
    """count, p50, p99, max and errors of one action's samples, per phase (None without samples)."""
    by_phase: dict[str, list[Sample]] = {p: [] for p in PHASES}
    for sample in samples:
        phase = phase_of(float(sample[0]), phases)
        if phase is not None:
            by_phase[phase].append(sample)
    out: dict[str, dict[str, Any]] = {}
    for phase, chosen in by_phase.items():
        values = sorted(float(s[1]) for s in chosen)
        out[phase] = {
            "count": len(chosen),
            "p50": round(percentile(values, 0.5), 2) if values else None,
            "p99": round(percentile(values, 0.99), 2) if values else None,
            "max": round(values[-1], 2) if values else None,
            "errors": sum(1 for s in chosen if not s[2]),
        }
    return out


def failure(rule: str, detail: str, action: str | None = None, phase: str | None = None,
            value: float | None = None, limit: float | None = None) -> dict[str, Any]:
    return {"rule": rule, "action": action, "phase": phase, "value": value, "limit": limit, "detail": detail}


def regression_limit(before_p99: float) -> float:
    return max(RATIO * before_p99, before_p99 + SLACK_MS)


def latency_failures(actions: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The latency rules, for every light action during the uploads."""
    found: list[dict[str, Any]] = []
    for action in ACTIONS:
        during = actions.get(action, {}).get("during", {})
        before = actions.get(action, {}).get("before", {})
        if not during.get("count"):
            found.append(failure("no_samples", f"{action}: no sample during the uploads, nothing to judge",
                                 action, "during"))
            continue
        p99 = float(during["p99"])
        if p99 >= CEILING_MS:
            found.append(failure("p99_ceiling", f"{action} p99 {p99:g} ms during uploads, must stay under "
                                 f"{CEILING_MS:g} ms", action, "during", p99, CEILING_MS))
        if not before.get("count"):
            found.append(failure("no_samples", f"{action}: no sample before the uploads, no baseline",
                                 action, "before"))
            continue
        limit = round(regression_limit(float(before["p99"])), 2)
        if p99 > limit:
            found.append(failure("p99_regression", f"{action} p99 {p99:g} ms during uploads, before "
                                 f"{before['p99']:g} ms: limit {limit:g} ms", action, "during", p99, limit))
    return found


def error_failures(actions: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for action in ACTIONS:
        for phase in PHASES:
            errors = int(actions.get(action, {}).get(phase, {}).get("errors", 0))
            if errors:
                found.append(failure("errors", f"{action}: {errors} failed in phase {phase}", action, phase,
                                     errors, 0))
    return found


def upload_failures(uploads: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if not uploads:
        found.append(failure("upload_incomplete", "no upload ran"))
    for up in uploads:
        who = str(up.get("user"))
        if not up.get("ok"):
            found.append(failure("upload_incomplete", f"upload of {who} did not complete: {up.get('error')}"))
            continue
        last, good = up.get("last_byte"), up.get("good_enough")
        if last is None or good is None:
            found.append(failure("good_enough_late", f"upload of {who}: never good enough", limit=GOOD_ENOUGH_S))
            continue
        lag = round(float(good) - float(last), 3)
        if lag > GOOD_ENOUGH_S:
            found.append(failure("good_enough_late", f"upload of {who}: good enough {lag:g} s after its last "
                                 f"byte, limit {GOOD_ENOUGH_S:g} s", value=lag, limit=GOOD_ENOUGH_S))
    return found


def verdict(actions: Mapping[str, Mapping[str, Mapping[str, Any]]],
            uploads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    failures = [*latency_failures(actions), *error_failures(actions), *upload_failures(uploads)]
    return {"pass": not failures, "failures": failures}


def comparison(platform: Mapping[str, Any], naive: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """During-upload p99 per action, both targets, and how many times slower the naive one was."""
    if naive is None:
        return None
    out: dict[str, Any] = {}
    for action in ACTIONS:
        p = platform["actions"].get(action, {}).get("during", {}).get("p99")
        n = naive["actions"].get(action, {}).get("during", {}).get("p99")
        out[action] = {"platform_p99": p, "naive_p99": n,
                       "ratio": round(n / p, 2) if p and n is not None else None}
    return out
