"""Error codes and exceptions of the wire protocol.

Exception tree (all raised by pure code; none escapes a well-behaved node)::

    ProtocolError                 a frame or a session step the protocol forbids; carries an ErrorCode
    ├── FrameTooLarge             the encoded frame exceeds the negotiated cap (checked before decoding)
    ├── MalformedFrame            not msgpack, not a map, unknown type, missing or ill-typed field
    └── InvalidTransition         a frame the session state does not allow (e.g. ``sub`` before ``hello``)

``ErrorCode`` values are stable: clients switch on the number, never on the message text. Codes
below 4000 travel in ``error`` frames; ``CloseCode`` values are WebSocket close codes.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    # Frame level (1xx): the frame itself is wrong.
    BAD_FRAME = 100
    FRAME_TOO_LARGE = 101
    UNKNOWN_TYPE = 102
    INVALID_FIELD = 103
    UNSUPPORTED_VERSION = 104
    NOT_AUTHENTICATED = 105
    ALREADY_AUTHENTICATED = 106
    WRONG_DIRECTION = 107
    # Authentication (2xx).
    TOKEN_INVALID = 200
    TOKEN_EXPIRED = 201
    # Authorization and channel state (3xx).
    PERMISSION_DENIED = 300
    CHANNEL_NOT_FOUND = 301
    NOT_SUBSCRIBED = 302
    ALREADY_SUBSCRIBED = 303
    NOT_FOUND = 304
    # Limits (4xx).
    RATE_LIMITED = 400
    TOO_MANY_SUBSCRIPTIONS = 401
    MESSAGE_TOO_LARGE = 402
    # Server side (5xx): retry later, nothing was changed.
    INTERNAL = 500
    UNAVAILABLE = 501
    DRAINING = 502


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (RFC 6455 reserves 4000-4999 for applications)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    BAD_HANDSHAKE = 4000
    UNAUTHORIZED = 4001
    TOKEN_EXPIRED = 4002
    UNSUPPORTED_VERSION = 4003
    HANDSHAKE_TIMEOUT = 4004
    SLOW_CONSUMER = 4008
    FLOOD = 4009
    DRAINING = 4010
    FORCE_RESYNC = 4011


class ProtocolError(Exception):
    """Base of every error the protocol core raises. ``code`` is what reaches the client."""

    code: ErrorCode = ErrorCode.BAD_FRAME

    def __init__(self, message: str, code: ErrorCode | None = None, request_id: int = 0) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.request_id = request_id


class FrameTooLarge(ProtocolError):
    code = ErrorCode.FRAME_TOO_LARGE


class MalformedFrame(ProtocolError):
    code = ErrorCode.BAD_FRAME


class InvalidTransition(ProtocolError):
    code = ErrorCode.NOT_AUTHENTICATED
