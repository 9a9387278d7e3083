"""Error codes sent in `error` frames and close codes sent when a socket is closed.

Both are public API: a value, once published, is never renamed, renumbered or reused.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    BAD_FRAME = "bad_frame"  # not decodable, unknown type, or a field of the wrong shape
    FRAME_TOO_LARGE = "frame_too_large"  # over [limits] max_frame_bytes
    NOT_AUTHENTICATED = "not_authenticated"  # any frame but hello before a successful hello
    AUTH_FAILED = "auth_failed"  # the hello's token is invalid or expired
    ALREADY_AUTHENTICATED = "already_authenticated"  # a second hello on one connection
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"  # hello asks for a version we do not speak
    UNAVAILABLE = "unavailable"  # the desk's Redis cannot be reached; retry later
    INTERNAL = "internal"  # a bug; the event is logged with the connection id


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # this gateway is shutting down: reconnect, maybe elsewhere
    AUTH_FAILED = 4001  # the first frame was not a valid hello
    AUTH_TIMEOUT = 4002  # no hello within the allowed time


class ProtocolError(Exception):
    """Root of protocol errors: a frame the session cannot accept.

    Carries the code to send, a message for people, and the id of the frame at fault, if it had
    one we could read.
    """

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
