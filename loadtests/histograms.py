"""What the nodes' Prometheus histograms saw between two moments of a benchmark.

A benchmark scrapes ``/metrics`` at the start and the end of a phase; the difference of the
cumulative buckets is what happened in the phase. Quantiles come out as the upper bound of the
bucket holding them ("at most"), which is as precise as the buckets are (realtime/metrics.py keeps
them fine below 10 ms).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

#: upper bound in seconds (``inf`` last) -> cumulative count
Buckets = dict[float, float]

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str, name: str) -> dict[str, Buckets]:
    """The cumulative buckets of histogram ``name`` in a Prometheus text page, by label set
    (``'op=publish_many'``; ``''`` for an unlabelled histogram)."""
    out: dict[str, Buckets] = {}
    prefix = f"{name}_bucket{{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        labels_text, _, value = line[len(prefix):].rpartition("} ")
        labels = dict(_LABEL.findall(labels_text))
        bound = labels.pop("le", None)
        if bound is None:
            continue
        key = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        out.setdefault(key, {})[float(bound)] = float(value)
    return out


async def scrape(http: httpx.AsyncClient, url: str, names: Sequence[str]) -> dict[str, dict[str, Buckets]]:
    """Every histogram in ``names`` from one node's ``/metrics`` (``url`` is its base URL)."""
    text = (await http.get(f"{url}/metrics", timeout=5)).text
    return {name: parse(text, name) for name in names}


def difference(before: Buckets, after: Buckets) -> Buckets:
    return {bound: count - before.get(bound, 0.0) for bound, count in sorted(after.items())}


def combined(parts: Sequence[Buckets]) -> Buckets:
    """Buckets of several nodes added up (they share bounds: the same code made them)."""
    out: Buckets = {}
    for part in parts:
        for bound, count in part.items():
            out[bound] = out.get(bound, 0.0) + count
    return dict(sorted(out.items()))


def summary(delta: Buckets) -> dict[str, Any]:
    """Count, the buckets holding the median and the 99th percentile, and how many took longer
    than 5 and 10 ms."""
    total = delta.get(float("inf"), 0.0)
    if not total:
        return {"count": 0}

    def at_most_ms(q: float) -> float | None:
        bound = next(b for b, n in delta.items() if n >= q * total)
        return None if bound == float("inf") else round(bound * 1000, 3)

    def over(seconds: float) -> int:
        within = max((n for b, n in delta.items() if b <= seconds), default=0.0)
        return int(total - within)

    return {"count": int(total), "p50_at_most_ms": at_most_ms(0.5), "p99_at_most_ms": at_most_ms(0.99),
            "over_5ms": over(0.005), "over_10ms": over(0.01)}


class StageMeter:
    """Chosen hub histograms between ``start()`` and ``stop()``, added up over the nodes.

    ``stages`` names each figure: ``{"commit": ("amaro_hub_commit_seconds", "writer=chat")}``.
    """

    def __init__(self, urls: Sequence[str], stages: Mapping[str, tuple[str, str]]) -> None:
        self.urls = list(urls)
        self.stages = dict(stages)
        self._names = sorted({name for name, _ in self.stages.values()})
        self._before: list[dict[str, dict[str, Buckets]]] = []

    async def _scrape_all(self) -> list[dict[str, dict[str, Buckets]]]:
        async with httpx.AsyncClient() as http:
            return [await scrape(http, url, self._names) for url in self.urls]

    async def start(self) -> None:
        self._before = await self._scrape_all()

    async def stop(self) -> dict[str, dict[str, Any]]:
        after = await self._scrape_all()
        out: dict[str, dict[str, Any]] = {}
        for stage, (name, labels) in self.stages.items():
            deltas = [difference(b[name].get(labels, {}), a[name].get(labels, {}))
                      for b, a in zip(self._before, after, strict=True)]
            out[stage] = summary(combined(deltas))
        return out
