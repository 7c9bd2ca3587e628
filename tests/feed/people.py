"""Users of the social API as a client sees them: signed up over HTTP, calling it with their token,
opening sockets with it. No SQL, no server objects."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from amaro_client import Connection
from protocol import frames as F
from tests.realtime.wsclient import Client

PASSWORD = "songs-of-the-caravan-9"


@dataclass
class Member:
    """One signed-up user and the HTTP client they call the API with."""

    id: str
    username: str
    token: str
    http: httpx.AsyncClient

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.bearer)

    async def send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.request(method, path, json=body, headers=self.bearer)

    async def follow(self, other: Member) -> str:
        answer = await self.send("POST", f"/api/v1/users/{other.id}/follow")
        assert answer.status_code == 200, answer.text
        return str(answer.json()["state"])

    async def profile(self, other: Member | None = None) -> dict[str, Any]:
        answer = await self.get(f"/api/v1/users/{(other or self).id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def socket(self, ws_url: str) -> Client:
        return Client(await Connection.open(ws_url, self.token), self.id)

    async def inbox(self, ws_url: str) -> Client:
        """A socket subscribed to this user's personal channel (``feed`` frames)."""
        client = await self.socket(ws_url)
        await client.subscribe(f"user:{self.id}")
        return client


async def join(http: httpx.AsyncClient, username: str = "") -> Member:
    name = username or f"g{secrets.token_hex(6)}"
    answer = await http.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Member(body["user"]["id"], body["user"]["username"], body["access_token"], http)


async def crowd(http: httpx.AsyncClient, n: int) -> list[Member]:
    return [await join(http) for _ in range(n)]


def error_code(answer: httpx.Response) -> str:
    return str(answer.json()["error"]["code"])


async def feed_frame(client: Client, kind: str, timeout: float = 10.0) -> F.FeedUpdate:
    return await client.expect(F.FeedUpdate, lambda f: f.kind == kind, timeout)
