"""The per-connection state machine: decoded frames and the time in, effects out.

It owns authentication (the first frame must be a valid `hello`; `renew` swaps the token for
a fresh one of the same user), the token's expiry (a warning, then the close), which frames
each role may send, the per-connection rate limit and when abuse closes the socket. Commands
that pass come out as `Dispatch` effects, which the gateway carries out.

It never awaits, sleeps or reads a clock; the gateway's socket loop passes the time in and
carries out the effects.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from chatsvc.protocol import frames as f
from chatsvc.protocol.errors import CloseCode, ErrorCode, ProtocolError
from chatsvc.tokens import Claims, Role, TokenError

# The client is told this long before its token expires, to renew in time.
EXPIRY_WARNING_S = 60.0
# Typing indicators are ephemeral: one per consultation per this many seconds is passed on,
# the rest are dropped quietly (they are not abuse: a keyboard repeats).
TYPING_INTERVAL_S = 2.0
# Past this many consultations in the typing map, stale entries are dropped. Far above the
# consultations a doctor holds at once; the rate limit bounds how many can be fresh.
TYPING_TRACKED = 64
# Violations are counted over this window against `max_violations`.
VIOLATION_WINDOW_S = 60.0

_ANY_ROLE: frozenset[type] = frozenset(
    {f.Renew, f.Ping, f.Send, f.TypingSignal, f.MarkRead, f.MarkDelivered}
)
_READERS: frozenset[type] = frozenset({f.Fetch, f.Open})
ROLE_FRAMES: dict[Role, frozenset[type]] = {
    Role.PATIENT: _ANY_ROLE | _READERS | {f.QuoteRequest, f.Join, f.Leave, f.End},
    Role.DOCTOR: _ANY_ROLE
    | _READERS
    | {f.SetStatus, f.TakeNext, f.Accept, f.End, f.Transfer, f.PatientHistory},
    # Supervisors read; they never write into a consultation (the access matrix says so too).
    Role.SUPERVISOR: frozenset({f.Renew, f.Ping, f.ListConsultations, f.ListAudit}) | _READERS,
}


class State(Enum):
    AWAITING_HELLO = "awaiting_hello"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Reply:
    frame: f.Outbound


@dataclass(frozen=True)
class Close:
    code: CloseCode
    reason: str


@dataclass(frozen=True)
class Authenticated:
    """The hello passed: the gateway registers the user and sends `welcome`."""

    claims: Claims
    lang: str
    ref: str | None
    resume: tuple[f.ResumePoint, ...] = ()


@dataclass(frozen=True)
class Dispatch:
    """A command the gateway carries out for this user."""

    frame: f.Inbound
    claims: Claims


Effect = Reply | Close | Authenticated | Dispatch
TokenVerifier = Callable[[str, float], Claims]


def error_reply(error: ProtocolError) -> Reply:
    return Reply(f.Error(code=error.code, message=error.message, ref=error.ref))


@dataclass(frozen=True)
class Limits:
    frames_per_second: float = 20.0
    burst: int = 40
    max_violations: int = 30  # within VIOLATION_WINDOW_S


@dataclass
class TokenBucket:
    """`rate` tokens a second up to `burst`; each frame takes one."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    updated: float | None = None

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float) -> bool:
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Session:
    def __init__(self, verify_token: TokenVerifier, limits: Limits = Limits()) -> None:
        self._verify_token = verify_token
        self._limits = limits
        self._bucket = TokenBucket(limits.frames_per_second, limits.burst)
        self._violations: deque[float] = deque()
        self._last_typing: dict[str, float] = {}
        self._warned = False
        self.state = State.AWAITING_HELLO
        self.claims: Claims | None = None

    # -- frames in ------------------------------------------------------------------------------

    def receive(self, frame: f.Inbound, now: float) -> list[Effect]:
        if self.state is State.CLOSED:
            return []
        if self.state is State.AWAITING_HELLO:
            if not isinstance(frame, f.Hello):
                return self._fail_auth(
                    ProtocolError(ErrorCode.NOT_AUTHENTICATED, "send hello first", frame.id)
                )
            return self._hello(frame, now)
        # A due expiry warning goes out first; the frame is still handled after it.
        due = self.tick(now)
        if self.state is State.CLOSED:
            return due
        return due + self._command(frame, now)

    def _command(self, frame: f.Inbound, now: float) -> list[Effect]:
        assert self.claims is not None
        if not self._bucket.take(now):
            return self._violation(
                ProtocolError(ErrorCode.RATE_LIMITED, "too many frames; slow down", frame.id), now
            )
        if isinstance(frame, f.Hello):
            return [
                error_reply(
                    ProtocolError(
                        ErrorCode.ALREADY_AUTHENTICATED, "already authenticated", frame.id
                    )
                )
            ]
        if type(frame) not in ROLE_FRAMES[self.claims.role]:
            return [
                error_reply(
                    ProtocolError(
                        ErrorCode.WRONG_ROLE,
                        f"{self.claims.role.value}s cannot send {frame.__struct_config__.tag}",
                        frame.id,
                    )
                )
            ]
        if isinstance(frame, f.Ping):
            return [Reply(f.Pong(ref=frame.id))]
        if isinstance(frame, f.Renew):
            return self._renew(frame, now)
        if isinstance(frame, f.TypingSignal) and not self._typing_due(frame.consultation, now):
            return []
        return [Dispatch(frame, self.claims)]

    def reject(self, error: ProtocolError, now: float) -> list[Effect]:
        """A frame that could not be decoded: before hello it ends the connection."""
        if self.state is State.CLOSED:
            return []
        if self.state is State.AWAITING_HELLO:
            return self._fail_auth(error)
        return self._violation(error, now)

    # -- time ---------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `tick` has something to do next (unix seconds), or None."""
        if self.state is not State.OPEN or self.claims is None:
            return None
        if not self._warned:
            return self.claims.expires_at - EXPIRY_WARNING_S
        return float(self.claims.expires_at)

    def tick(self, now: float) -> list[Effect]:
        """Token expiry: warn once before, close at the expiry."""
        if self.state is not State.OPEN or self.claims is None:
            return []
        if now >= self.claims.expires_at:
            self.state = State.CLOSED
            return [Close(CloseCode.TOKEN_EXPIRED, "token expired")]
        if not self._warned and now >= self.claims.expires_at - EXPIRY_WARNING_S:
            self._warned = True
            return [Reply(f.TokenExpiring(expires_at=self.claims.expires_at))]
        return []

    # -- helpers ------------------------------------------------------------------------------

    def _hello(self, frame: f.Hello, now: float) -> list[Effect]:
        if frame.protocol != f.PROTOCOL_VERSION:
            return self._fail_auth(
                ProtocolError(
                    ErrorCode.UNSUPPORTED_PROTOCOL,
                    f"this server speaks protocol {f.PROTOCOL_VERSION}",
                    frame.id,
                )
            )
        try:
            claims = self._verify_token(frame.token, now)
        except TokenError as error:
            return self._fail_auth(ProtocolError(ErrorCode.AUTH_FAILED, str(error), frame.id))
        self.state = State.OPEN
        self.claims = claims
        self._warned = False  # a token already inside the warning window is warned at once
        return [Authenticated(claims, frame.lang, frame.id, tuple(frame.resume))]

    def _renew(self, frame: f.Renew, now: float) -> list[Effect]:
        assert self.claims is not None
        try:
            claims = self._verify_token(frame.token, now)
        except TokenError as error:
            return [error_reply(ProtocolError(ErrorCode.AUTH_FAILED, str(error), frame.id))]
        if (claims.role, claims.user_id) != (self.claims.role, self.claims.user_id):
            return [
                error_reply(
                    ProtocolError(
                        ErrorCode.RENEW_MISMATCH,
                        "a renewed token must name the same user and role",
                        frame.id,
                    )
                )
            ]
        self.claims = claims
        self._warned = False
        return [Reply(f.Renewed(expires_at=claims.expires_at, ref=frame.id))]

    def _typing_due(self, consultation: str, now: float) -> bool:
        last = self._last_typing.get(consultation)
        if last is not None and now - last < TYPING_INTERVAL_S:
            return False
        if len(self._last_typing) >= TYPING_TRACKED:
            # Entries older than the interval throttle nothing: forget them, so a client naming
            # ever new consultations cannot grow this map for as long as it stays connected.
            self._last_typing = {
                key: at for key, at in self._last_typing.items() if now - at < TYPING_INTERVAL_S
            }
        self._last_typing[consultation] = now
        return True

    def _violation(self, error: ProtocolError, now: float) -> list[Effect]:
        """An error frame; past the allowed number in the window, the socket is closed."""
        self._violations.append(now)
        while self._violations and now - self._violations[0] > VIOLATION_WINDOW_S:
            self._violations.popleft()
        if len(self._violations) > self._limits.max_violations:
            self.state = State.CLOSED
            return [
                error_reply(error),
                Close(CloseCode.POLICY_VIOLATION, "too many bad or over-limit frames"),
            ]
        return [error_reply(error)]

    def _fail_auth(self, error: ProtocolError) -> list[Effect]:
        self.state = State.CLOSED
        return [error_reply(error), Close(CloseCode.AUTH_FAILED, error.code.value)]
