"""The Python SDK against a real node: account calls, authentication, ping, reconnect."""

from __future__ import annotations

import secrets

import pytest

from amaro_client import Client, ClientError, login, signup
from amaro_client.auth import AuthError
from tests.conftest import RunningNode


async def test_signup_login_connect_and_ping(running_node: RunningNode) -> None:
    name = f"sdk{secrets.token_hex(4)}"
    created = await signup(running_node.http_url, name, "a-long-passphrase-1")
    grant = await login(running_node.http_url, name, "a-long-passphrase-1")
    assert grant.user_id == created.user_id
    async with Client(running_node.ws_url, token=grant.access_token) as client:
        assert client.welcome is not None and client.welcome.user == grant.user_id
        assert await client.ping() >= 0


async def test_bad_credentials_and_bad_token_raise(running_node: RunningNode) -> None:
    with pytest.raises(AuthError) as info:
        await login(running_node.http_url, "nobody-here", "a-long-passphrase-1")
    assert info.value.status == 401 and info.value.code == "invalid_credentials"
    with pytest.raises(ClientError) as bad:
        await Client(running_node.ws_url, token="at1.forged.token").connect()
    assert bad.value.code == 200
