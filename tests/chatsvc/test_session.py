"""The per-connection session: frames and the time in, effects out, no socket anywhere.

The session checks tokens with the real `tokens.verify` on tokens made by `tokens.issue`, both
given an explicit `now`, so authentication is exercised end to end without a clock.
"""

from __future__ import annotations

import functools

import pytest

from chatsvc import tokens
from chatsvc.protocol.errors import CloseCode, ErrorCode, ProtocolError
from chatsvc.protocol.frames import PROTOCOL_VERSION, Error, Hello, Ping, Pong, Welcome
from chatsvc.protocol.session import Close, Effect, Reply, Session, State
from chatsvc.tokens import Claims, Role

SECRET = "session-test-secret-" + "s" * 44  # 64 bytes, as the HMAC key length warning wants
NOW = 1_700_000_000.0
TTL_S = 900
EXPIRES_AT = int(NOW) + TTL_S


def make_session() -> Session:
    return Session(verify_token=functools.partial(tokens.verify, SECRET))


def make_token(
    role: Role = Role.PATIENT,
    user_id: str = "p1",
    name: str = "",
    secret: str = SECRET,
    now: float = NOW,
) -> str:
    return tokens.issue(secret, role, user_id, now=now, ttl_s=TTL_S, name=name)


def open_session(role: Role = Role.DOCTOR, user_id: str = "d1") -> Session:
    session = make_session()
    effects = session.receive(Hello(token=make_token(role, user_id), id="h1"), NOW)
    assert [type(effect) for effect in effects] == [Reply]
    assert session.state is State.OPEN
    return session


def assert_error_then_close(effects: list[Effect], code: ErrorCode, ref: str | None) -> None:
    """The effects of a failed start: one error frame, then a close with code 4001."""
    assert len(effects) == 2, effects
    reply, close = effects
    assert isinstance(reply, Reply)
    assert isinstance(reply.frame, Error)
    assert reply.frame.code is code
    assert reply.frame.ref == ref
    assert reply.frame.message
    assert close == Close(CloseCode.AUTH_FAILED, code.value)


def assert_error_only(effects: list[Effect], code: ErrorCode, ref: str | None) -> None:
    assert len(effects) == 1, effects
    (reply,) = effects
    assert isinstance(reply, Reply)
    assert isinstance(reply.frame, Error)
    assert reply.frame.code is code
    assert reply.frame.ref == ref


# Before hello


def test_new_session_awaits_hello_without_claims() -> None:
    session = make_session()

    assert session.state is State.AWAITING_HELLO
    assert session.claims is None


@pytest.mark.parametrize("frame_id", ["p1", None])
def test_ping_before_hello_is_refused_and_closes_the_connection(frame_id: str | None) -> None:
    session = make_session()

    effects = session.receive(Ping(id=frame_id), NOW)

    assert_error_then_close(effects, ErrorCode.NOT_AUTHENTICATED, frame_id)
    assert session.state is State.CLOSED
    assert session.claims is None


# Hello


@pytest.mark.parametrize("role", list(Role))
def test_valid_hello_is_welcomed_with_role_user_id_expiry_and_protocol(role: Role) -> None:
    session = make_session()
    token = make_token(role, "user-7", name="Ana")

    effects = session.receive(Hello(token=token, protocol=PROTOCOL_VERSION, id="h1"), NOW + 5)

    assert effects == [
        Reply(
            Welcome(
                protocol=PROTOCOL_VERSION,
                role=role.value,
                user_id="user-7",
                expires_at=EXPIRES_AT,
                ref="h1",
            )
        )
    ]
    assert session.state is State.OPEN
    assert session.claims == Claims(role=role, user_id="user-7", expires_at=EXPIRES_AT, name="Ana")


def test_hello_without_id_is_welcomed_without_ref() -> None:
    session = make_session()

    (reply,) = session.receive(Hello(token=make_token()), NOW)

    assert isinstance(reply, Reply)
    assert isinstance(reply.frame, Welcome)
    assert reply.frame.ref is None


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("not-a-token", id="garbage"),
        pytest.param(make_token(secret="another-secret-" + "o" * 49), id="wrong-secret"),
        pytest.param(make_token()[:-4], id="truncated-signature"),
    ],
)
def test_hello_with_bad_token_fails_auth_and_closes_with_4001(token: str) -> None:
    session = make_session()

    effects = session.receive(Hello(token=token, id="h1"), NOW)

    assert_error_then_close(effects, ErrorCode.AUTH_FAILED, "h1")
    assert effects[1] == Close(CloseCode(4001), "auth_failed")
    assert session.state is State.CLOSED
    assert session.claims is None


@pytest.mark.parametrize("now", [EXPIRES_AT, EXPIRES_AT + 3_600])
def test_hello_with_expired_token_fails_auth_and_closes(now: float) -> None:
    session = make_session()

    effects = session.receive(Hello(token=make_token(), id="h1"), now)

    assert_error_then_close(effects, ErrorCode.AUTH_FAILED, "h1")
    assert session.state is State.CLOSED
    assert session.claims is None


