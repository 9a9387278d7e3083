"""The per-connection session: frames and the time in, effects out, no socket anywhere.

The session checks tokens with the real `tokens.verify` on tokens made by `tokens.issue`, both
given an explicit `now`, so authentication, renewal and expiry are exercised end to end without
a clock. The rate limit, violations and the typing throttle are in test_session_limits.py.
"""

from __future__ import annotations

import itertools
import typing

import pytest

from chatsvc import tokens
from chatsvc.protocol import frames as f
from chatsvc.protocol.errors import CloseCode, ErrorCode, ProtocolError
from chatsvc.protocol.session import (
    EXPIRY_WARNING_S,
    Authenticated,
    Close,
    Dispatch,
    Reply,
    Session,
    State,
)
from chatsvc.tokens import Claims, Role
from tests.chatsvc.sessions import (
    EXPIRES_AT,
    NOW,
    SAMPLES,
    SECRET,
    TTL_S,
    USERS,
    WARN_AT,
    assert_error_only,
    assert_error_then_close,
    error_of,
    make_session,
    make_token,
    open_session,
)

STAFF_DEPARTMENTS = {Role.PATIENT: (), Role.DOCTOR: ("general",), Role.SUPERVISOR: ("psych",)}

# Which client frames each role may send once authenticated (hello: nobody, a second time).
MAY_SEND: dict[Role, set[str]] = {
    Role.PATIENT: {
        "renew",
        "ping",
        "quote",
        "join",
        "leave",
        "end",
        "send",
        "typing",
        "read",
        "delivered",
        "fetch",
        "open",
    },
    Role.DOCTOR: {
        "renew",
        "ping",
        "set_status",
        "take_next",
        "accept",
        "end",
        "transfer",
        "patient_history",
        "send",
        "typing",
        "read",
        "delivered",
        "fetch",
        "open",
    },
    Role.SUPERVISOR: {"renew", "ping", "fetch", "open", "list_consultations", "list_audit"},
}


def test_samples_cover_every_client_frame_type() -> None:
    assert {type(frame) for frame in SAMPLES.values()} == set(typing.get_args(f.Inbound))
    assert all(frame.__struct_config__.tag == name for name, frame in SAMPLES.items())


# Before hello


def test_new_session_awaits_hello_without_claims_or_deadline() -> None:
    session = make_session()

    assert session.state is State.AWAITING_HELLO
    assert session.claims is None
    assert session.next_deadline() is None
    assert session.tick(EXPIRES_AT + 1) == []


@pytest.mark.parametrize("name", sorted(set(SAMPLES) - {"hello"}))
def test_any_frame_before_hello_is_refused_and_closes_with_4001(name: str) -> None:
    session = make_session()

    effects = session.receive(SAMPLES[name], NOW)

    assert_error_then_close(effects, ErrorCode.NOT_AUTHENTICATED, f"x-{name}")
    assert session.state is State.CLOSED
    assert session.claims is None


def test_frame_before_hello_without_id_is_refused_without_ref() -> None:
    effects = make_session().receive(f.Ping(), NOW)

    assert_error_then_close(effects, ErrorCode.NOT_AUTHENTICATED, None)


@pytest.mark.parametrize("code", [ErrorCode.BAD_FRAME, ErrorCode.FRAME_TOO_LARGE])
def test_rejected_frame_before_hello_closes_the_connection(code: ErrorCode) -> None:
    session = make_session()

    effects = session.reject(ProtocolError(code, "cannot read that", "f1"), NOW)

    assert effects == [
        Reply(f.Error(code=code, message="cannot read that", ref="f1")),
        Close(CloseCode.AUTH_FAILED, code.value),
    ]
    assert session.state is State.CLOSED


# Hello


@pytest.mark.parametrize("role", list(Role))
def test_valid_hello_authenticates_with_the_claims_language_and_ref(role: Role) -> None:
    session = make_session()
    departments = STAFF_DEPARTMENTS[role]
    token = make_token(role, "user-7", name="Ana", departments=departments)

    effects = session.receive(f.Hello(token=token, lang="zh-CN", id="h1"), NOW + 5)

    claims = Claims(
        role=role,
        user_id="user-7",
        expires_at=EXPIRES_AT,
        name="Ana",
        departments=departments,
        session_started=int(NOW),
    )
    assert effects == [Authenticated(claims=claims, lang="zh-CN", ref="h1")]
    assert session.state is State.OPEN
    assert session.claims == claims


