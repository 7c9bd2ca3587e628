"""The node's durable writers: group commit of chat sends (``ChatWriter``) and of every other
durable event (``EventWriter``).

A batch is one PostgreSQL transaction (``ChatStore.send_batch``: one round trip), then one
pipelined Redis round trip appending every new message to its channel stream and one routing them
to the nodes that care (``RedisBroker.publish_many``); only then does each sender get its result
(the hub sends the ack). Acknowledged therefore still means committed in PostgreSQL. The publish
of batch N overlaps the transaction of batch N+1; publishes go out in batch order.

The writer keeps one pooled connection while batches keep coming (a pool release costs a reset
round trip), and gives it back after a second without sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import structlog

from protocol.frames import ChatMessage
from realtime.broker import Publication, RedisBroker
from realtime.chat import ChatStore, Outgoing, Sent
from realtime.groupcommit import GroupCommit
from realtime.store import ITEM_ERRORS, Appending, ChannelStore, Stored, append_batch

log = structlog.get_logger(__name__)

LINGER_S = 1.0  # an idle writer gives its connection back after this long


class ChatWriter:
    def __init__(self, chat: ChatStore, broker: RedisBroker, store: ChannelStore, *, max_items: int = 256,
                 window_s: float = 0.0) -> None:
        self.chat = chat
        self.broker = broker
        self.store = store
        self.batcher: GroupCommit[Outgoing, Sent] = GroupCommit("chat", self._flush, max_items=max_items,
                                                                after=self._publish, window_s=window_s)
        self._conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record] | None = None
        self._release: asyncio.TimerHandle | None = None

    async def send(self, item: Outgoing) -> Sent:
        """Store ``item`` with the next batch; returns once it is committed and published."""
        return await self.batcher.submit(item)

    async def _flush(self, items: Sequence[Outgoing]) -> list[Sent | BaseException]:
        if self._release is not None:
            self._release.cancel()
            self._release = None
        if self._conn is None:
            self._conn = await self.chat.db.acquire()
        try:
            results = await self.chat.send_batch(items, self._conn)  # type: ignore[arg-type]
        except BaseException:
            await self._give_back()  # a broken connection is replaced by the pool
            raise
        finally:
            if self._conn is not None:
                self._release = asyncio.get_running_loop().call_later(LINGER_S, self._linger_over)
        return results

    async def _publish(self, items: Sequence[Outgoing], results: Sequence[Sent | BaseException]) -> None:
        """The second stage, in batch order, overlapping the next batch's transaction."""
        events = [Publication(r.message.ch, r.message.epoch, r.message.offset, r.frame, ChatMessage.TYPE)
                  for r in results if isinstance(r, Sent) and r.created]
        if events:
            try:
                await self.broker.publish_many(events, self.store.range)
            except Exception as exc:  # durable already; the next publish or a resume fills it in
                log.warning("publish_deferred", events=len(events), error=type(exc).__name__)

    def _linger_over(self) -> None:
        self._release = None
        if self._conn is not None and not len(self.batcher):
            asyncio.get_running_loop().create_task(self._give_back())

    async def _give_back(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await self.chat.db.release(conn)
            except Exception as exc:
                log.warning("writer_release_failed", error=type(exc).__name__)

    async def close(self) -> None:
        await self.batcher.close()
        if self._release is not None:
            self._release.cancel()
            self._release = None
        await self._give_back()


class EventWriter:
    """Group commit of durable events of non-room channels (``pub`` frames, feed updates, media
    events): one transaction per batch (``store.append_batch``), then one pipelined publish, then
    the callers' results. A batch refused for one item's data is retried item by item."""

    def __init__(self, store: ChannelStore, broker: RedisBroker, *, max_items: int = 256,
                 window_s: float = 0.0) -> None:
        self.store = store
        self.broker = broker
        self.batcher: GroupCommit[Appending, Stored] = GroupCommit(
            "events", self._flush, max_items=max_items, after=self._publish, window_s=window_s)

    async def append(self, item: Appending) -> Stored:
        """Store ``item`` with the next batch; returns once it is committed and published."""
        return await self.batcher.submit(item)

    async def _flush(self, items: Sequence[Appending]) -> list[Stored | BaseException]:
        async with self.store.db.acquire() as conn:
            try:
                return await append_batch(conn, items)
            except ITEM_ERRORS:
                if len(items) == 1:
                    raise
            out: list[Stored | BaseException] = []
            for item in items:
                try:
                    out.extend(await append_batch(conn, [item]))
                except ITEM_ERRORS as exc:
                    out.append(exc)
            return out

    async def _publish(self, items: Sequence[Appending], results: Sequence[Stored | BaseException]) -> None:
        events = [Publication(r.channel, r.epoch, r.offset, r.frame, it.frame_type)
                  for it, r in zip(items, results, strict=True) if isinstance(r, Stored) and r.created]
        if events:
            try:
                await self.broker.publish_many(events, self.store.range)
            except Exception as exc:  # durable already; the next publish or a resume fills it in
                log.warning("publish_deferred", events=len(events), error=type(exc).__name__)

    async def close(self) -> None:
        await self.batcher.close()

