"""A socket that stops reading is cut off with a resume hint; the others do not notice."""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis

from protocol import frames as F
from realtime.broker import RedisBroker
from realtime.metrics import DISCONNECTS
from realtime.store import ChannelStore
from tests.conftest import RunningNode
from tests.realtime.conftest import make_post, make_user
from tests.realtime.wsclient import Client

EVENTS = 300
BLOB = "x" * 48_000  # ~48 KB per event: 300 events are ~14 MB, far past socket buffers and the outbox


async def test_slow_reader_is_disconnected_and_others_keep_their_latency(
    running_node: RunningNode, db: asyncpg.Pool, redis: aioredis.Redis,
) -> None:
    author, fast_user, slow_user = await make_user(db), await make_user(db), await make_user(db)
    post = await make_post(db, author)
    ch = f"post:{post}"
    fast = await Client.connect(running_node.ws_url, fast_user)
    # A tiny receive window, and once subscribed this client reads nothing more.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect(("127.0.0.1", urlsplit(running_node.ws_url).port))
    slow = await Client.connect(running_node.ws_url, slow_user, sock=sock)
    sub = await slow.subscribe(ch)
    assert slow.conn.wire is not None
    slow.conn.wire.pause_reading()
    await fast.subscribe(ch)
    before = DISCONNECTS.labels("slow_consumer")._value.get()

    store, broker = ChannelStore(db), RedisBroker(redis, "test-publisher")

    async def publish(i: int) -> None:
        def build(epoch: str, offset: int, mid: str, ts: int) -> F.Frame:
            return F.Event(ch=ch, epoch=epoch, offset=offset, mid=mid, sender=author,
                           data={"i": i, "sent": time.time(), "blob": BLOB}, ts=ts)

        stored = await store.append(ch, "event", author, None, build)
        await broker.publish(ch, stored.epoch, stored.offset, stored.frame, F.Event.TYPE, store.range)

    async def producer() -> None:
        for i in range(EVENTS):
            await publish(i)

    latencies: list[float] = []

    async def consumer() -> None:
        while len(latencies) < EVENTS:
            event = await fast.expect(F.Event, timeout=20)
            latencies.append(time.time() - event.data["sent"])

    await asyncio.wait_for(asyncio.gather(producer(), consumer()), 60)
    # Every event reached the reading client, promptly, while the other one was stuck.
    latencies.sort()
    assert len(latencies) == EVENTS
    assert latencies[int(EVENTS * 0.99) - 1] < 1.0, latencies[-10:]

    # The stuck client was disconnected; reading what reached it ends with the resume hint.
    slow.conn.wire.resume_reading()  # late: whatever is still there

    async def drain_slow() -> F.Disconnect | None:
        try:
            while True:
                frame = await slow.recv(timeout=20)
                if isinstance(frame, F.Disconnect):
                    return frame
        except ConnectionError:
            return None

    hint = await asyncio.wait_for(drain_slow(), 15)
    assert DISCONNECTS.labels("slow_consumer")._value.get() == before + 1
    # A client that reads nothing cannot be told anything: it is cut off (1006). One that reads, late,
    # finds the hint: ``disconnect`` 4008 with reconnect=True, then the close.
    if hint is not None:
        assert hint.code == 4008 and hint.reconnect
    assert slow.close_code in (4008, 1006)
    # It resumes from its last offset and gets everything it missed.
    last = max((f.offset for f in slow.seen if isinstance(f, F.Event)), default=sub.offset)
    again = await Client.connect(running_node.ws_url, slow_user)
    resumed = await again.subscribe(ch, epoch=sub.epoch, offset=last)
    assert resumed.recovered
    missed = [await again.expect(F.Event) for _ in range(resumed.offset - last)]
    assert [e.offset for e in missed] == list(range(last + 1, resumed.offset + 1))
    for client in (fast, again):
        await client.close()
