"""Caches in front of PostgreSQL: the database is the source of truth, not the first stop.

A ``Cache`` has two tiers: this node's in-process LRU (bounded in items, each entry trusted for at
most ``local_ttl_s``) and a shared one in Redis (msgpack, ``ttl_s``). A read tries them in that
order and loads from PostgreSQL only on a miss in both; the value then fills both.

Single flight: concurrent readers of one key on a node share one load; across nodes the first
takes a short Redis lock and the others wait for the value it stores (briefly, then load
themselves rather than hang on a node that died), so a thousand readers of a cold hot post cost
one query. A missing row is cached too, for a short while, so a burst of reads of an unknown id
does not reach the database either.

Invalidation is driven by events: a write calls ``invalidate``, which deletes the shared entry and
announces the key on a Redis channel every node listens to (``Invalidations``); each node drops
its local copy at once. A node that missed an announcement (a Redis blip) serves a stale entry for
at most ``local_ttl_s``.

A load that raced an invalidation (it read the row before the write committed, and would store
what it read after the write invalidated the key) stores nothing: ``invalidate`` bumps the key's
generation in Redis, and a load stores its value only if the generation it saw before loading is
still the current one (a script, atomically). Likewise a node does not keep a value whose key was
dropped while it was loading it.

``get_many`` reads many keys at once (a timeline page): the node's tier, then one ``MGET``, then
one batch load of what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import msgpack
import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

REQUESTS = Counter("amaro_feed_cache_requests_total", "Cache lookups by cache, tier and result",
                   ["cache", "tier", "result"])
LOADS = Counter("amaro_feed_cache_loads_total", "Loads from PostgreSQL after a miss in both tiers", ["cache"])
CHANNEL = "feed:cache:invalidate"
_ABSENT = b"\xc0"  # msgpack nil: the row does not exist
_ABSENT_TTL_S = 5
_LOCK_MS = 2000
_WAIT_STEP_S = 0.01
_GENERATION_TTL_S = 600  # longer than any load: a load that began before an invalidation sees it
#: Store a loaded value only if the key's generation is still the one seen before loading.
_STORE_IF_CURRENT = """
local gen = redis.call('GET', KEYS[2]) or ''
if gen ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

LoadMany = Callable[[list[str]], Awaitable[Mapping[str, Any]]]


