"""The per-connection state machine: decoded frames and the time in, effects out.

It never awaits, sleeps or reads a clock; the gateway's socket loop carries out the effects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from chatsvc.protocol.errors import CloseCode, ErrorCode, ProtocolError
from chatsvc.protocol.frames import (
    PROTOCOL_VERSION,
    Error,
    Hello,
    Inbound,
    Outbound,
    Ping,
    Pong,
    Welcome,
)
from chatsvc.tokens import Claims, TokenError


class State(Enum):
    AWAITING_HELLO = "awaiting_hello"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Reply:
    frame: Outbound


@dataclass(frozen=True)
class Close:
    code: CloseCode
    reason: str


Effect = Reply | Close
TokenVerifier = Callable[[str, float], Claims]


def error_reply(error: ProtocolError) -> Reply:
    return Reply(Error(code=error.code, message=error.message, ref=error.ref))


class Session:
    def __init__(self, verify_token: TokenVerifier) -> None:
        self._verify_token = verify_token
        self.state = State.AWAITING_HELLO
        self.claims: Claims | None = None

    def receive(self, frame: Inbound, now: float) -> list[Effect]:
        if self.state is State.CLOSED:
            return []
        if self.state is State.AWAITING_HELLO:
            if not isinstance(frame, Hello):
                return self._fail_auth(
                    ProtocolError(ErrorCode.NOT_AUTHENTICATED, "send hello first", frame.id)
                )
            return self._hello(frame, now)
        if isinstance(frame, Hello):
            return [
                error_reply(
                    ProtocolError(
                        ErrorCode.ALREADY_AUTHENTICATED, "already authenticated", frame.id
                    )
                )
            ]
        if isinstance(frame, Ping):
            return [Reply(Pong(ref=frame.id))]
        raise AssertionError(f"unhandled frame {type(frame).__name__}")  # pragma: no cover

    def reject(self, error: ProtocolError) -> list[Effect]:
        """A frame that could not be decoded: before hello it ends the connection."""
        if self.state is State.CLOSED:
            return []
        if self.state is State.AWAITING_HELLO:
            return self._fail_auth(error)
        return [error_reply(error)]

    def _hello(self, frame: Hello, now: float) -> list[Effect]:
        if frame.protocol != PROTOCOL_VERSION:
            return self._fail_auth(
                ProtocolError(
                    ErrorCode.UNSUPPORTED_PROTOCOL,
                    f"this server speaks protocol {PROTOCOL_VERSION}",
                    frame.id,
                )
            )
        try:
            claims = self._verify_token(frame.token, now)
        except TokenError as error:
            return self._fail_auth(ProtocolError(ErrorCode.AUTH_FAILED, str(error), frame.id))
        self.state = State.OPEN
        self.claims = claims
        welcome = Welcome(
            protocol=PROTOCOL_VERSION,
            role=claims.role.value,
            user_id=claims.user_id,
            expires_at=claims.expires_at,
            ref=frame.id,
        )
        return [Reply(welcome)]

    def _fail_auth(self, error: ProtocolError) -> list[Effect]:
        self.state = State.CLOSED
        return [error_reply(error), Close(CloseCode.AUTH_FAILED, error.code.value)]
