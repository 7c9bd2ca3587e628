"""The crowd: every simulated person as an asyncio task, timed by the runner.

Each light action is timed around the target's call (`time.monotonic()` before and after) and
recorded as `[t, ms, ok]`, `t` in seconds since the run's origin. Deliveries are timed from the
send (chat) or the connect (presence) to the receiver's arrival stamp; only receivers that were
online for the whole wait are expected (someone who went away meanwhile owes nothing), and an
expected receiver that has not seen it within `delivery_timeout_s` is an error sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from loadtests.crash import model
from loadtests.crash.target import ACTIONS, ChatReceived, Delivery, Person, PresenceSeen, World

ACTION_TIMEOUT_S = 15.0
LOGIN_EVERY = 2


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:160]


@dataclass
class Pending:
    action: str
    sent: float                  # monotonic
    expected: set[int]


@dataclass
class State:
    person: Person
    behaviour: model.Behaviour
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    online: bool = False
    cursor: str | None = None
    sent: int = 0
    returns: int = 0


class Crowd:
    def __init__(self, world: World, people: list[Person], config: model.Config) -> None:
        self.world = world
        self.config = config
        self.states = [State(p, model.Behaviour(i, config)) for i, p in enumerate(people)]
        self.friends = model.friends_of(world.friends)
        self.by_user = {a.user_id: a.index for a in world.accounts}
        self.rooms_of: dict[int, list[str]] = {i: [] for i in range(len(people))}
        for room, members in world.rooms.items():
            for m in members:
                self.rooms_of[m].append(room)
        self.posts = list(world.posts)
        self.samples: dict[str, list[list[Any]]] = {a: [] for a in ACTIONS}
        # Why actions failed, by action: the exception's kind and message, counted (samples keep ok only).
        self.error_kinds: dict[str, dict[str, int]] = {a: {} for a in ACTIONS}
        self.pending: dict[str, Pending] = {}
        self.origin = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self._sweeper: asyncio.Task[None] | None = None

    # -- recording --------------------------------------------------------------------------------

    def record(self, action: str, started: float, ms: float, ok: bool, why: str = "") -> None:
        self.samples[action].append([round(started - self.origin, 4), round(ms, 3), ok])
        if not ok:
            kind = why or "no delivery in time"
            self.error_kinds[action][kind] = self.error_kinds[action].get(kind, 0) + 1

    async def timed(self, action: str, call: Awaitable[Any]) -> tuple[bool, Any]:
        started = time.monotonic()
        try:
            value = await asyncio.wait_for(call, ACTION_TIMEOUT_S)
            ok, why = True, ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            value, ok, why = None, False, describe(exc)
        self.record(action, started, (time.monotonic() - started) * 1000, ok, why)
        return ok, value

    def inbox(self, index: int) -> Any:
        def deliver(delivery: Delivery) -> None:
            if isinstance(delivery, ChatReceived):
                key = delivery.body.split(" ", 1)[0]
            elif isinstance(delivery, PresenceSeen) and delivery.online:
                key = f"presence:{delivery.user_id}"
            else:
                return
            pending = self.pending.get(key)
            if pending is not None and index in pending.expected:
                pending.expected.discard(index)
                self.record(pending.action, pending.sent, (delivery.at - pending.sent) * 1000, True)
                if not pending.expected:
                    del self.pending[key]
        return deliver

    def expire(self, now: float, timeout_s: float) -> None:
        for key, pending in list(self.pending.items()):
            if now - pending.sent >= timeout_s:
                for _ in pending.expected:
                    self.record(pending.action, pending.sent, timeout_s * 1000, False)
                del self.pending[key]

    def _went_away(self, index: int) -> None:
        for pending in self.pending.values():
            pending.expected.discard(index)

    def _online_among(self, people: Any, besides: int) -> set[int]:
        return {j for j in people if j != besides and self.states[j].online}

    # -- coming and going -------------------------------------------------------------------------

    async def arrive(self, index: int, measured: bool, log_in: bool = True) -> None:
        """(Log in and) connect; measured, it gives a log_in sample and friends' presence_seen."""
        state = self.states[index]
        person = state.person
        if measured and log_in:
            ok, _ = await self.timed("log_in", person.log_in())
            if not ok:
                return
        elif log_in:
            await person.log_in()
        key = f"presence:{person.account.user_id}"
        expired = self.pending.pop(key, None)
        if expired is not None:
            for _ in expired.expected:
                self.record(expired.action, expired.sent, (time.monotonic() - expired.sent) * 1000, False)
        started = time.monotonic()
        if measured:
            self.pending[key] = Pending("presence_seen", started, self._online_among(self.friends[index], index))
        try:
            await person.go_online(self.inbox(index))
        except Exception as exc:
            if not measured:
                raise
            self.pending.pop(key, None)
            self.record("presence_seen", started, (time.monotonic() - started) * 1000, False, describe(exc))
            return
        state.online = True

    async def leave(self, index: int) -> None:
        state = self.states[index]
        state.online = False
        self._went_away(index)
        with contextlib.suppress(Exception):
            await state.person.go_offline()

    async def cycle(self, index: int) -> None:
        state = self.states[index]
        if state.lock.locked():
            return
        async with state.lock:
            await self.leave(index)
            await asyncio.sleep(self.config.away_s)
            # Every other return is a fresh log-in (an app reopened); the others resume the session.
            await self.arrive(index, measured=True, log_in=state.returns % LOGIN_EVERY == 0)
            state.returns += 1

    async def comings_and_goings(self) -> None:
        order = model.cycle_order(self.config)
        turn = 0
        while True:
            self._spawn(self.cycle(order[turn % len(order)]))
            turn += 1
            await asyncio.sleep(self.config.cycle_s)

    # -- light actions ----------------------------------------------------------------------------

    async def act(self, index: int, action: str) -> None:
        state = self.states[index]
        person, rng = state.person, state.behaviour
        if action == "timeline_page":
            cursor = None if rng.refresh() else state.cursor
            ok, value = await self.timed("timeline_page", person.timeline_page(cursor))
            state.cursor = value if ok else None
        elif action == "profile":
            friend = rng.pick(self.world.friends[index] or [index])
            await self.timed("profile", person.profile(self.world.accounts[friend].user_id))
        elif action == "post":
            state.sent += 1
            ok, value = await self.timed("post", person.post(f"Tester {index} says hi, #{state.sent}"))
            if ok and value:
                self.posts.append(str(value))
        elif action == "react" and self.posts:
            await self.timed("react", person.react(rng.pick(self.posts)))
        elif action == "chat" and self.rooms_of[index]:
            room = rng.pick(self.rooms_of[index])
            state.sent += 1
            token = f"m{index}.{state.sent}"
            started = time.monotonic()
            self.pending[token] = Pending("chat_delivery", started, self._online_among(self.world.rooms[room], index))
            try:
                await asyncio.wait_for(person.chat_send(room, f"{token} sastipe"), ACTION_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.pending.pop(token, None)
                self.record("chat_delivery", started, (time.monotonic() - started) * 1000, False, describe(exc))

    async def live(self, index: int) -> None:
        state = self.states[index]
        while True:
            await asyncio.sleep(state.behaviour.think())
            async with state.lock:
                if state.online:
                    await self.act(index, state.behaviour.next_action())

    async def sweep(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self.expire(time.monotonic(), self.config.delivery_timeout_s)

    # -- the whole crowd --------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def gather_online(self, concurrency: int = 8) -> None:
        """Everyone logs in and connects, unmeasured, before the clock starts."""
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await self.arrive(i, measured=False)

        await asyncio.gather(*(one(i) for i in range(len(self.states))))

    def start(self) -> None:
        self.origin = time.monotonic()
        for i in range(self.config.active):
            self._spawn(self.live(i))
        self._spawn(self.comings_and_goings())
        self._sweeper = asyncio.create_task(self.sweep())

    async def stop(self) -> None:
        """Stop acting, let the last deliveries arrive (or time out), then everyone leaves."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        deadline = time.monotonic() + self.config.delivery_timeout_s + 0.5
        while self.pending and time.monotonic() < deadline:  # noqa: ASYNC110 - many producers, a short wait
            await asyncio.sleep(0.1)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        self.expire(time.monotonic() + self.config.delivery_timeout_s, self.config.delivery_timeout_s)
        await asyncio.gather(*(s.person.close() for s in self.states), return_exceptions=True)
