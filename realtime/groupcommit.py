"""Group commit: concurrent durable writes of one node go to PostgreSQL together.

A ``GroupCommit`` takes items from any number of concurrent callers and hands them to its
``flush`` function in batches: the first item of a quiet period is flushed at the end of the
current loop tick (with whatever else arrived in that tick: no fixed sleep), and items that arrive
while a batch is being written wait for it to return and then go together in the next one, up to
``max_items``. Under load, a batch takes every send of one commit's duration; idle, a send waits
for nothing. One batch is in flight at a time, so batches are written (and their events published)
in the order they were formed, and each caller's items keep their submission order.

With ``window_s``, a batcher that formed a batch within the last 50 ms (it is busy) waits that
long before forming the next one after a pause, so the sends about to arrive join it: fewer, larger
transactions. An idle batcher never waits.

``flush`` returns one result per item, in order: a value, or an exception for that item alone.
If ``flush`` raises, every item of the batch fails with that exception (nothing was stored).

An optional second stage, ``after`` (publishing what a batch stored), runs before the batch's
callers get their results, strictly in batch order, and overlaps the next batch's ``flush``: the
database writes batch N+1 while Redis takes batch N. At most one ``after`` runs beside a ``flush``.
An ``after`` that raises is logged; the results stand (what ``flush`` stored is stored).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

from realtime.metrics import BATCH_ITEMS, COMMIT_SECONDS

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")

BUSY_S = 0.05  # a batch formed this recently means "busy": the window applies

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]
After = Callable[[Sequence[T], Sequence[R | BaseException]], Awaitable[None]]


class GroupCommit(Generic[T, R]):
    __slots__ = ("_after", "_finishing", "_flush", "_last", "_metric", "_pending", "_seconds", "_task", "max_items",
                 "name", "window_s")

    def __init__(self, name: str, flush: Flush[T, R], *, max_items: int = 256, after: After[T, R] | None = None,
                 window_s: float = 0.0) -> None:
        self.name = name
        self.max_items = max(1, max_items)
        self.window_s = window_s
        self._last = -1.0  # loop time the last batch was formed
        self._flush = flush
        self._after = after
        self._finishing: asyncio.Task[None] | None = None
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self._metric = BATCH_ITEMS.labels(name)
        self._seconds = COMMIT_SECONDS.labels(name)

    def __len__(self) -> int:
        return len(self._pending)

    async def submit(self, item: T) -> R:
        """Write ``item`` with the next batch and return its result (or raise its error). A
        cancelled caller does not take its item out: it may still be stored (like a send whose ack
        was lost; the client's retry with the same id finds it)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"group-commit-{self.name}")
        return await asyncio.shield(future)

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # the end of this tick: sends that arrived with it go along
            loop = asyncio.get_running_loop()
            if (self.window_s > 0 and len(self._pending) < self.max_items
                    and loop.time() - self._last < BUSY_S):
                # Busy, between two batches: a short window gathers the sends about to arrive
                # (fewer, larger transactions cost far less CPU). Idle: no wait at all.
                await asyncio.sleep(self.window_s)
            while self._pending:
                self._last = loop.time()
                batch = self._pending[:self.max_items]
                del self._pending[:self.max_items]
                self._metric.observe(len(batch))
                try:
                    started = loop.time()
                    results: Sequence[R | BaseException] = await self._flush([item for item, _ in batch])
                    self._seconds.observe(loop.time() - started)
                    if len(results) != len(batch):
                        raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
                except Exception as exc:
                    results = [exc] * len(batch)
                except BaseException:  # cancelled (node stopping): the callers must not hang
                    for _, future in batch:
                        if not future.done():
                            future.cancel()
                    raise
                futures = [future for _, future in batch]
                if self._after is None:
                    _resolve(futures, results)
                    continue
                previous = self._finishing
                items = [item for item, _ in batch]
                self._finishing = asyncio.create_task(self._finish(previous, items, futures, results))
                if previous is not None:  # at most one ``after`` beside the next ``flush``
                    await asyncio.shield(previous)
        finally:
            self._task = None
            if self._pending:  # cancelled with items left: they fail rather than hang
                pending, self._pending = self._pending, []
                for _, future in pending:
                    if not future.done():
                        future.cancel()

    async def _finish(self, previous: asyncio.Task[None] | None, items: list[T], futures: list[asyncio.Future[R]],
                      results: Sequence[R | BaseException]) -> None:
        try:
            if previous is not None:
                await asyncio.shield(previous)  # batch order
            assert self._after is not None
            await self._after(items, results)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("group_commit_after_failed", writer=self.name, error=type(exc).__name__)
        finally:
            _resolve(futures, results)

    async def close(self) -> None:
        for task in (self._task, self._finishing):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def _resolve(futures: Sequence[asyncio.Future[R]], results: Sequence[R | BaseException]) -> None:
    for future, result in zip(futures, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