def test_hello_without_id_or_language_authenticates_without_ref_and_language() -> None:
    session = make_session()

    (effect,) = session.receive(f.Hello(token=make_token()), NOW)

    assert isinstance(effect, Authenticated)
    assert (effect.ref, effect.lang) == (None, "")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("not-a-token", id="garbage"),
        pytest.param(make_token(secret="another-secret-" + "o" * 49), id="forged"),
        pytest.param(make_token()[:-4], id="truncated-signature"),
    ],
)
def test_hello_with_bad_token_fails_auth_and_closes_with_4001(token: str) -> None:
    session = make_session()

    effects = session.receive(f.Hello(token=token, id="h1"), NOW)

    assert_error_then_close(effects, ErrorCode.AUTH_FAILED, "h1")
    assert effects[1] == Close(CloseCode(4001), "auth_failed")
    assert session.state is State.CLOSED
    assert session.claims is None


@pytest.mark.parametrize("now", [EXPIRES_AT, EXPIRES_AT + 3_600])
def test_hello_with_expired_token_fails_auth_and_closes(now: float) -> None:
    session = make_session()

    effects = session.receive(f.Hello(token=make_token(), id="h1"), now)

    assert_error_then_close(effects, ErrorCode.AUTH_FAILED, "h1")
    assert "expired" in error_of(effects[0]).message
    assert session.state is State.CLOSED


def test_hello_a_moment_before_expiry_authenticates() -> None:
    session = make_session()

    (effect,) = session.receive(f.Hello(token=make_token(), id="h1"), EXPIRES_AT - 1)

    assert isinstance(effect, Authenticated)
    assert session.state is State.OPEN


@pytest.mark.parametrize("protocol", [0, f.PROTOCOL_VERSION + 1, -1, 2**64])
def test_hello_with_unsupported_protocol_is_refused_and_closes(protocol: int) -> None:
    session = make_session()

    effects = session.receive(f.Hello(token=make_token(), protocol=protocol, id="h1"), NOW)

    assert_error_then_close(effects, ErrorCode.UNSUPPORTED_PROTOCOL, "h1")
    assert session.state is State.CLOSED
    assert session.claims is None


def test_protocol_version_is_checked_before_the_token() -> None:
    effects = make_session().receive(f.Hello(token="not-a-token", protocol=0, id="h1"), NOW)

    assert_error_then_close(effects, ErrorCode.UNSUPPORTED_PROTOCOL, "h1")


# Authenticated


def test_second_hello_is_refused_and_the_connection_stays_open() -> None:
    session = open_session(Role.DOCTOR, "d1")
    claims = session.claims

    effects = session.receive(f.Hello(token=make_token(Role.DOCTOR, "d1"), id="h2"), NOW)

    assert_error_only(effects, ErrorCode.ALREADY_AUTHENTICATED, "h2")
    assert session.state is State.OPEN
    assert session.claims == claims


def test_second_hello_with_another_identity_does_not_change_the_claims() -> None:
    session = open_session(Role.PATIENT, "p1")

    effects = session.receive(f.Hello(token=make_token(Role.SUPERVISOR, "boss"), id="h2"), NOW)

    assert_error_only(effects, ErrorCode.ALREADY_AUTHENTICATED, "h2")
    assert session.claims is not None
    assert (session.claims.role, session.claims.user_id) == (Role.PATIENT, "p1")


@pytest.mark.parametrize("frame_id", ["p1", None, ""])
def test_ping_gets_a_pong_referring_to_it(frame_id: str | None) -> None:
    session = open_session()

    assert session.receive(f.Ping(id=frame_id), NOW + 10) == [Reply(f.Pong(ref=frame_id))]
    assert session.state is State.OPEN


def test_many_pings_each_get_their_own_pong() -> None:
    session = open_session()

    pongs = [session.receive(f.Ping(id=f"p{n}"), NOW + n) for n in range(5)]

    assert pongs == [[Reply(f.Pong(ref=f"p{n}"))] for n in range(5)]


@pytest.mark.parametrize("role", list(Role))
def test_a_command_is_dispatched_with_the_frame_and_the_users_claims(role: Role) -> None:
    session = open_session(role, USERS[role])
    frame = SAMPLES["fetch"]

    assert session.receive(frame, NOW + 1) == [Dispatch(frame=frame, claims=session.claims)]


@pytest.mark.parametrize("code", [ErrorCode.BAD_FRAME, ErrorCode.FRAME_TOO_LARGE])
def test_rejected_frame_after_hello_only_replies_an_error_and_stays_open(code: ErrorCode) -> None:
    session = open_session()

    effects = session.reject(ProtocolError(code, "cannot read that", "f1"), NOW)

    assert effects == [Reply(f.Error(code=code, message="cannot read that", ref="f1"))]
    assert session.state is State.OPEN
    assert session.receive(f.Ping(id="p1"), NOW) == [Reply(f.Pong(ref="p1"))]


# Which frames each role may send


def test_the_table_below_names_every_client_frame_but_hello() -> None:
    assert set().union(*MAY_SEND.values()) == set(SAMPLES) - {"hello"}


