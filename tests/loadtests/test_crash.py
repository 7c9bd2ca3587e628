"""The crash replay: the verdict's rules on hand-made figures, the people's seeded model, and a
bounded smoke run of ``python -m loadtests crash --smoke`` against a real platform cluster whose
figures are recomputed here from the run's own samples."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtests.crash import model
from loadtests.crash.target import ACTIONS, PHASES
from loadtests.crash.verdict import comparison, figures, verdict

REPO = Path(__file__).resolve().parents[2]
PHASES_OF_TEN = {"before": [0.0, 10.0], "during": [10.0, 20.0], "after": [20.0, 30.0]}


def steady(before_p99: float, during_p99: float) -> dict[str, dict[str, dict[str, Any]]]:
    """Figures where every action has the same p99s and no errors."""
    def cell(p99: float) -> dict[str, Any]:
        return {"count": 50, "p50": p99 / 2, "p99": p99, "max": p99, "errors": 0}

    return {a: {"before": cell(before_p99), "during": cell(during_p99), "after": cell(before_p99)} for a in ACTIONS}


GOOD_UPLOAD = {"user": "u0", "bytes": 10, "started": 10.0, "last_byte": 12.0, "good_enough": 14.5,
               "upgraded": 20.0, "throughput_mbps": 1.0, "ok": True, "error": None}


def rules(result: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(f["rule"], f["action"]) for f in result["failures"]]


# -- figures ----------------------------------------------------------------------------------------


def test_figures_are_nearest_rank_per_phase_and_count_errors() -> None:
    samples = [[float(i) / 10, float(i + 1), True] for i in range(100)]  # before: 1..100 ms
    samples += [[15.0, 500.0, False], [19.99, 7.0, True]]                # during: a failure and a fast one
    got = figures(samples, PHASES_OF_TEN)
    assert got["before"] == {"count": 100, "p50": 51.0, "p99": 99.0, "max": 100.0, "errors": 0}
    # index round(0.5 x 1) = 0 (Python rounds halves to even): the fast one
    assert got["during"] == {"count": 2, "p50": 7.0, "p99": 500.0, "max": 500.0, "errors": 1}
    assert got["after"] == {"count": 0, "p50": None, "p99": None, "max": None, "errors": 0}


def test_a_sample_at_a_boundary_belongs_to_the_later_phase_and_the_end_is_inclusive() -> None:
    got = figures([[10.0, 1.0, True], [30.0, 2.0, True], [30.5, 3.0, True]], PHASES_OF_TEN)
    assert (got["before"]["count"], got["during"]["count"], got["after"]["count"]) == (0, 1, 1)


# -- the verdict's rules ----------------------------------------------------------------------------


def test_steady_latency_complete_uploads_pass() -> None:
    assert verdict(steady(50.0, 74.0), [GOOD_UPLOAD]) == {"pass": True, "failures": []}


def test_p99_during_over_one_and_a_half_times_before_fails() -> None:
    result = verdict(steady(40.0, 61.0), [GOOD_UPLOAD])
    assert not result["pass"]
    assert rules(result) == [("p99_regression", a) for a in ACTIONS]
    first = result["failures"][0]
    assert (first["phase"], first["value"], first["limit"]) == ("during", 61.0, 60.0)


def test_small_baselines_get_ten_milliseconds_of_slack() -> None:
    assert verdict(steady(4.0, 14.0), [GOOD_UPLOAD])["pass"]   # limit max(6, 14) = 14
    failed = verdict(steady(4.0, 14.5), [GOOD_UPLOAD])
    assert rules(failed) == [("p99_regression", a) for a in ACTIONS]
    assert failed["failures"][0]["limit"] == 14.0


def test_p99_of_a_hundred_milliseconds_fails_whatever_the_baseline() -> None:
    result = verdict(steady(90.0, 100.0), [GOOD_UPLOAD])  # within 1.5x, but not under 100 ms
    assert rules(result) == [("p99_ceiling", a) for a in ACTIONS]
    assert result["failures"][0]["limit"] == 100.0


def test_one_error_in_any_phase_fails_and_names_it() -> None:
    figures_ = steady(10.0, 10.0)
    figures_["chat_delivery"]["after"]["errors"] = 1
    result = verdict(figures_, [GOOD_UPLOAD])
    assert [(f["rule"], f["action"], f["phase"]) for f in result["failures"]] == [("errors", "chat_delivery", "after")]


def test_an_action_without_samples_during_the_uploads_cannot_pass() -> None:
    figures_ = steady(10.0, 10.0)
    figures_["react"]["during"] = {"count": 0, "p50": None, "p99": None, "max": None, "errors": 0}
    assert rules(verdict(figures_, [GOOD_UPLOAD])) == [("no_samples", "react")]


def test_an_incomplete_or_late_upload_fails() -> None:
    late = {**GOOD_UPLOAD, "user": "late", "good_enough": 15.5}
    never = {**GOOD_UPLOAD, "user": "never", "good_enough": None, "upgraded": None}
    broken = {**GOOD_UPLOAD, "user": "broken", "ok": False, "error": "upload: refused"}
    result = verdict(steady(10.0, 10.0), [GOOD_UPLOAD, late, never, broken])
    assert rules(result) == [("good_enough_late", None)] * 2 + [("upload_incomplete", None)]
    assert (result["failures"][0]["value"], result["failures"][0]["limit"]) == (3.5, 3.0)
    assert "broken" in result["failures"][2]["detail"]
    assert rules(verdict(steady(10.0, 10.0), [])) == [("upload_incomplete", None)]


def test_comparison_is_naive_p99_over_platform_p99() -> None:
    platform = {"actions": steady(10.0, 20.0)}
    naive = {"actions": steady(100.0, 4000.0)}
    got = comparison(platform, naive)
    assert got is not None
    assert got["timeline_page"] == {"platform_p99": 20.0, "naive_p99": 4000.0, "ratio": 200.0}
    assert comparison(platform, None) is None


# -- the people -------------------------------------------------------------------------------------


def test_the_mix_is_exact_over_every_ten_actions_and_seeded() -> None:
    config = model.PRESETS["beta"]
    one, again = model.Behaviour(3, config), model.Behaviour(3, config)
    drawn = [one.next_action() for _ in range(30)]
    assert drawn == [again.next_action() for _ in range(30)]
    for start in (0, 10, 20):
        deck = drawn[start:start + 10]
        assert sorted(deck) == sorted(model.DECK)
    assert drawn != [model.Behaviour(4, config).next_action() for _ in range(30)]
    pauses = [one.think() for _ in range(500)]
    assert min(pauses) >= config.think_s / 5 and max(pauses) <= config.think_s * 5
    assert 0.6 * config.think_s < sum(pauses) / len(pauses) < 1.4 * config.think_s


def test_everyone_has_friends_and_a_room() -> None:
    graph = model.follow_graph(23, 6, seed=7)
    assert graph == model.follow_graph(23, 6, seed=7)
    assert all(len(v) == 6 and i not in v and len(set(v)) == 6 for i, v in graph.items())
    rooms = model.room_groups(21, 5)
    assert sorted(m for r in rooms for m in r) == list(range(21)) and min(len(r) for r in rooms) >= 2
    assert set(model.cycle_order(model.PRESETS["beta"])) == set(range(2, 5))  # uploaders keep their socket


# -- the smoke run ----------------------------------------------------------------------------------


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@pytest.mark.slow
def test_smoke_run_through_the_real_entry(tmp_path: Path) -> None:
    out = tmp_path / "crash.json"
    # No AMARO_REDIS_URL / AMARO_DATABASE_URL: the cluster starts its own real Redis and PostgreSQL
    # (embedded, a couple of seconds), so its FLUSHDB and job streams touch no shared database.
    env = {k: v for k, v in os.environ.items() if k not in ("AMARO_REDIS_URL", "AMARO_DATABASE_URL")}
    done = subprocess.run([sys.executable, "-m", "loadtests", "crash", "--smoke", "--json", str(out),
                           "--clip-dir", str(tmp_path / "clips")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=240)
    assert out.exists(), done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(done.stdout) == result
    assert {"benchmark", "seed", "commit", "preset", "config", "started_at", "runs", "comparison"} <= set(result)
    assert (result["benchmark"], result["preset"], result["seed"]) == ("crash", "smoke", 24)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert result["commit"] == (head or "unknown")
    assert result["comparison"] is None and len(result["runs"]) == 1
    run = result["runs"][0]
    assert run["target"] == "platform"
    assert {"phases", "actions", "samples", "uploads", "box", "verdict"} <= set(run)

    phases = run["phases"]
    assert phases["before"][0] == 0 and phases["before"][1] == phases["during"][0]
    assert phases["during"][1] == phases["after"][0] and phases["after"][0] < phases["after"][1]
    for action in ACTIONS:
        samples = run["samples"][action]
        assert len({s[1] for s in samples}) > 1, f"{action}: every sample took the same time"
        for phase in PHASES:
            start, end = phases[phase]
            chosen = [s for s in samples if start <= s[0] < end or (phase == "after" and s[0] == end)]
            assert chosen, f"{action} has no sample {phase} the uploads"
            durations = [float(s[1]) for s in chosen]
            assert all(d > 0 for d in durations)
            assert run["actions"][action][phase] == {
                "count": len(chosen), "p50": round(nearest_rank(durations, 0.5), 2),
                "p99": round(nearest_rank(durations, 0.99), 2), "max": round(max(durations), 2),
                "errors": sum(1 for s in chosen if not s[2])}, f"{action} {phase}"

    [upload] = run["uploads"]
    assert upload["ok"], upload
    assert upload["bytes"] > 1_000_000
    assert upload["started"] <= upload["last_byte"] <= upload["good_enough"]
    seconds = upload["last_byte"] - upload["started"]
    assert upload["throughput_mbps"] == pytest.approx(upload["bytes"] * 8 / 1e6 / seconds, rel=0.01)
    assert upload["throughput_mbps"] <= result["config"]["uplink_mbps"] * 1.1  # paced to the uplink

    series = run["box"]["series"]
    assert run["box"]["interval_s"] > 0 and len(series) >= 10
    assert {"hub", "ingest", "worker", "generator", "postgres", "redis"} <= set(series[0]["cpu"])
    assert any(point["cpu"]["worker"] > 0 for point in series)  # the video was transcoded on the box
    assert all(point["rss_mb"]["hub"] > 0 for point in series)

    assert run["verdict"] == verdict(run["actions"], run["uploads"])
    assert done.returncode == (0 if run["verdict"]["pass"] else 1), done.stderr[-3000:]


def test_options_override_the_preset_and_keep_its_proportions() -> None:
    from loadtests.__main__ import main as _  # noqa: F401 - the crash command is registered there
    from loadtests.crash.run import add_arguments, configure

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    beta = configure(parser.parse_args(["--preset", "beta", "--duration", "210", "--uploads", "1", "--seed", "5"]))
    assert (beta.duration_s, beta.before_s, beta.after_s, beta.uploads, beta.seed) == (210, 22.5, 22.5, 1, 5)
    assert beta.during_cap_s == 165
    big = configure(parser.parse_args(["--preset", "1000", "--users", "300"]))
    assert (big.users, big.idle, big.active) == (300, 270, 30)
    assert configure(parser.parse_args(["--smoke"])).preset == "smoke"
    with pytest.raises(SystemExit):
        configure(parser.parse_args(["--users", "3", "--uploads", "4"]))