class Cache:
    def __init__(self, redis: aioredis.Redis, name: str, *, local_items: int = 20_000, local_ttl_s: float = 30.0,
                 ttl_s: int = 3600) -> None:
        self.redis = redis
        self.name = name
        self.local_items = local_items
        self.local_ttl_s = local_ttl_s
        self.ttl_s = ttl_s
        self._local: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._flights: dict[str, asyncio.Future[Any]] = {}
        self._stale: set[str] = set()  # keys dropped while this node was loading them
        self._store = redis.register_script(_STORE_IF_CURRENT)
        self._hit_local = REQUESTS.labels(name, "local", "hit")
        self._hit_shared = REQUESTS.labels(name, "redis", "hit")
        self._miss = REQUESTS.labels(name, "redis", "miss")
        self._loads = LOADS.labels(name)

    def _key(self, key: str) -> str:
        return f"cache:{{{self.name}}}:{key}"

    def _gen(self, key: str) -> str:
        return f"cache:{{{self.name}}}:{key}:gen"

    async def get(self, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        """The value of ``key`` (None when ``load`` finds nothing)."""
        entry = self._local.get(key)
        if entry is not None and entry[0] > time.monotonic():
            self._local.move_to_end(key)
            self._hit_local.inc()
            return entry[1]
        flight = self._flights.get(key)
        if flight is not None:
            self._hit_local.inc()
            return await asyncio.shield(flight)
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            value = await self._fetch(key, load)
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: waiters re-raise it
            self._stale.discard(key)
            raise
        else:
            flight.set_result(value)
            self._settle(key, value)
            return value
        finally:
            self._flights.pop(key, None)

    def _settle(self, key: str, value: Any) -> None:
        """A load of ``key`` ended: keep its value unless the key was dropped meanwhile."""
        if key in self._stale:
            self._stale.discard(key)
        else:
            self._remember(key, value)

    async def _fetch(self, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        shared = self._key(key)
        try:
            raw, gen = await self.redis.mget(shared, self._gen(key))
        except RedisError as exc:  # the shared tier is a help, never a dependency
            log.warning("cache_redis_failed", cache=self.name, error=type(exc).__name__)
            self._loads.inc()
            return await load()
        if raw is not None:
            self._hit_shared.inc()
            return msgpack.unpackb(raw)
        self._miss.inc()
        lock = f"{shared}:lock"
        with contextlib.suppress(RedisError):
            if not await self.redis.set(lock, b"1", nx=True, px=_LOCK_MS):
                value = await self._wait_for(shared)
                if value is not _ABSENT:
                    return value
        self._loads.inc()
        value = await load()
        with contextlib.suppress(RedisError):
            await self._put(key, gen, value)
            await self.redis.delete(lock)
        return value

    async def _put(self, key: str, gen: bytes | str | None, value: Any, client: Any = None) -> None:
        await self._store(keys=[self._key(key), self._gen(key)],
                          args=[gen or b"", msgpack.packb(value), self.ttl_s if value is not None else _ABSENT_TTL_S],
                          client=client)

    async def get_many(self, keys: Iterable[str], load_many: LoadMany) -> dict[str, Any]:
        """The values of ``keys`` (None for those ``load_many`` does not find): this node's tier,
        then Redis in one round trip, then one ``load_many`` of the keys missing in both, which
        answers a map of those it found. Keys another reader of this node is loading are awaited."""
        out: dict[str, Any] = {}
        waits: list[tuple[str, asyncio.Future[Any]]] = []
        missing: list[str] = []
        now = time.monotonic()
        for key in dict.fromkeys(keys):
            entry = self._local.get(key)
            if entry is not None and entry[0] > now:
                self._local.move_to_end(key)
                self._hit_local.inc()
                out[key] = entry[1]
            elif key in self._flights:
                self._hit_local.inc()
                waits.append((key, self._flights[key]))
            else:
                missing.append(key)
        if missing:
            loop = asyncio.get_running_loop()
            flights = {key: loop.create_future() for key in missing}
            self._flights.update(flights)
            try:
                found = await self._fetch_many(missing, load_many)
            except BaseException as exc:
                for key, flight in flights.items():
                    flight.set_exception(exc)
                    flight.exception()
                    self._stale.discard(key)
                raise
            else:
                for key, flight in flights.items():
                    flight.set_result(found.get(key))
                    self._settle(key, found.get(key))
                out.update(found)
            finally:
                for key in missing:
                    self._flights.pop(key, None)
        for key, flight in waits:
            out[key] = await asyncio.shield(flight)
        return out

    async def _fetch_many(self, keys: Sequence[str], load_many: LoadMany) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            raw = await self.redis.mget([k for key in keys for k in (self._key(key), self._gen(key))])
        except RedisError as exc:
            log.warning("cache_redis_failed", cache=self.name, error=type(exc).__name__)
            self._loads.inc()
            loaded = await load_many(list(keys))
            return {key: loaded.get(key) for key in keys}
        gens: dict[str, bytes | str | None] = {}
        for i, key in enumerate(keys):
            value, gen = raw[2 * i], raw[2 * i + 1]
            if value is not None:
                self._hit_shared.inc()
                out[key] = msgpack.unpackb(value)
            else:
                self._miss.inc()
                gens[key] = gen
        if gens:
            self._loads.inc()
            loaded = await load_many(list(gens))
            for key in gens:
                out[key] = loaded.get(key)
            with contextlib.suppress(RedisError):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key, gen in gens.items():
                        await self._put(key, gen, out[key], pipe)
                    await pipe.execute()
        return out

    async def _wait_for(self, shared: str) -> Any:
        """Another node is loading ``shared``: its value, or ``_ABSENT`` if it did not come in time."""
        deadline = time.monotonic() + _LOCK_MS / 1000
        while time.monotonic() < deadline:
            await asyncio.sleep(_WAIT_STEP_S)
            raw = await self.redis.get(shared)
            if raw is not None:
                self._hit_shared.inc()
                return msgpack.unpackb(raw)
        return _ABSENT

    def _remember(self, key: str, value: Any) -> None:
        self._local[key] = (time.monotonic() + self.local_ttl_s, value)
        self._local.move_to_end(key)
        while len(self._local) > self.local_items:
            self._local.popitem(last=False)

    def drop_local(self, key: str) -> None:
        self._local.pop(key, None)
        if key in self._flights:
            self._stale.add(key)

    async def invalidate(self, *keys: str) -> None:
        """``keys`` changed: delete the shared entries, move their generations on (a load that
        began before stores nothing) and tell every node to drop its copies."""
        if not keys:
            return
        for key in keys:
            self.drop_local(key)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.delete(self._key(key))
                    pipe.incr(self._gen(key))
                    pipe.expire(self._gen(key), _GENERATION_TTL_S)
                pipe.publish(CHANNEL, msgpack.packb([self.name, list(keys)]))
                await pipe.execute()
        except RedisError as exc:
            log.warning("cache_invalidate_failed", cache=self.name, error=type(exc).__name__)


class Invalidations:
    """Listens on the invalidation channel for this node's caches (one connection per node)."""

    def __init__(self, redis: aioredis.Redis, caches: list[Cache]) -> None:
        self.redis = redis
        self.caches = {c.name: c for c in caches}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="feed-cache-invalidations")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                self.ready.set()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    name, keys = msgpack.unpackb(message["data"])
                    cache = self.caches.get(name)
                    if cache is not None:
                        for key in keys:
                            cache.drop_local(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: entries expire by their TTL meanwhile
                log.warning("cache_invalidations_lost", error=type(exc).__name__)
                self.ready.clear()
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