def _role_cases() -> list[typing.Any]:
    return [
        pytest.param(role, name, id=f"{role.value}-{name}")
        for role, name in itertools.product(Role, sorted(set(SAMPLES) - {"hello"}))
    ]


@pytest.mark.parametrize(("role", "name"), _role_cases())
def test_each_role_may_send_its_frames_and_gets_wrong_role_for_the_others(
    role: Role, name: str
) -> None:
    session = open_session(role, USERS[role])
    frame = SAMPLES[name]
    if name == "renew":
        frame = f.Renew(token=make_token(role, USERS[role], now=NOW + 1), id="x-renew")

    effects = session.receive(frame, NOW + 1)

    if name not in MAY_SEND[role]:
        assert_error_only(effects, ErrorCode.WRONG_ROLE, f"x-{name}")
        # The type as the client wrote it, not the class name ("typing", not "typingsignal").
        assert error_of(effects[0]).message == f"{role.value}s cannot send {name}"
        assert session.state is State.OPEN
    elif name == "ping":
        assert effects == [Reply(f.Pong(ref="x-ping"))]
    elif name == "renew":
        assert effects == [Reply(f.Renewed(expires_at=EXPIRES_AT + 1, ref="x-renew"))]
    else:
        assert effects == [Dispatch(frame=frame, claims=session.claims)]


# Renew


def test_renew_for_the_same_user_extends_the_expiry_and_the_deadlines() -> None:
    session = open_session(Role.DOCTOR, "d1")
    later = NOW + 600
    token = tokens.issue(SECRET, Role.DOCTOR, "d1", now=later, ttl_s=TTL_S, name="Dr New")

    effects = session.receive(f.Renew(token=token, id="r1"), later)

    new_expiry = int(later) + TTL_S
    assert effects == [Reply(f.Renewed(expires_at=new_expiry, ref="r1"))]
    assert session.claims == Claims(
        role=Role.DOCTOR,
        user_id="d1",
        expires_at=new_expiry,
        name="Dr New",
        session_started=int(later),
    )
    assert session.next_deadline() == new_expiry - EXPIRY_WARNING_S
    assert session.tick(EXPIRES_AT) == []  # the old expiry passes without a close
    assert session.state is State.OPEN


def test_commands_after_a_renew_carry_the_renewed_claims() -> None:
    session = open_session(Role.DOCTOR, "d1")
    token = tokens.issue(
        SECRET, Role.DOCTOR, "d1", now=NOW, ttl_s=TTL_S * 2, departments=("psych",)
    )
    session.receive(f.Renew(token=token, id="r1"), NOW)

    (dispatch,) = session.receive(SAMPLES["take_next"], NOW + 1)

    assert isinstance(dispatch, Dispatch)
    assert dispatch.claims.departments == ("psych",)
    assert dispatch.claims.expires_at == int(NOW) + TTL_S * 2


@pytest.mark.parametrize(
    ("role", "user_id"),
    [
        pytest.param(Role.DOCTOR, "d2", id="other-user"),
        pytest.param(Role.SUPERVISOR, "d1", id="other-role"),
        pytest.param(Role.PATIENT, "d1", id="patient-with-the-same-id"),
    ],
)
def test_renew_naming_another_user_or_role_is_refused_and_changes_nothing(
    role: Role, user_id: str
) -> None:
    session = open_session(Role.DOCTOR, "d1")
    claims = session.claims

    effects = session.receive(f.Renew(token=make_token(role, user_id), id="r1"), NOW + 1)

    assert_error_only(effects, ErrorCode.RENEW_MISMATCH, "r1")
    assert session.claims == claims
    assert session.state is State.OPEN


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("not-a-token", id="garbage"),
        pytest.param(make_token(Role.DOCTOR, "d1", secret="forger-" + "f" * 57), id="forged"),
        pytest.param(make_token(Role.DOCTOR, "d1", now=NOW - TTL_S), id="expired"),
    ],
)
def test_renew_with_a_bad_token_fails_but_the_connection_stays(token: str) -> None:
    session = open_session(Role.DOCTOR, "d1")
    claims = session.claims

    effects = session.receive(f.Renew(token=token, id="r1"), NOW + 1)

    assert_error_only(effects, ErrorCode.AUTH_FAILED, "r1")
    assert session.claims == claims
    assert session.state is State.OPEN
    assert session.receive(f.Ping(id="p1"), NOW + 2) == [Reply(f.Pong(ref="p1"))]


# Token expiry: a warning, then the close


def test_the_first_deadline_is_the_warning_before_the_expiry() -> None:
    session = open_session()

    assert session.next_deadline() == WARN_AT
    assert session.tick(WARN_AT - 0.001) == []
    assert session.next_deadline() == WARN_AT


