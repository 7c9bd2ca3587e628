"""The media exception tree. Every error carries the HTTP status a tus client expects.

    MediaError                      base; ``status``, ``code`` (stable, reaches the client), message
    ├── TusError                    a request the tus handler refuses (4xx/5xx with a message)
    ├── StoreError                  the object store failed or an object is missing
    └── CryptoError                 encrypted data or a header failed authentication
        └── KeyNotFound             a header names a master key the keyring does not hold

``TusError`` instances are built by the helpers below so codes stay in one place.
"""

from __future__ import annotations


class MediaError(Exception):
    status = 500
    code = "media_error"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = headers or {}


class TusError(MediaError):
    status = 400
    code = "bad_request"


class StoreError(MediaError):
    code = "store_error"


class CryptoError(MediaError):
    code = "crypto_error"


class KeyNotFound(CryptoError):
    code = "key_not_found"


def unauthorized(message: str = "a valid Bearer access token is required") -> TusError:
    return TusError(message, status=401, code="unauthorized", headers={"WWW-Authenticate": "Bearer"})


def not_found() -> TusError:
    # Another user's upload answers exactly like an unknown one: existence is never revealed.
    return TusError("upload not found", status=404, code="not_found")


def gone(message: str = "upload expired or terminated") -> TusError:
    return TusError(message, status=410, code="gone")


def conflict(message: str) -> TusError:
    return TusError(message, status=409, code="offset_mismatch")


def locked() -> TusError:
    return TusError("another request is writing this upload; retry shortly", status=423, code="locked",
                    headers={"Retry-After": "1"})


def too_large(message: str) -> TusError:
    return TusError(message, status=413, code="too_large")


def unsupported_media(message: str) -> TusError:
    return TusError(message, status=415, code="unsupported_media_type")


def checksum_mismatch() -> TusError:
    return TusError("Upload-Checksum does not match the request body; the chunk was discarded",
                    status=460, code="checksum_mismatch")


def busy(message: str, *, status: int = 503) -> TusError:
    return TusError(message, status=status, code="busy", headers={"Retry-After": "2"})
