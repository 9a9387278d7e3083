"""What the session tests share: tokens made with an explicit `now`, sessions opened with them,
one frame of every client type, and checks on the effects that come out."""

from __future__ import annotations

import functools

from chatsvc import tokens
from chatsvc.protocol import frames as f
from chatsvc.protocol.errors import CloseCode, ErrorCode
from chatsvc.protocol.session import (
    EXPIRY_WARNING_S,
    Authenticated,
    Close,
    Effect,
    Limits,
    Reply,
    Session,
    State,
)
from chatsvc.tokens import Role

SECRET = "session-test-secret-" + "s" * 44  # 64 bytes, as the HMAC key length warning wants
NOW = 1_700_000_000.0
TTL_S = 900
EXPIRES_AT = int(NOW) + TTL_S
WARN_AT = EXPIRES_AT - EXPIRY_WARNING_S
# Limits that the tests of other behaviour never reach.
NO_LIMITS = Limits(frames_per_second=1000.0, burst=1000, max_violations=1000)
USERS = {Role.PATIENT: "p1", Role.DOCTOR: "d1", Role.SUPERVISOR: "s1"}

# One frame of every client type, each with its own id.
SAMPLES: dict[str, f.Inbound] = {
    "hello": f.Hello(token="t", id="x-hello"),
    "renew": f.Renew(token="t", id="x-renew"),
    "ping": f.Ping(id="x-ping"),
    "quote": f.QuoteRequest(department="general", id="x-quote"),
    "join": f.Join(
        department="general",
        intake=f.IntakeForm(symptoms="cough"),
        consent=True,
        notice_acknowledged=True,
        id="x-join",
    ),
    "leave": f.Leave(id="x-leave"),
    "set_status": f.SetStatus(status="available", id="x-set_status"),
    "take_next": f.TakeNext(id="x-take_next"),
    "accept": f.Accept(consultation="c1", id="x-accept"),
    "end": f.End(consultation="c1", summary="Rest and fluids.", id="x-end"),
    "transfer": f.Transfer(consultation="c1", department="psych", id="x-transfer"),
    "patient_history": f.PatientHistory(consultation="c1", id="x-patient_history"),
    "send": f.Send(consultation="c1", client_msg_id="m1", text="hello", id="x-send"),
    "typing": f.TypingSignal(consultation="c1", id="x-typing"),
    "read": f.MarkRead(consultation="c1", seq=4, id="x-read"),
    "delivered": f.MarkDelivered(consultation="c1", seq=4, id="x-delivered"),
    "fetch": f.Fetch(consultation="c1", id="x-fetch"),
    "open": f.Open(consultation="c1", id="x-open"),
    "list_consultations": f.ListConsultations(id="x-list_consultations"),
    "list_audit": f.ListAudit(id="x-list_audit"),
}


def make_session(limits: Limits = NO_LIMITS) -> Session:
    return Session(verify_token=functools.partial(tokens.verify, SECRET), limits=limits)


def make_token(
    role: Role = Role.PATIENT,
    user_id: str = "p1",
    name: str = "",
    secret: str = SECRET,
    now: float = NOW,
    ttl_s: int = TTL_S,
    departments: tuple[str, ...] = (),
) -> str:
    return tokens.issue(
        secret, role, user_id, now=now, ttl_s=ttl_s, name=name, departments=departments
    )


def open_session(
    role: Role = Role.DOCTOR, user_id: str = "d1", limits: Limits = NO_LIMITS
) -> Session:
    session = make_session(limits)
    effects = session.receive(f.Hello(token=make_token(role, user_id), id="h1"), NOW)
    assert [type(effect) for effect in effects] == [Authenticated]
    assert session.state is State.OPEN
    return session


def error_of(effect: Effect) -> f.Error:
    assert isinstance(effect, Reply), effect
    assert isinstance(effect.frame, f.Error), effect
    assert effect.frame.message
    return effect.frame


def assert_error_then_close(effects: list[Effect], code: ErrorCode, ref: str | None) -> None:
    """The effects of a failed start: one error frame, then a close with code 4001."""
    assert len(effects) == 2, effects
    reply, close = effects
    error = error_of(reply)
    assert (error.code, error.ref) == (code, ref)
    assert close == Close(CloseCode.AUTH_FAILED, code.value)


def assert_error_only(effects: list[Effect], code: ErrorCode, ref: str | None) -> None:
    assert len(effects) == 1, effects
    error = error_of(effects[0])
    assert (error.code, error.ref) == (code, ref)
