"""The session's defences against a misbehaving client: the per-connection rate limit, the
violations that close the socket (4008), and the typing throttle. Pure calls, times passed in.
"""

from __future__ import annotations

from chatsvc.protocol import frames as f
from chatsvc.protocol.errors import CloseCode, ErrorCode, ProtocolError
from chatsvc.protocol.session import (
    TYPING_INTERVAL_S,
    TYPING_TRACKED,
    VIOLATION_WINDOW_S,
    Close,
    Dispatch,
    Limits,
    Reply,
    State,
)
from chatsvc.tokens import Role
from tests.chatsvc.sessions import (
    NOW,
    SAMPLES,
    assert_error_only,
    error_of,
    open_session,
)

# The rate limit


def test_a_burst_passes_then_frames_over_the_rate_are_refused_referring_to_them() -> None:
    session = open_session(limits=Limits(frames_per_second=2.0, burst=5, max_violations=100))

    passed = [session.receive(f.Ping(id=f"p{n}"), NOW) for n in range(5)]
    over = session.receive(SAMPLES["send"], NOW)

    assert passed == [[Reply(f.Pong(ref=f"p{n}"))] for n in range(5)]
    assert_error_only(over, ErrorCode.RATE_LIMITED, "x-send")  # and not dispatched
    assert session.state is State.OPEN


def test_the_rate_limit_refills_at_the_configured_rate_up_to_the_burst() -> None:
    session = open_session(limits=Limits(frames_per_second=2.0, burst=3, max_violations=100))
    for n in range(3):
        session.receive(f.Ping(id=f"p{n}"), NOW)

    assert_error_only(session.receive(f.Ping(id="a"), NOW + 0.4), ErrorCode.RATE_LIMITED, "a")
    assert session.receive(f.Ping(id="b"), NOW + 0.5) == [Reply(f.Pong(ref="b"))]
    assert_error_only(session.receive(f.Ping(id="c"), NOW + 0.5), ErrorCode.RATE_LIMITED, "c")

    # A long quiet spell refills the bucket to the burst, no further.
    later = NOW + 60
    allowed = [session.receive(f.Ping(id=f"q{n}"), later) for n in range(4)]
    assert [type(effects[0].frame) for effects in allowed] == [f.Pong, f.Pong, f.Pong, f.Error]


# Violations: over-limit and undecodable frames, counted over a window


def test_violations_over_the_limit_within_the_window_close_with_4008() -> None:
    session = open_session(limits=Limits(frames_per_second=1.0, burst=1, max_violations=3))
    session.receive(f.Ping(id="p0"), NOW)  # takes the only token

    first = [
        session.reject(ProtocolError(ErrorCode.BAD_FRAME, "bad", "b1"), NOW + 0.1),
        session.receive(f.Ping(id="p1"), NOW + 0.2),  # over the rate
        session.reject(ProtocolError(ErrorCode.FRAME_TOO_LARGE, "big", None), NOW + 0.3),
    ]
    last = session.receive(f.Ping(id="p2"), NOW + 0.4)

    assert [error_of(effects[0]).code for effects in first] == [
        ErrorCode.BAD_FRAME,
        ErrorCode.RATE_LIMITED,
        ErrorCode.FRAME_TOO_LARGE,
    ]
    assert all(len(effects) == 1 for effects in first)
    assert len(last) == 2
    assert (error_of(last[0]).code, error_of(last[0]).ref) == (ErrorCode.RATE_LIMITED, "p2")
    assert last[1] == Close(CloseCode.POLICY_VIOLATION, "too many bad or over-limit frames")
    assert session.state is State.CLOSED
    assert session.receive(f.Ping(id="p3"), NOW + 10) == []
    assert session.reject(ProtocolError(ErrorCode.BAD_FRAME, "bad"), NOW + 10) == []


def test_violations_older_than_the_window_are_forgotten() -> None:
    session = open_session(limits=Limits(max_violations=3))
    for n in range(3):
        session.reject(ProtocolError(ErrorCode.BAD_FRAME, "bad", f"b{n}"), NOW + n)

    later = NOW + 2 + VIOLATION_WINDOW_S + 0.001  # past the window of every earlier one
    effects = session.reject(ProtocolError(ErrorCode.BAD_FRAME, "bad", "b3"), later)

    assert_error_only(effects, ErrorCode.BAD_FRAME, "b3")
    assert session.state is State.OPEN


