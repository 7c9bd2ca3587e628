"""Acceptance: two real hub node processes (``python -m amaro hub``) on one Redis and one
PostgreSQL. Users on different nodes chat, see presence and typing, react; then one node is
SIGKILLed and its users resume on the other without losing or duplicating a message."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from amaro.services import Services
from amaro.settings import Settings
from feed.rooms import create_room
from protocol import frames as F
from tests.conftest import free_port, node_env, wait_answering, with_node
from tests.realtime.conftest import follow, make_user
from tests.realtime.wsclient import Client

pytestmark = pytest.mark.slow

PRESENCE_TTL_S = 3.0


@dataclass
class NodeProcess:
    node_id: str
    port: int
    ws_port: int
    process: subprocess.Popen[bytes]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


async def start_node(settings: Settings, node_id: str, tmp: str) -> NodeProcess:
    port, ws_port = free_port(), free_port()
    node_settings = with_node(settings, node_id=node_id, port=port, ws_port=ws_port, data_dir=Path(tmp),
                              log_format="console", log_level="warning")
    env = node_env(
        node_settings,
        AMARO_DRAIN_TIMEOUT="3",
        # Short presence TTL so the dead node's users expire quickly in the test.
        AMARO_HUB_PRESENCE_TTL=str(PRESENCE_TTL_S),
        AMARO_HUB_PRESENCE_HEARTBEAT="0.5",
    )
    log = open(os.path.join(tmp, f"{node_id}.log"), "wb")
    process = subprocess.Popen([sys.executable, "-m", "amaro", "hub"], env=env, stdout=log, stderr=log)
    node = NodeProcess(node_id, port, ws_port, process)
    try:
        await wait_answering(process, f"http://127.0.0.1:{port}/healthz", lambda: f"node {node_id}")
    except RuntimeError:
        node.kill()
        raise
    return node


@pytest_asyncio.fixture(loop_scope="session")
async def two_nodes(settings: Settings, services: Services,
                    tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[NodeProcess, NodeProcess]]:
    tmp = str(tmp_path_factory.mktemp("cluster"))
    a, b = await asyncio.gather(start_node(settings, "it-a", tmp), start_node(settings, "it-b", tmp))
    try:
        yield a, b
    finally:
        for node in (a, b):
            if node.process.poll() is None:
                node.process.terminate()
        for node in (a, b):
            try:
                node.process.wait(15)
            except subprocess.TimeoutExpired:
                node.kill()


async def test_two_nodes_chat_presence_typing_reactions_and_failover(
    two_nodes: tuple[NodeProcess, NodeProcess], db: asyncpg.Pool,
) -> None:
    node_a, node_b = two_nodes
    alice, bob, carol = await make_user(db), await make_user(db), await make_user(db)
    for x, y in ((alice, bob), (bob, alice), (bob, carol)):
        await follow(db, x, y)
    room = await create_room(db, alice, [bob, carol])
    ch = f"room:{room}"

    ca = await Client.connect(node_a.ws_url, alice)
    cc = await Client.connect(node_a.ws_url, carol)  # stays on node A until it dies
    cb = await Client.connect(node_b.ws_url, bob)
    assert (ca.welcome.node, cb.welcome.node) == ("it-a", "it-b")

    await cb.subscribe(f"online:{carol}")
    snap = await cb.expect(F.PresenceSnapshot, lambda s: s.ch == f"online:{carol}")
    assert snap.users == (carol,)
    await cb.subscribe(ch, presence=True)
    await cb.expect(F.PresenceSnapshot, lambda s: s.ch == ch)
    sub_a = await ca.subscribe(ch, presence=True)
    await cb.expect(F.PresenceJoin, lambda j: j.ch == ch and j.user == alice)
    await cc.subscribe(ch)

    # Chat both ways across nodes.
    ack1 = await ca.chat(room, "a1", "hi bob, from node A")
    m1 = await cb.expect(F.ChatMessage)
    assert (m1.mid, m1.sender, m1.body) == (ack1.mid, alice, "hi bob, from node A")
    ack2 = await cb.chat(room, "b1", "hi alice, from node B")
    m2 = await ca.expect(F.ChatMessage, lambda m: m.sender == bob)
    assert m2.mid == ack2.mid and m2.offset == m1.offset + 1

    # Typing across nodes.
    await cb.send(F.Typing(ch=ch))
    typing = await ca.expect(F.TypingNotice)
    assert typing.user == bob and typing.active

    # Reactions on a message, counts seen on the other node.
    react = await ca.request(F.React(id=ca.next_id(), target_kind="message", target_id=m2.mid, emoji="🔥"))
    assert isinstance(react, F.Ack)
    counts = await cb.expect(F.ReactionCounts, lambda c: c.target_id == m2.mid)
    assert counts.counts == {"🔥": 1}

    # Node A dies without a word. Bob keeps writing meanwhile.
    last_seen = max((f for f in ca.seen if isinstance(f, F.ChatMessage)), key=lambda m: m.offset)
    node_a.kill()
    sent_meanwhile = [await cb.chat(room, f"b-miss-{i}", f"while A is down {i}") for i in range(5)]

    # Alice reconnects to node B with her position and gets every missed message, in order.
    ra = await Client.connect(node_b.ws_url, alice)
    again = await ra.subscribe(ch, epoch=sub_a.epoch, offset=last_seen.offset, presence=True)
    assert again.recovered
    got = [await ra.expect(F.ChatMessage) for _ in sent_meanwhile]
    assert [m.mid for m in got] == [a.mid for a in sent_meanwhile]
    live = await cb.chat(room, "b-live", "welcome back")
    assert (await ra.expect(F.ChatMessage)).mid == live.mid
    seen_mids = [m.mid for m in (*ca.seen, *ra.seen) if isinstance(m, F.ChatMessage)]
    assert len(seen_mids) == len(set(seen_mids))  # nothing delivered twice

    # Carol, who did not come back, expires by herself: her entries on dead node A are not refreshed.
    started = time.monotonic()
    gone = await cb.expect(F.PresenceLeave, lambda x: x.ch == f"online:{carol}", timeout=15)
    assert gone.user == carol
    assert time.monotonic() - started < 10
    # Alice moved nodes without ever being reported gone (her new socket rejoined before expiry).
    assert not [f for f in cb.seen if isinstance(f, F.PresenceLeave) and f.user == alice]

    # SIGTERM drains node B: its clients are told to reconnect elsewhere (jittered), then closed,
    # and the process exits within its drain deadline.
    node_b.process.send_signal(signal.SIGTERM)
    for client in (cb, ra):
        drain = await client.expect(F.Drain)
        assert drain.reconnect_after_ms >= 0
        bye = await client.expect(F.Disconnect)
        assert bye.code == 4010 and bye.reconnect
    started = time.monotonic()
    while node_b.process.poll() is None and time.monotonic() - started < 15:
        await asyncio.sleep(0.1)
    assert node_b.process.poll() is not None
