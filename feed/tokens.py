"""Signed, short-lived access tokens that every node verifies without a database round trip.

Format: ``at1.<payload>.<mac>`` where ``payload`` is base64url(msgpack map) and ``mac`` is
base64url(HMAC-SHA256(key, "at1." + payload)). The payload holds ``sub`` (user id), ``sid``
(refresh session id), ``iat``/``exp`` (unix seconds) and ``kid`` (which secret signed it), so the
secret can rotate: new tokens use the current secret, tokens signed by a previous one stay valid
until they expire.

Refresh tokens are opaque random strings; only their SHA-256 lives in PostgreSQL (see accounts.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass

import msgpack

from feed.config import AuthSettings
from protocol.errors import ErrorCode, ProtocolError

PREFIX = "at1"
MAX_TOKEN_LENGTH = 1024


class TokenError(ProtocolError):
    """The token cannot be used. ``expired`` tells a refreshable token from a forged one; the code
    (``TOKEN_EXPIRED`` or ``TOKEN_INVALID``) is what the socket and the HTTP APIs answer."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message, ErrorCode.TOKEN_EXPIRED if expired else ErrorCode.TOKEN_INVALID)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(secret: bytes) -> str:
    return hashlib.sha256(b"amaro-kid:" + secret).hexdigest()[:12]


class TokenSigner:
    """Issues and verifies access tokens. ``previous`` secrets verify but never sign."""

    def __init__(self, secret: bytes, previous: tuple[bytes, ...] = (), ttl_s: int = 900) -> None:
        if len(secret) < 16:
            raise ValueError("token secret must be at least 16 bytes")
        self._ttl_s = ttl_s
        self._current_kid = key_id(secret)
        self._keys = {key_id(s): s for s in (secret, *previous)}

    @property
    def ttl_s(self) -> int:
        return self._ttl_s

    def issue(self, user_id: str, session_id: str, *, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        payload = msgpack.packb(
            {"sub": user_id, "sid": session_id, "iat": issued, "exp": issued + self._ttl_s,
             "kid": self._current_kid}
        )
        head = f"{PREFIX}.{_b64(payload)}"
        mac = hmac.new(self._keys[self._current_kid], head.encode("ascii"), hashlib.sha256).digest()
        return f"{head}.{_b64(mac)}"

    def user_of(self, token: str) -> str:
        """The user a valid token names; raises ``TokenError`` (a ``ProtocolError``) otherwise."""
        return self.verify(token).user_id

    def verify(self, token: str, *, now: float | None = None) -> AccessClaims:
        """Return the claims of a valid token or raise ``TokenError``."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("malformed token")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise TokenError("malformed token")
        try:
            payload = msgpack.unpackb(_unb64(parts[1]), raw=False, max_str_len=256, max_map_len=8)
            mac = _unb64(parts[2])
        except (ValueError, binascii.Error, msgpack.UnpackException, msgpack.ExtraData):
            raise TokenError("malformed token") from None
        if not isinstance(payload, dict):
            raise TokenError("malformed token")
        secret = self._keys.get(str(payload.get("kid", "")))
        if secret is None:
            raise TokenError("token signed by an unknown key")
        head = f"{parts[0]}.{parts[1]}"
        expected = hmac.new(secret, head.encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, mac):
            raise TokenError("bad token signature")
        sub, sid, iat, exp = payload.get("sub"), payload.get("sid"), payload.get("iat"), payload.get("exp")
        if not (isinstance(sub, str) and isinstance(sid, str) and isinstance(iat, int)
                and isinstance(exp, int)):
            raise TokenError("malformed token claims")
        if exp <= int(time.time() if now is None else now):
            raise TokenError("token expired", expired=True)
        return AccessClaims(user_id=sub, session_id=sid, issued_at=iat, expires_at=exp)


def signer_for(settings: AuthSettings) -> TokenSigner:
    """The signer of ``settings.token_secret``; ``token_previous_secrets`` still verify."""
    return TokenSigner(settings.token_secret.encode(), tuple(s.encode() for s in settings.token_previous_secrets),
                       ttl_s=settings.access_ttl_s)
