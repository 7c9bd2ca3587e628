"""Sign-up, log-in, refresh and log-out over real HTTP against a real node and PostgreSQL."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.conftest import RunningNode

PASSWORD = "songs-of-the-caravan-9"


def new_name() -> str:
    return f"u{secrets.token_hex(5)}"


@pytest.fixture
async def http(running_node: RunningNode) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=running_node.http_url, timeout=10)


async def test_signup_then_login_returns_tokens_and_user(http: httpx.AsyncClient) -> None:
    name = new_name()
    created = await http.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD,
                                                          "display_name": "Mara Lovari"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["user"]["username"] == name and body["user"]["display_name"] == "Mara Lovari"
    assert body["access_token"].startswith("at1.") and body["refresh_token"].startswith("rt1_")
    assert created.headers["cache-control"] == "no-store"
    logged = await http.post("/api/v1/auth/login", json={"username": name.upper(), "password": PASSWORD})
    assert logged.status_code == 200
    assert logged.json()["user"]["id"] == body["user"]["id"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"username": "ab", "password": PASSWORD}, 422, "invalid_username"),
        ({"username": "bad name!", "password": PASSWORD}, 422, "invalid_username"),
        ({"username": "robert'); DROP TABLE users;--", "password": PASSWORD}, 422, "invalid_username"),
        ({"username": "validname1", "password": "short"}, 422, "weak_password"),
        ({"username": "validname1", "password": "password123"}, 422, "weak_password"),
        ({"username": "validname1"}, 422, "invalid_field"),
        ({"username": 5, "password": PASSWORD}, 422, "invalid_field"),
        ({"username": "admin", "password": PASSWORD}, 409, "username_taken"),
    ],
)
async def test_signup_rejects_bad_input_clearly(http: httpx.AsyncClient, payload: dict[str, object], status: int,
                                                code: str) -> None:
    response = await http.post("/api/v1/auth/signup", json=payload)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


async def test_duplicate_username_is_rejected_case_insensitively(http: httpx.AsyncClient, db: object) -> None:
    name = new_name()
    assert (await http.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD})).status_code == 201
    again = await http.post("/api/v1/auth/signup", json={"username": name.upper(), "password": PASSWORD})
    assert again.status_code == 409 and again.json()["error"]["code"] == "username_taken"


async def test_malformed_bodies_get_4xx(http: httpx.AsyncClient) -> None:
    not_json = await http.post("/api/v1/auth/login", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    array = await http.post("/api/v1/auth/login", json=[1, 2])
    assert array.status_code == 400
    form = await http.post("/api/v1/auth/login", data={"username": "x"})
    assert form.status_code == 415
    huge = await http.post("/api/v1/auth/signup", json={"username": "x" * 20000, "password": PASSWORD})
    assert huge.status_code == 413


async def test_wrong_password_and_unknown_user_look_the_same(http: httpx.AsyncClient) -> None:
    name = new_name()
    await http.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD})
    wrong = await http.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD + "x"})
    unknown = await http.post("/api/v1/auth/login", json={"username": new_name(), "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_refresh_rotates_and_reuse_revokes_the_family(http: httpx.AsyncClient) -> None:
    name = new_name()
    first = (await http.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD})).json()
    second = await http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()["refresh_token"]
    assert rotated != first["refresh_token"]
    reuse = await http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    # The theft signal revoked the whole family, including the token handed out by the rotation.
    after = await http.post("/api/v1/auth/refresh", json={"refresh_token": rotated})
    assert after.status_code == 401


async def test_logout_revokes_refresh(http: httpx.AsyncClient) -> None:
    name = new_name()
    grant = (await http.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD})).json()
    out = await http.post("/api/v1/auth/logout", json={"refresh_token": grant["refresh_token"]})
    assert out.status_code == 204
    again = await http.post("/api/v1/auth/refresh", json={"refresh_token": grant["refresh_token"]})
    assert again.status_code == 401


async def test_password_guessing_is_rate_limited_per_username(http: httpx.AsyncClient) -> None:
    name = new_name()
    await http.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD})
    statuses = []
    for _ in range(12):
        guess = await http.post("/api/v1/auth/login", json={"username": name, "password": "wrong-guess-123"})
        statuses.append(guess.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    limited = await http.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "60"
    assert limited.json()["error"]["code"] == "rate_limited"