def test_the_violation_window_slides() -> None:
    session = open_session(limits=Limits(max_violations=3))
    for at in (NOW, NOW + 30, NOW + 31):
        session.reject(ProtocolError(ErrorCode.BAD_FRAME, "bad", "b"), at)

    # The first one has aged out: three in the window, not over the limit.
    kept_open = session.reject(ProtocolError(ErrorCode.BAD_FRAME, "bad", "b"), NOW + 61)
    closed = session.reject(ProtocolError(ErrorCode.BAD_FRAME, "bad", "b"), NOW + 62)

    assert_error_only(kept_open, ErrorCode.BAD_FRAME, "b")
    assert closed[-1] == Close(CloseCode.POLICY_VIOLATION, "too many bad or over-limit frames")
    assert session.state is State.CLOSED


def test_wrong_role_frames_are_refused_but_are_not_violations() -> None:
    session = open_session(Role.PATIENT, "p1", limits=Limits(max_violations=1))

    for n in range(5):
        effects = session.receive(f.TakeNext(id=f"t{n}"), NOW + n)
        assert_error_only(effects, ErrorCode.WRONG_ROLE, f"t{n}")

    assert session.state is State.OPEN


# Typing indicators: one per consultation per interval, the rest dropped quietly


def test_a_second_typing_within_the_interval_is_dropped_quietly() -> None:
    session = open_session(Role.PATIENT, "p1")
    first = f.TypingSignal(consultation="c1", id="t1")

    assert session.receive(first, NOW) == [Dispatch(frame=first, claims=session.claims)]
    assert session.receive(f.TypingSignal(consultation="c1", id="t2"), NOW + 1.9) == []


def test_typing_in_another_consultation_passes_within_the_interval() -> None:
    session = open_session(Role.DOCTOR, "d1")
    session.receive(f.TypingSignal(consultation="c1"), NOW)
    other = f.TypingSignal(consultation="c2", id="t2")

    assert session.receive(other, NOW + 0.5) == [Dispatch(frame=other, claims=session.claims)]


def test_typing_passes_again_once_the_interval_since_the_last_passed_one_is_over() -> None:
    session = open_session(Role.PATIENT, "p1")
    session.receive(f.TypingSignal(consultation="c1"), NOW)
    session.receive(f.TypingSignal(consultation="c1"), NOW + 1.5)  # dropped: no new interval
    again = f.TypingSignal(consultation="c1", id="t3")

    assert session.receive(again, NOW + TYPING_INTERVAL_S) == [
        Dispatch(frame=again, claims=session.claims)
    ]


def test_dropped_typing_is_not_a_violation() -> None:
    session = open_session(Role.PATIENT, "p1", limits=Limits(max_violations=1))

    for n in range(20):
        session.receive(f.TypingSignal(consultation="c1"), NOW + n * 0.05)

    assert session.state is State.OPEN


def test_typing_throttle_holds_while_a_client_names_ever_new_consultations() -> None:
    session = open_session(Role.DOCTOR, "d1")
    for n in range(500):
        session.receive(f.TypingSignal(consultation=f"c{n}"), NOW + n * 0.1)

    recent = f.TypingSignal(consultation="c499", id="recent")
    assert session.receive(recent, NOW + 50.0) == []  # still throttled after the clean-ups
    # Private, but the bound is the point: stale entries are dropped, not kept for ever.
    assert len(session._last_typing) <= TYPING_TRACKED


# Read and delivery marks: plain frames under the rate limit, never throttled like typing


def test_read_and_delivery_marks_each_take_a_token_and_are_dispatched_every_time() -> None:
    session = open_session(
        Role.PATIENT, "p1", limits=Limits(frames_per_second=1.0, burst=4, max_violations=100)
    )
    marks = [
        f.MarkDelivered(consultation="c1", seq=1, id="d1"),
        f.MarkDelivered(consultation="c1", seq=2, id="d2"),
        f.MarkRead(consultation="c1", seq=2, id="r1"),
        f.MarkDelivered(consultation="c1", seq=3, id="d3"),
    ]

    passed = [session.receive(mark, NOW) for mark in marks]
    over = session.receive(f.MarkDelivered(consultation="c1", seq=4, id="d4"), NOW)

    assert [[type(effect) for effect in effects] for effects in passed] == [[Dispatch]] * 4
    assert [effects[0].frame for effects in passed] == marks  # type: ignore[union-attr]
    assert_error_only(over, ErrorCode.RATE_LIMITED, "d4")
