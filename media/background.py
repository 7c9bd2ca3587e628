"""A background lane for upload I/O: threads at the lowest CPU and disk priority.

Writing parts to a local disk (and flushing them) competes with PostgreSQL's commits and with the
hubs' event loops on the same machine; chat must win. The store's writer threads therefore lower
their own priority when they start (``amaro.infra.cpus.lower_thread_priority``: SCHED_BATCH at nice 19
with the longest slice, so a woken hub preempts them at once, and the idle I/O class). All of it is
per thread on Linux, so the rest of the process is untouched. Elsewhere, or where
the calls are refused, the lane is a plain pool.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import structlog

from amaro.infra.cpus import lower_thread_priority

log = structlog.get_logger(__name__)


def _init_thread() -> None:
    applied = lower_thread_priority()
    log.debug("background_io_thread", applied=applied)


def background_executor(workers: int = 2, name: str = "upload-io") -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=_init_thread)
