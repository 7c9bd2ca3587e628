"""Amaro Than Python SDK.

- ``Client``: the resumable socket (reconnect, resume from offsets, duplicates dropped).
- ``Connection``: one socket speaking frames as SPEC.md says, nothing more (tests, load tests).
- ``Wire``: the WebSocket under both, lean enough for thousands of sockets in one process.
- ``signup``, ``login``, ``refresh``, ``logout``: the account calls over HTTP; a ``Grant``.
- ``Api``: every call of the social API over HTTP as one user, its grant kept fresh.
- ``Uploads``: resumable tus uploads with progress; ``ResumeStore`` lets a new process continue.
- ``FeedEvent``, ``MediaUpdate``, ``view_of``, ``wait_for_media``: typed feed and media events.
"""

from amaro_client.api import Api
from amaro_client.auth import AuthError, Grant, login, logout, refresh, signup
from amaro_client.client import Client, ClientError
from amaro_client.connection import Connection, Refused
from amaro_client.events import FeedEvent, MediaFailed, MediaUpdate, view_of, wait_for_media
from amaro_client.http import ApiError
from amaro_client.uploads import ResumeStore, Upload, UploadCancelled, UploadError, Uploads
from amaro_client.wire import HandshakeError, Wire

__all__ = ["Api", "ApiError", "AuthError", "Client", "ClientError", "Connection", "FeedEvent", "Grant",
           "HandshakeError", "MediaFailed", "MediaUpdate", "Refused", "ResumeStore", "Upload", "UploadCancelled",
           "UploadError", "Uploads", "Wire", "login", "logout", "refresh", "signup", "view_of", "wait_for_media"]