def test_hello_a_moment_before_expiry_is_welcomed() -> None:
    session = make_session()

    (reply,) = session.receive(Hello(token=make_token(), id="h1"), EXPIRES_AT - 1)

    assert isinstance(reply, Reply)
    assert isinstance(reply.frame, Welcome)
    assert session.state is State.OPEN


@pytest.mark.parametrize("protocol", [0, PROTOCOL_VERSION + 1, -1, 2**64])
def test_hello_with_unsupported_protocol_is_refused_and_closes(protocol: int) -> None:
    session = make_session()

    effects = session.receive(Hello(token=make_token(), protocol=protocol, id="h1"), NOW)

    assert_error_then_close(effects, ErrorCode.UNSUPPORTED_PROTOCOL, "h1")
    assert session.state is State.CLOSED
    assert session.claims is None


def test_protocol_version_is_checked_before_the_token() -> None:
    session = make_session()

    effects = session.receive(Hello(token="not-a-token", protocol=0, id="h1"), NOW)

    assert_error_then_close(effects, ErrorCode.UNSUPPORTED_PROTOCOL, "h1")


# Open


def test_second_hello_is_refused_and_the_connection_stays_open() -> None:
    session = open_session(Role.DOCTOR, "d1")
    claims = session.claims

    effects = session.receive(Hello(token=make_token(Role.DOCTOR, "d1"), id="h2"), NOW)

    assert_error_only(effects, ErrorCode.ALREADY_AUTHENTICATED, "h2")
    assert session.state is State.OPEN
    assert session.claims == claims


def test_second_hello_with_another_identity_does_not_change_the_claims() -> None:
    session = open_session(Role.PATIENT, "p1")

    effects = session.receive(Hello(token=make_token(Role.SUPERVISOR, "boss"), id="h2"), NOW)

    assert_error_only(effects, ErrorCode.ALREADY_AUTHENTICATED, "h2")
    assert session.claims is not None
    assert (session.claims.role, session.claims.user_id) == (Role.PATIENT, "p1")


@pytest.mark.parametrize("frame_id", ["p1", None, ""])
def test_ping_after_hello_gets_pong_referring_to_it(frame_id: str | None) -> None:
    session = open_session()

    effects = session.receive(Ping(id=frame_id), NOW + 10)

    assert effects == [Reply(Pong(ref=frame_id))]
    assert session.state is State.OPEN


def test_many_pings_each_get_their_own_pong() -> None:
    session = open_session()

    pongs = [session.receive(Ping(id=f"p{n}"), NOW + n) for n in range(5)]

    assert pongs == [[Reply(Pong(ref=f"p{n}"))] for n in range(5)]


# Frames the gateway could not decode


@pytest.mark.parametrize("code", [ErrorCode.BAD_FRAME, ErrorCode.FRAME_TOO_LARGE])
def test_rejected_frame_before_hello_closes_the_connection(code: ErrorCode) -> None:
    session = make_session()

    effects = session.reject(ProtocolError(code, "cannot read that", "f1"))

    assert effects == [
        Reply(Error(code=code, message="cannot read that", ref="f1")),
        Close(CloseCode.AUTH_FAILED, code.value),
    ]
    assert session.state is State.CLOSED


@pytest.mark.parametrize("code", [ErrorCode.BAD_FRAME, ErrorCode.FRAME_TOO_LARGE])
def test_rejected_frame_after_hello_only_replies_an_error_and_stays_open(code: ErrorCode) -> None:
    session = open_session()

    effects = session.reject(ProtocolError(code, "cannot read that", "f1"))

    assert effects == [Reply(Error(code=code, message="cannot read that", ref="f1"))]
    assert session.state is State.OPEN
    assert session.receive(Ping(id="p1"), NOW) == [Reply(Pong(ref="p1"))]


# Closed


def closed_session() -> Session:
    session = make_session()
    session.receive(Ping(id="p0"), NOW)
    assert session.state is State.CLOSED
    return session


def test_closed_session_ignores_pings() -> None:
    session = closed_session()

    assert session.receive(Ping(id="p1"), NOW) == []
    assert session.state is State.CLOSED


def test_closed_session_ignores_a_valid_hello_and_stays_unauthenticated() -> None:
    session = closed_session()

    assert session.receive(Hello(token=make_token(), id="h1"), NOW) == []
    assert session.state is State.CLOSED
    assert session.claims is None


def test_session_closed_by_a_failed_hello_ignores_a_later_valid_hello() -> None:
    session = make_session()
    session.receive(Hello(token="not-a-token", id="h1"), NOW)

    assert session.receive(Hello(token=make_token(), id="h2"), NOW) == []
    assert session.state is State.CLOSED
    assert session.claims is None
