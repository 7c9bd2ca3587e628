"""What the posts, comments and timelines tests share: users signed up over HTTP, an HTTP client
acting as one of them, the graph through its own endpoints, and waiting for live frames."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio

from amaro_client import Client, signup
from protocol import frames as F
from tests.conftest import RunningNode

PASSWORD = "a-long-passphrase-1"


@dataclass
class User:
    id: str
    token: str
    username: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def new_user(node: RunningNode, prefix: str = "p") -> User:
    name = f"{prefix}{secrets.token_hex(5)}"
    grant = await signup(node.http_url, name, PASSWORD)
    return User(grant.user_id, grant.access_token, name)


async def users(node: RunningNode, n: int, prefix: str = "p") -> list[User]:
    """``n`` new users, three at a time: the SDK's sign-up waits in a thread of the default
    executor, where the in-process node hashes passwords too (a handful of threads on 2 CPUs)."""
    out: list[User] = []
    while len(out) < n:
        out += await asyncio.gather(*(new_user(node, prefix) for _ in range(min(3, n - len(out)))))
    return out


@pytest_asyncio.fixture(loop_scope="session")
async def http(running_node: RunningNode) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running_node.http_url, timeout=30) as client:
        yield client


async def post(http: httpx.AsyncClient, user: User, body: str = "hello", visibility: str = "public",
               **extra: Any) -> dict[str, Any]:
    r = await http.post("/api/v1/posts", json={"body": body, "visibility": visibility, **extra}, headers=user.auth)
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def follow(http: httpx.AsyncClient, follower: User, followee: User) -> None:
    r = await http.post(f"/api/v1/users/{followee.id}/follow", headers=follower.auth)
    assert r.status_code == 200 and r.json()["state"] == "following", r.text


async def block(http: httpx.AsyncClient, blocker: User, blocked: User) -> None:
    r = await http.post(f"/api/v1/users/{blocked.id}/block", headers=blocker.auth)
    assert r.status_code == 204, r.text


async def home(http: httpx.AsyncClient, user: User, *, limit: int = 20,
               cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    r = await http.get("/api/v1/timelines/home", params=params, headers=user.auth)
    assert r.status_code == 200, r.text
    return r.json()["items"], r.json()["next_cursor"]


async def home_ids(http: httpx.AsyncClient, user: User, limit: int = 50) -> list[str]:
    """Every post of ``user``'s home timeline, paging to the end."""
    out: list[str] = []
    cursor: str | None = None
    while True:
        items, cursor = await home(http, user, limit=limit, cursor=cursor)
        out += [p["id"] for p in items]
        if cursor is None:
            return out


def error_code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


async def until(check: Callable[[], Any], timeout_s: float = 10.0, step_s: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it answers something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(step_s)


async def next_feed(client: Client, kind: str, pred: Callable[[F.FeedUpdate], bool] = lambda f: True,
                    timeout_s: float = 10.0) -> F.FeedUpdate:
    """The next ``feed`` frame of ``kind`` matching ``pred`` (others are skipped)."""
    frame = await _next(client, lambda f: isinstance(f, F.FeedUpdate) and f.kind == kind and pred(f),
                        f"{kind} feed frame", timeout_s)
    assert isinstance(frame, F.FeedUpdate)
    return frame


async def next_event(client: Client, pred: Callable[[F.Event], bool], timeout_s: float = 10.0) -> F.Event:
    """The next ``event`` frame matching ``pred`` (others are skipped)."""
    frame = await _next(client, lambda f: isinstance(f, F.Event) and pred(f), "matching event frame", timeout_s)
    assert isinstance(frame, F.Event)
    return frame


async def _next(client: Client, match: Callable[[Any], bool], what: str, timeout_s: float) -> F.Frame:
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {what} within {timeout_s}s")
        frame = await client.next_event(timeout_s=left)
        if match(frame):
            return frame


async def no_feed(client: Client, kind: str, within_s: float = 0.5) -> None:
    """No ``feed`` frame of ``kind`` arrives within ``within_s``."""
    deadline = time.monotonic() + within_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = await client.next_event(timeout_s=left)
        except TimeoutError:
            return
        assert not (isinstance(frame, F.FeedUpdate) and frame.kind == kind), frame
