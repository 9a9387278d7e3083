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
    # Access and limits.
    FORBIDDEN = "forbidden"  # the access matrix does not let this user do this
    NOT_FOUND = "not_found"  # no such consultation (or not one this user may know of)
    WRONG_ROLE = "wrong_role"  # a frame for another role (a patient sending take_next)
    RATE_LIMITED = "rate_limited"  # over the per-connection frame rate; the frame was dropped
    MESSAGE_TOO_LONG = "message_too_long"  # a chat message over [limits] max_message_chars
    RENEW_MISMATCH = "renew_mismatch"  # a renewed token names another user or role
    TOO_MANY_CONNECTIONS = "too_many_connections"  # over the user's connection limit
    NOTICE_REQUIRED = "notice_required"  # join without acknowledging the emergency notice
    # The desk refused the command (triage.errors codes; nothing changed).
    UNKNOWN_DEPARTMENT = "unknown_department"
    CONSENT_REQUIRED = "consent_required"
    ALREADY_WAITING = "already_waiting"
    IN_CONSULTATION = "in_consultation"
    NOT_WAITING = "not_waiting"
    OFFLINE = "offline"
    NOT_AVAILABLE = "not_available"
    AT_CAPACITY = "at_capacity"
    QUEUE_EMPTY = "queue_empty"
    NOT_OFFERED = "not_offered"
    ALREADY_ENDED = "already_ended"
    NOT_ACTIVE = "not_active"
    TARGET_UNAVAILABLE = "target_unavailable"
    OPEN_CONSULTATIONS = "open_consultations"
    CLOSED = "closed"  # the consultation's transcript takes no more messages
    REFUSED = "refused"  # any other refusal by the desk


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # this gateway is shutting down: reconnect, maybe elsewhere
    TRY_AGAIN_LATER = 1013  # the desk's Redis is unreachable right now: reconnect later
    AUTH_FAILED = 4001  # the first frame was not a valid hello
    AUTH_TIMEOUT = 4002  # no hello within the allowed time
    TOKEN_EXPIRED = 4003  # the token expired without a renew: get a new one and reconnect
    POLICY_VIOLATION = 4008  # repeated abuse (frames over the rate limit, bad frames)
    TOO_SLOW = 4009  # the client did not read its frames fast enough (its queue filled up)
    TOO_MANY_CONNECTIONS = 4010  # the user already holds [limits] max_connections_per_user


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
