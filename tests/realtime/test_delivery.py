"""The hub's delivery core without sockets: routed events out of order, duplicates, holes that only
PostgreSQL can fill. Real Redis and PostgreSQL; the socket is a list."""

from __future__ import annotations

import asyncio
import time
import uuid

from amaro.services import Services
from feed.access import Access
from protocol import codec
from protocol import frames as F
from protocol.session import ServerSession
from realtime import keys
from realtime.broker import RedisBroker, Routed
from realtime.channels import Permissions
from realtime.chat import ChatStore
from realtime.config import HubConfig
from realtime.connection import Connection, Subscription
from realtime.hub import Hub
from realtime.presence import Presence
from realtime.reactions import ReactionStore
from realtime.store import ChannelStore, Stored


class ListTransport:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def try_write(self, frames: list[bytes]) -> bool:
        self.frames.extend(frames)
        return True

    async def send_many(self, frames: list[bytes]) -> None:
        self.frames.extend(frames)

    async def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass

    def offsets(self) -> list[int]:
        out = []
        for data in self.frames:
            frame = codec.decode_server(data, 1 << 20)
            assert isinstance(frame, F.Event)
            out.append(frame.offset)
        return out


def make_hub(services: Services, node_id: str) -> Hub:
    broker = RedisBroker(services.redis, node_id)
    return Hub(
        HubConfig(node_id=node_id, max_frame=65536, ping_interval_s=25.0), redis=services.redis, broker=broker,
        presence=Presence(services.redis), store=ChannelStore(services.db), chat=ChatStore(services.db),
        reactions=ReactionStore(services.db), permissions=Permissions(Access(services.db)),
    )


async def test_out_of_order_duplicates_and_holes_are_delivered_in_order_once(services: Services) -> None:
    hub = make_hub(services, f"deliv-{uuid.uuid4().hex[:6]}")
    store, publisher = hub.store, RedisBroker(services.redis, "publisher")
    ch = f"post:{uuid.uuid4()}"

    async def append(i: int, *, publish: bool = True) -> Stored:
        def build(epoch: str, offset: int, mid: str, ts: int) -> F.Frame:
            return F.Event(ch=ch, epoch=epoch, offset=offset, mid=mid, sender="s", data=i, ts=ts)

        stored = await store.append(ch, "event", "s", None, build)
        if publish:
            await publisher.publish(ch, stored.epoch, stored.offset, stored.frame, "event", store.range)
        return stored

    def routed(s: Stored) -> Routed:
        return Routed(ch, s.offset, "event", int(time.time() * 1000), s.frame)

    for i in range(3):
        await append(i)
    transport = ListTransport()
    conn = Connection(hub, transport, ServerSession(), "c1", "u1")
    lc = hub.index.get_or_create(ch)
    await hub._activate(lc)
    assert lc.last == 3
    lc.subs[conn.id] = Subscription(conn, ch, False, offset=3, buffer=None)

    e4, e5, e6 = await append(4), await append(5), await append(6)
    await hub.deliver(routed(e6))  # 4 and 5 were routed late: refilled from the Redis stream first
    await hub.deliver(routed(e4))
    await hub.deliver(routed(e5))
    await asyncio.sleep(0)  # the flush tick
    assert transport.offsets() == [4, 5, 6]

    # Redis lost the channel and two events were stored while it was down: PostgreSQL fills the hole.
    await services.redis.delete(keys.channel_stream(ch), keys.channel_meta(ch))
    await append(7, publish=False)
    await append(8, publish=False)
    e9 = await append(9)
    await hub.deliver(routed(e9))
    await hub.deliver(routed(e9))
    await asyncio.sleep(0)
    assert transport.offsets() == [4, 5, 6, 7, 8, 9]

    # A subscriber still resuming gets live durable events buffered, not written.
    resuming = Subscription(conn, ch, False, offset=9)
    lc.subs["c2"] = resuming
    e10 = await append(10)
    await hub.deliver(routed(e10))
    assert resuming.buffer == [(10, e10.frame)]


async def test_a_dead_redis_is_answered_unavailable_not_internal(services: Services) -> None:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from protocol.errors import ErrorCode
    from tests.conftest import free_port
    from tests.realtime.conftest import make_user

    dead = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    broker = RedisBroker(dead, "dead-node")
    hub = Hub(
        HubConfig(node_id="dead-node", max_frame=65536, ping_interval_s=25.0), redis=dead, broker=broker,
        presence=Presence(dead), store=ChannelStore(services.db), chat=ChatStore(services.db),
        reactions=ReactionStore(services.db), permissions=Permissions(Access(services.db)),
    )
    user = await make_user(services.db)
    session = ServerSession()
    session.receive_frame(F.Hello(token="t"))
    session.accept(user=user, session="s", node="dead-node", ping_interval_ms=25000)
    transport = ListTransport()
    conn = await hub.connect(transport, session, "c1", user)  # presence join fails: logged, not raised
    await hub.receive(conn, codec.encode(F.Subscribe(id=7, ch=f"user:{user}")))
    await asyncio.sleep(0)
    answer = codec.decode_server(transport.frames[-1], 1 << 20)
    assert isinstance(answer, F.Error) and answer.code == ErrorCode.UNAVAILABLE and answer.id == 7
    assert not session.pending  # the refused sub is forgotten: the client may retry it
    await dead.aclose()