def test_the_warning_comes_once_then_the_socket_closes_at_the_expiry() -> None:
    session = open_session()

    assert session.tick(WARN_AT) == [Reply(f.TokenExpiring(expires_at=EXPIRES_AT))]
    assert session.next_deadline() == EXPIRES_AT
    assert session.tick(WARN_AT + 1) == []
    assert session.tick(EXPIRES_AT - 0.001) == []
    assert session.state is State.OPEN

    assert session.tick(EXPIRES_AT) == [Close(CloseCode.TOKEN_EXPIRED, "token expired")]
    assert session.state is State.CLOSED
    assert session.next_deadline() is None
    assert session.tick(EXPIRES_AT + 1) == []


def test_a_late_tick_past_the_expiry_closes_without_warning_first() -> None:
    session = open_session()

    assert session.tick(EXPIRES_AT + 30) == [Close(CloseCode.TOKEN_EXPIRED, "token expired")]


def test_a_frame_arriving_when_the_warning_is_due_gets_the_warning_and_is_still_handled() -> None:
    session = open_session()

    effects = session.receive(f.Ping(id="p1"), WARN_AT + 1)

    assert effects == [
        Reply(f.TokenExpiring(expires_at=EXPIRES_AT)),
        Reply(f.Pong(ref="p1")),
    ]
    assert session.tick(WARN_AT + 2) == []  # warned once


def test_a_frame_arriving_at_the_expiry_closes_the_socket_and_is_not_dispatched() -> None:
    session = open_session()

    effects = session.receive(SAMPLES["send"], EXPIRES_AT)

    assert effects == [Close(CloseCode.TOKEN_EXPIRED, "token expired")]
    assert session.state is State.CLOSED


def test_a_renew_after_the_warning_moves_both_the_warning_and_the_close() -> None:
    session = open_session(Role.PATIENT, "p1")
    assert session.tick(WARN_AT) == [Reply(f.TokenExpiring(expires_at=EXPIRES_AT))]
    renewed_at = WARN_AT + 10
    token = make_token(Role.PATIENT, "p1", now=renewed_at)
    new_expiry = int(renewed_at) + TTL_S

    assert session.receive(f.Renew(token=token, id="r1"), renewed_at) == [
        Reply(f.Renewed(expires_at=new_expiry, ref="r1"))
    ]

    assert session.next_deadline() == new_expiry - EXPIRY_WARNING_S
    assert session.tick(EXPIRES_AT) == []
    assert session.tick(new_expiry - EXPIRY_WARNING_S) == [
        Reply(f.TokenExpiring(expires_at=new_expiry))
    ]
    assert session.tick(new_expiry) == [Close(CloseCode.TOKEN_EXPIRED, "token expired")]


def test_a_token_already_inside_the_warning_window_at_hello_is_warned_at_once() -> None:
    session = make_session()
    session.receive(f.Hello(token=make_token(), id="h1"), WARN_AT + 1)

    assert session.next_deadline() == WARN_AT  # already due: the gateway ticks straight away
    assert session.tick(WARN_AT + 1) == [Reply(f.TokenExpiring(expires_at=EXPIRES_AT))]
    assert session.tick(WARN_AT + 2) == []
    assert session.tick(EXPIRES_AT) == [Close(CloseCode.TOKEN_EXPIRED, "token expired")]


def test_a_renewed_token_already_inside_the_warning_window_is_warned_again() -> None:
    session = open_session(Role.PATIENT, "p1")
    assert session.tick(WARN_AT) == [Reply(f.TokenExpiring(expires_at=EXPIRES_AT))]
    short = make_token(Role.PATIENT, "p1", now=WARN_AT, ttl_s=int(EXPIRY_WARNING_S) + 30)
    new_expiry = int(WARN_AT) + int(EXPIRY_WARNING_S) + 30

    session.receive(f.Renew(token=short, id="r1"), WARN_AT + 40)

    assert session.tick(WARN_AT + 41) == [Reply(f.TokenExpiring(expires_at=new_expiry))]


# Closed


def closed_session() -> Session:
    session = make_session()
    session.receive(f.Ping(id="p0"), NOW)
    assert session.state is State.CLOSED
    return session


def test_closed_session_ignores_every_frame_and_reject() -> None:
    session = closed_session()

    for frame in SAMPLES.values():
        assert session.receive(frame, NOW) == []
    assert session.reject(ProtocolError(ErrorCode.BAD_FRAME, "bad"), NOW) == []
    assert session.state is State.CLOSED
    assert session.next_deadline() is None


def test_session_closed_by_a_failed_hello_ignores_a_later_valid_hello() -> None:
    session = make_session()
    session.receive(f.Hello(token="not-a-token", id="h1"), NOW)

    assert session.receive(f.Hello(token=make_token(), id="h2"), NOW) == []
    assert session.state is State.CLOSED
    assert session.claims is None
