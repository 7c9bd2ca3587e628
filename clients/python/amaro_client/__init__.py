"""Amaro Than Python SDK.

- ``Client``: the resumable socket (reconnect, resume from offsets, duplicates dropped).
- ``Connection``: one socket speaking frames as SPEC.md says, nothing more (tests, load tests).
- ``Wire``: the WebSocket under both, lean enough for thousands of sockets in one process.
- ``signup``, ``login``, ``refresh``: the account calls over HTTP.
- ``Api``: the social API over HTTP (rooms, follows, posts, timelines) as one user.
"""

from amaro_client.api import Api, ApiError
from amaro_client.auth import AuthError, Grant, login, refresh, signup
from amaro_client.client import Client, ClientError
from amaro_client.connection import Connection, Refused
from amaro_client.wire import HandshakeError, Wire

__all__ = ["Api", "ApiError", "AuthError", "Client", "ClientError", "Connection", "Grant", "HandshakeError",
           "Refused", "Wire", "login", "refresh", "signup"]
