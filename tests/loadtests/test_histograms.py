"""Reading phase figures off real Prometheus exposition text (prometheus_client's own output)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from loadtests.histograms import combined, difference, parse, summary

BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025)


def page(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_a_phase_is_the_difference_of_two_scrapes_by_label_set() -> None:
    registry = CollectorRegistry()
    timed = Histogram("stage_seconds", "test", ["op"], buckets=BUCKETS, registry=registry)
    plain = Histogram("lag_seconds", "test", buckets=BUCKETS, registry=registry)
    for _ in range(50):
        timed.labels("publish").observe(0.0004)  # before the phase: must not count
    plain.observe(0.2)
    before = page(registry)
    for _ in range(98):
        timed.labels("publish").observe(0.0015)
    timed.labels("publish").observe(0.007)
    timed.labels("publish").observe(0.02)
    timed.labels("other").observe(0.02)
    after = page(registry)

    phase = difference(parse(before, "stage_seconds")["op=publish"], parse(after, "stage_seconds")["op=publish"])
    assert summary(phase) == {"count": 100, "p50_at_most_ms": 2.0, "p99_at_most_ms": 10.0,
                              "over_5ms": 2, "over_10ms": 1}
    assert set(parse(after, "stage_seconds")) == {"op=publish", "op=other"}
    assert parse(after, "lag_seconds")[""][float("inf")] == 1  # an unlabelled histogram
    assert summary(difference(parse(before, "lag_seconds")[""], parse(after, "lag_seconds")[""])) == {"count": 0}


def test_nodes_add_up_and_a_tail_past_the_last_bucket_has_no_bound() -> None:
    registry_a, registry_b = CollectorRegistry(), CollectorRegistry()
    a = Histogram("commit_seconds", "test", buckets=BUCKETS, registry=registry_a)
    b = Histogram("commit_seconds", "test", buckets=BUCKETS, registry=registry_b)
    a.observe(0.0005)
    for _ in range(3):
        b.observe(1.0)  # beyond every bucket
    both = combined([parse(page(registry_a), "commit_seconds")[""], parse(page(registry_b), "commit_seconds")[""]])
    assert both[float("inf")] == 4
    assert summary(both) == {"count": 4, "p50_at_most_ms": None, "p99_at_most_ms": None,
                             "over_5ms": 3, "over_10ms": 3}
