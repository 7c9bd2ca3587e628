"""Amaro Than Python SDK: account calls over HTTP and the resumable socket client."""

from amaro_client.auth import Grant, login, refresh, signup
from amaro_client.client import Client, ClientError

__all__ = ["Client", "ClientError", "Grant", "login", "refresh", "signup"]
