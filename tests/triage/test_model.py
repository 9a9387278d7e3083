"""The triage engine against an in-memory reference model, driven by hypothesis.

Random sequences of desk operations (joins and leaves, doctors' statuses and heartbeats,
take_next, push offers and accepts, ends by anyone, patient_left, transfers, requeues,
reprioritisation, patient presence, clock moves, doctors going quiet, timer sweeps, and replays
of earlier calls by request id) run on the suite's real Redis through `Engine`, and on `Model`
(tests/triage/model.py): plain Python that states the rules of issue 4 and the scripts' header
comments. After every step each answer (result, or refusal type) must be the model's, and so
must the whole desk: every ticket, consultation, doctor and patient record, each queue's order,
the available sets, the pending timers and the counters. Invariants that need no model are
checked too: no doctor over capacity, no patient waiting or matched twice at once, counters that
add up.

Consultation ids are random, so the model names a consultation by its ticket (one ticket, one
consultation) and learns the engine's id from the first answer or record that shows it.

The model found four engine faults, fixed in f448c0a; a regression test per fault replays its
minimal sequence through the same machine and asserts the corrected behaviour outright.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, currently_in_test_context, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from tests.triage.conftest import RULES, START_MS
from tests.triage.model import (
    DEPARTMENTS,
    DOCTORS,
    OPEN,
    PUSH,
    MConsultation,
    Model,
    Offers,
    Refuse,
)
from triage import errors, keys
from triage.engine import Engine, ManualClock
from triage.models import ConsultationState, DoctorStatus, TicketState, Urgency
from triage.records import (
    Abandoned,
    Ended,
    Enqueued,
    Intake,
    Match,
    Moved,
    Offer,
    StatusChange,
    consultation_from,
    doctor_from,
    ticket_from,
)
from triage.scripts import Scripts

T = TypeVar("T")

PATIENTS = ("p1", "p2", "p3", "p4", "p5", "p6")
GHOST = "ghost"  # a doctor who never signed on
STRANGER = "x1"  # takes part in no consultation
UNKNOWN_CONSULTATION = "c-unknown"
UNKNOWN_TICKET = "t-unknown"

DOCTOR = st.sampled_from(tuple(DOCTORS))
ANY_DOCTOR = st.sampled_from((*DOCTORS, *DOCTORS, GHOST))
# Psych most often: push routing (offers, accepts, timeouts) has the most transitions to cover.
DEPARTMENT = st.sampled_from(("general", "psych", "paeds", "general", "psych", "psych", "cardio"))
SYMPTOMS = st.sampled_from(
    (
        "cough",
        "crushing chest pain",  # general: emergency
        "high fever at night",  # general: urgent
        "chest pain and high fever",  # general: two flags
        "我胸痛",  # general: emergency
        "feeling suicidal",  # psych: emergency
    )
)
URGENCY = st.sampled_from(
    (Urgency.ROUTINE, Urgency.ROUTINE, Urgency.PRIORITY, Urgency.URGENT, Urgency.EMERGENCY)
)
CONSENT = st.sampled_from((True,) * 7 + (False,))
OWN = st.sampled_from((True, True, True, False))  # the consultation's own doctor acts
STATUS = st.sampled_from(
    (DoctorStatus.AVAILABLE, DoctorStatus.AVAILABLE, DoctorStatus.AWAY, DoctorStatus.OFFLINE)
)
TRANSFER_TARGET = st.sampled_from((*DEPARTMENTS, "cardio", *DOCTORS, GHOST))
PICK = st.integers(min_value=0, max_value=63)  # an index into the model's records, modulo
UNKNOWN_PICK = 15  # pick % 16 == this names an id the desk never issued
ARRIVAL = st.tuples(PICK, DEPARTMENT, SYMPTOMS, URGENCY, CONSENT)
SECONDS = st.sampled_from((1, 5, 10, 20, 31, 61))
HEARTBEAT_EVERY_S = 15  # how often a live doctor's client beats while time passes
# Whose clients stop beating while time passes: mostly nobody's, so the desk keeps doctors.
SILENT = st.one_of(st.just(frozenset[str]()), st.frozensets(DOCTOR, min_size=1, max_size=2))
# How long a doctor holding consultations stays quiet: just past their presence, or also past
# the accept deadline of an offer made before (so one sweep finds both due).
QUIET_S = st.sampled_from((RULES.presence_ttl_s + 1, RULES.accept_timeout_s + 1))
# What notices such a lapse first: the sweep, or a call that meets it before the sweep does.
NOTICED_BY = st.sampled_from(("fire_timers", "heartbeat", "take_next", "accept", "enqueue"))


# -- the machine ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """What a refused engine call answered."""

    kind: type[errors.Refused]
    detail: str


@dataclass
class Call:
    """A mutating call with its request id, kept for replays, and its first answer."""

    name: str
    run: Callable[[], Awaitable[object]]
    first: object


def choose(pick: int, likely: Sequence[T], every: Sequence[T]) -> T:
    """Mostly one of `likely` (a call that can succeed), sometimes any of `every`."""
    pool = likely if likely and pick % 4 != 3 else every
    return pool[pick % len(pool)]


class DeskMachine(RuleBasedStateMachine):
    """Rules pick what to do; `do_*` actions do it on both sides, compare the answers and return
    the engine's; `check` compares the whole desk after every step."""

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.clock = ManualClock(START_MS)
        self.client = Redis.from_url(redis_url, decode_responses=True)
        # The checks read with a plain blocking client: no event loop round trip per step.
        self.reader = SyncRedis.from_url(redis_url, decode_responses=True)
        self.engine = Engine(self.client, Scripts(self.client), RULES, self.clock)
        self.model = Model(START_MS)
        self.calls: list[Call] = []
        self.ids = itertools.count(1)
        self.run(self.client.flushall())
        self.run(self.engine.init())

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.reader.close()
        self.runner.close()

    # -- plumbing -------------------------------------------------------------------------------

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wait() -> T:
            return await awaitable

        return self.runner.run(wait())

    def answer(self, name: str, awaitable: Awaitable[object]) -> object:
        if currently_in_test_context():
            note(name)
        try:
            return self.run(awaitable)
        except errors.Refused as refused:
            return Refusal(type(refused), refused.detail)

    def mutate(self, name: str, make: Callable[[str], Awaitable[object]]) -> object:
        request_id = f"r{next(self.ids)}"
        call = Call(f"{name} [{request_id}]", lambda: make(request_id), None)
        call.first = self.answer(call.name, call.run())
        self.calls.append(call)
        return call.first

    def expect(self, actual: object, model_call: Callable[[], T]) -> T | None:
        """The model's answer, or None once the engine's refusal is checked against it."""
        try:
            expected = model_call()
        except Refuse as refused:
            assert isinstance(actual, Refusal) and actual.kind is refused.kind, (
                f"engine answered {actual!r}; the model refuses with {refused.kind.__name__}"
            )
            return None
        assert not isinstance(actual, Refusal), f"engine refused {actual!r}; model: {expected!r}"
        return expected

    def learn(self, con: MConsultation, cid: str) -> None:
        if con.cid:
            assert cid == con.cid, f"consultation of {con.ticket}: {cid} != {con.cid}"
        else:
            assert cid and self.model.by_cid(cid) is None, f"{cid!r} for {con.ticket}"
            con.cid = cid

    def offers(self, expected: Offers, actual: tuple[Offer, ...]) -> tuple[Offer, ...]:
        """Check the doctors offered, learn new ids; the offers the engine should have made."""
        assert [d for _, d in expected] == [o.doctor_id for o in actual], (expected, actual)
        for (ticket_id, _), offer in zip(expected, actual, strict=True):
            self.learn(self.model.cons[ticket_id], offer.consultation_id)
        return tuple(Offer(self.model.cons[t].cid, d) for t, d in expected)

    def cid(self, ticket_id: str) -> str:
        """The engine's id for the consultation of `ticket_id` (an unknown one if none)."""
        con = self.model.cons.get(ticket_id)
        return con.cid if con else UNKNOWN_CONSULTATION

    # -- actions: one call on both sides, answers compared; each returns the engine's answer ---

    def do_enqueue(
        self, patient: str, dept: str, symptoms: str, urgency: Urgency, consent: bool
    ) -> object:
        consent_ms = self.clock.now_ms - 1000 if consent else None
        actual = self.mutate(
            f"enqueue({patient}, {dept}, {symptoms!r}, {urgency.label}, consent={consent})",
            lambda rid: self.engine.enqueue(
                patient, dept, Intake(symptoms), consent_ms, request_id=rid, urgency=urgency
            ),
        )
        expected = self.expect(
            actual, lambda: self.model.enqueue(patient, dept, symptoms, urgency, consent)
        )
        if expected is None:
            return actual
        ticket, position, offers = expected
        assert isinstance(actual, Enqueued)
        assert actual == Enqueued(
            ticket.id,
            self.model.arrivals,
            position,
            ticket.urgency,
            ticket.red_flags,
            self.offers(offers, actual.offers),
        )
        return actual

    def do_cancel(self, patient: str) -> object:
        actual = self.mutate(
            f"cancel({patient})", lambda rid: self.engine.cancel(patient, request_id=rid)
        )
        expected = self.expect(actual, lambda: self.model.cancel(patient))
        if expected is not None:
            ticket, waited = expected
            assert actual == Abandoned(ticket.id, waited, ticket.urgency, ticket.red_flags)
        return actual

    def do_reprioritise(self, ticket_id: str, urgency: Urgency) -> object:
        actual = self.mutate(
            f"reprioritise({ticket_id}, {urgency.label})",
            lambda rid: self.engine.reprioritise(ticket_id, urgency, "model", request_id=rid),
        )
        expected = self.expect(actual, lambda: self.model.reprioritise(ticket_id, urgency))
        if expected is not None:
            assert actual == expected
        return actual

    def do_ticket_presence(self, ticket_id: str, connected: bool) -> object:
        actual = self.answer(
            f"ticket_presence({ticket_id}, connected={connected})",
            self.engine.ticket_presence(ticket_id, connected),
        )
        self.expect(actual, lambda: self.model.ticket_presence(ticket_id, connected))
        return actual

    def do_set_status(self, doctor: str, status: DoctorStatus) -> object:
        depts, capacity = DOCTORS[doctor]
        actual = self.mutate(
            f"set_status({doctor}, {status.value})",
            lambda rid: self.engine.set_status(
                doctor, status, f"Dr {doctor}", depts, capacity, request_id=rid
            ),
        )
        expected = self.expect(actual, lambda: self.model.set_status(doctor, status))
        if expected is not None:
            model_doctor, offers = expected
            assert isinstance(actual, StatusChange)
            assert actual == StatusChange(
                status, len(model_doctor.open), capacity, self.offers(offers, actual.offers)
            )
        return actual

    def do_heartbeat(self, doctor: str) -> object:
        actual = self.answer(f"heartbeat({doctor})", self.engine.heartbeat(doctor))
        expected = self.expect(actual, lambda: self.model.heartbeat(doctor))
        if expected is not None:
            assert actual == expected
        return actual

    def do_take_next(self, doctor: str) -> object:
        actual = self.mutate(f"take_next({doctor})", lambda rid: self.engine.take_next(doctor, rid))
        expected = self.expect(actual, lambda: self.model.take_next(doctor))
        if expected is not None:
            con, waited = expected
            assert isinstance(actual, Match)
            self.learn(con, actual.consultation_id)
            assert actual == Match(con.cid, con.ticket, con.patient, con.dept, waited)
        return actual

    def do_accept(self, doctor: str, ticket_id: str) -> object:
        cid = self.cid(ticket_id)
        actual = self.mutate(
            f"accept({doctor}, <{ticket_id}>)", lambda rid: self.engine.accept(doctor, cid, rid)
        )
        expected = self.expect(actual, lambda: self.model.accept(doctor, cid))
        if expected is not None:
            con, waited = expected
            assert actual == Match(con.cid, con.ticket, con.patient, con.dept, waited)
        return actual

    def do_end(self, user: str, ticket_id: str) -> object:
        cid = self.cid(ticket_id)
        actual = self.mutate(
            f"end({user}, <{ticket_id}>)", lambda rid: self.engine.end(user, cid, "summary", rid)
        )
        expected = self.expect(actual, lambda: self.model.end(user, cid))
        if expected is not None:
            assert isinstance(actual, Ended)
            assert actual == Ended(cid, "completed", self.offers(expected[1], actual.offers))
        return actual

    def do_patient_left(self, ticket_id: str) -> object:
        cid = self.cid(ticket_id)
        actual = self.mutate(
            f"patient_left(<{ticket_id}>)", lambda rid: self.engine.patient_left(cid, rid)
        )
        expected = self.expect(actual, lambda: self.model.patient_left(cid))
        if expected is not None:
            assert isinstance(actual, Ended)
            offers = self.offers(expected[1], actual.offers)
            assert actual == Ended(cid, "patient_left", offers)
        return actual

    def do_transfer(self, doctor: str, ticket_id: str, to: str) -> object:
        cid = self.cid(ticket_id)
        is_dept = to in DEPARTMENTS or to == "cardio"
        to_dept, to_doctor = (to, "") if is_dept else ("", to)
        actual = self.mutate(
            f"transfer({doctor}, <{ticket_id}>, to={to})",
            lambda rid: self.engine.transfer(doctor, cid, to_dept, to_doctor, request_id=rid),
        )
        expected = self.expect(actual, lambda: self.model.transfer(doctor, cid, to))
        if expected is not None:
            moved, offers = expected
            assert isinstance(actual, Moved)
            assert actual == Moved(cid, moved.state, self.offers(offers, actual.offers))
        return actual

    def do_requeue(self, ticket_id: str) -> object:
        cid = self.cid(ticket_id)
        actual = self.mutate(f"requeue(<{ticket_id}>)", lambda rid: self.engine.requeue(cid, rid))
        expected = self.expect(actual, lambda: self.model.requeue(cid))
        if expected is not None:
            moved, offers = expected
            assert isinstance(actual, Moved)
            assert actual == Moved(cid, moved.state, self.offers(offers, actual.offers))
        return actual

    def do_advance(self, seconds: int, silent: frozenset[str] = frozenset(DOCTORS)) -> None:
        """Time passes; the clients of doctors on duty keep sending heartbeats, except those of
        the `silent` ones (their presence lapses after a while)."""
        while seconds > 0:
            step = min(seconds, HEARTBEAT_EVERY_S)
            seconds -= step
            self.clock.advance(step)
            self.model.now = self.clock.now_ms
            for doctor in DOCTORS:
                on_duty = self.model.doctors[doctor].status not in (None, DoctorStatus.OFFLINE)
                if on_duty and doctor not in silent:
                    self.do_heartbeat(doctor)

    def do_fire_timers(self) -> object:
        actual = self.answer("fire_timers()", self.engine.fire_timers())
        assert actual == tuple(self.model.fire_timers())
        return actual

    # -- rules: what to do next -----------------------------------------------------------------

    @initialize(statuses=st.lists(STATUS, min_size=len(DOCTORS), max_size=len(DOCTORS)))
    def sign_on(self, statuses: list[DoctorStatus]) -> None:
        """Start with the staff signed on (or off), so that steps go to the desk's work."""
        for doctor, status in zip(DOCTORS, statuses, strict=True):
            self.do_set_status(doctor, status)

    @rule(arrivals=st.lists(ARRIVAL, min_size=1, max_size=3))
    def enqueue(self, arrivals: list[tuple[int, str, str, Urgency, bool]]) -> None:
        """A few patients arrive at once (mostly ones without an open ticket)."""
        for pick, dept, symptoms, urgency, consent in arrivals:
            free = [p for p in PATIENTS if p not in self.model.patients]
            self.do_enqueue(choose(pick, free, PATIENTS), dept, symptoms, urgency, consent)

    @rule(pick=PICK)
    def cancel(self, pick: int) -> None:
        waiting = [p for p, t in sorted(self.model.patients.items()) if t not in self.model.cons]
        self.do_cancel(choose(pick, waiting, (*PATIENTS, STRANGER)))

    def pick_ticket(self, pick: int) -> str:
        """Mostly a waiting ticket, sometimes any, or one the desk never issued."""
        if pick % 16 == UNKNOWN_PICK or not self.model.tickets:
            return UNKNOWN_TICKET
        every = sorted(self.model.tickets)
        waiting = [t for t in every if self.model.tickets[t].state == "waiting"]
        return choose(pick, waiting, every)

    @rule(pick=PICK, urgency=URGENCY)
    def reprioritise(self, pick: int, urgency: Urgency) -> None:
        self.do_reprioritise(self.pick_ticket(pick), urgency)

    @rule(pick=PICK, connected=st.booleans())
    def ticket_presence(self, pick: int, connected: bool) -> None:
        self.do_ticket_presence(self.pick_ticket(pick), connected)

    @rule(doctor=DOCTOR, status=STATUS)
    def set_status(self, doctor: str, status: DoctorStatus) -> None:
        self.do_set_status(doctor, status)

    @rule(doctor=ANY_DOCTOR)
    def heartbeat(self, doctor: str) -> None:
        self.do_heartbeat(doctor)

    @rule(pick=PICK)
    def take_next(self, pick: int) -> None:
        ready = [
            d.id
            for d in self.model.doctors.values()
            if d.status is DoctorStatus.AVAILABLE
            and len(d.open) < d.capacity
            and any(self.model.queue(dept) for dept in d.departments)
        ]
        self.do_take_next(choose(pick, ready, (*DOCTORS, GHOST)))

    def pick_consultation(self, pick: int, *likely: ConsultationState) -> MConsultation | None:
        """Mostly a consultation in a `likely` state, sometimes any; None: an unknown id."""
        every = sorted(self.model.cons.values(), key=lambda c: c.ticket)
        if pick % 16 == UNKNOWN_PICK or not every:
            return None
        return choose(pick, [c for c in every if c.state in likely], every)

    def actor(self, con: MConsultation | None, own: bool) -> str:
        """The consultation's doctor, or another one."""
        if own and con and con.doctor:
            return con.doctor
        return "d4" if con and con.doctor == "d3" else "d3"

    @precondition(lambda self: bool(self.model.cons))
    @rule(pick=PICK, own=OWN)
    def accept(self, pick: int, own: bool) -> None:
        con = self.pick_consultation(pick, ConsultationState.OFFERED)
        self.do_accept(self.actor(con, own), con.ticket if con else UNKNOWN_TICKET)

    @precondition(lambda self: bool(self.model.cons))
    @rule(pick=PICK, by=st.sampled_from(("doctor", "patient", "stranger")))
    def end(self, pick: int, by: str) -> None:
        con = self.pick_consultation(pick, ConsultationState.ACTIVE)
        users = {"doctor": con.doctor or "d1", "patient": con.patient} if con else {}
        self.do_end(users.get(by, STRANGER), con.ticket if con else UNKNOWN_TICKET)

    @precondition(lambda self: bool(self.model.cons))
    @rule(pick=PICK)
    def patient_left(self, pick: int) -> None:
        con = self.pick_consultation(pick)
        self.do_patient_left(con.ticket if con else UNKNOWN_TICKET)

    @precondition(lambda self: bool(self.model.cons))
    @rule(pick=PICK, own=OWN, to=TRANSFER_TARGET)
    def transfer(self, pick: int, own: bool, to: str) -> None:
        con = self.pick_consultation(pick, ConsultationState.ACTIVE)
        self.do_transfer(self.actor(con, own), con.ticket if con else UNKNOWN_TICKET, to)

    @precondition(lambda self: bool(self.model.cons))
    @rule(pick=PICK)
    def requeue(self, pick: int) -> None:
        con = self.pick_consultation(pick, *OPEN)
        self.do_requeue(con.ticket if con else UNKNOWN_TICKET)

    @rule(seconds=SECONDS, silent=SILENT)
    def advance(self, seconds: int, silent: frozenset[str]) -> None:
        self.do_advance(seconds, silent)

    @rule()
    def fire_timers(self) -> None:
        self.do_fire_timers()

    @precondition(lambda self: any(d.open for d in self.model.doctors.values()))
    @rule(pick=PICK, seconds=QUIET_S, noticed_by=NOTICED_BY)
    def vanish(self, pick: int, seconds: int, noticed_by: str) -> None:
        """A doctor holding consultations goes quiet (their colleagues' clients keep beating)
        until their presence lapses; whatever notices the lapse first must do what the sweep
        does. Random advances rarely line this up, so it gets a rule of its own."""
        model = self.model
        holding = sorted(d.id for d in model.doctors.values() if d.open)
        # Mostly one whose push cases a colleague could be offered at once.
        covered = [
            doctor
            for doctor in holding
            if any(
                other.listed and other.id != doctor and model.cons[t].dept in other.departments
                for t in model.doctors[doctor].open
                if model.cons[t].dept in PUSH
                for other in model.doctors.values()
            )
        ]
        doctor = choose(pick, covered, holding)
        self.do_advance(seconds, silent=frozenset({doctor}))
        offered = sorted(
            con.ticket
            for con in self.model.cons.values()
            if con.doctor == doctor and con.state is ConsultationState.OFFERED
        )
        if noticed_by == "heartbeat":
            self.do_heartbeat(doctor)
        elif noticed_by == "take_next":
            self.do_take_next(doctor)
        elif noticed_by == "accept" and offered:
            self.do_accept(doctor, offered[0])
        elif noticed_by == "enqueue":  # an offer round may meet the lapsed doctor first
            free = [p for p in PATIENTS if p not in self.model.patients]
            self.do_enqueue(choose(pick, free, PATIENTS), "psych", "cough", Urgency.ROUTINE, True)
        else:
            self.do_fire_timers()

    @precondition(lambda self: bool(self.calls))
    @rule(pick=PICK)
    def replay(self, pick: int) -> None:
        """A retried request id answers as the first time and changes nothing (the model is
        left as it is, and the invariant compares the whole desk with it)."""
        call = self.calls[-1 - pick % min(len(self.calls), 4)]  # mostly the latest calls
        again = self.answer(f"replay {call.name}", call.run())
        assert again == call.first, f"replayed {call.name}: {again!r} != {call.first!r}"

    # -- the whole desk against the model -------------------------------------------------------

    @invariant()
    def check(self) -> None:
        model = self.model
        ticket_ids = sorted(model.tickets)
        pipe = self.reader.pipeline(transaction=False)
        for ticket_id in ticket_ids:
            pipe.hgetall(keys.ticket(ticket_id))
        for doctor_id in DOCTORS:
            pipe.hgetall(keys.doctor(doctor_id))
        for patient in PATIENTS:
            pipe.hgetall(keys.patient(patient))
        for dept in DEPARTMENTS:
            pipe.zrange(keys.queue(dept), 0, -1)
            pipe.zrange(keys.available(dept), 0, -1)
            pipe.hgetall(keys.stats(dept))
        pipe.zrange(keys.timers(), 0, -1, withscores=True)
        pipe.hget(keys.desk_meta(), "arrivals")
        replies = iter(pipe.execute())
        tickets = {ticket_id: ticket_from(next(replies)) for ticket_id in ticket_ids}
        doctors = {doctor_id: next(replies) for doctor_id in DOCTORS}
        patients = {patient: next(replies) for patient in PATIENTS}
        queues: dict[str, tuple[str, ...]] = {}
        available: dict[str, list[str]] = {}
        stats: dict[str, dict[str, int]] = {}
        for dept in DEPARTMENTS:
            queues[dept] = tuple(next(replies))
            available[dept] = list(next(replies))
            stats[dept] = {name: int(value) for name, value in next(replies).items()}
        timers = [(name, int(score)) for name, score in next(replies)]
        assert int(next(replies) or 0) == model.arrivals

        for ticket_id, ticket in tickets.items():
            mine = model.tickets[ticket_id]
            con = model.cons.get(ticket_id)
            if con is None:
                assert ticket.consultation_id == "", ticket
            else:
                self.learn(con, ticket.consultation_id)
            assert (
                ticket.state,
                ticket.patient_id,
                ticket.department,
                ticket.urgency,
                ticket.join_ms,
                ticket.place,
                ticket.connected,
                ticket.red_flags,
            ) == (
                TicketState(mine.state),
                mine.patient,
                mine.dept,
                mine.urgency,
                mine.join_ms,
                mine.place,
                mine.connected,
                mine.red_flags,
            ), (ticket, mine)

        cons = sorted(model.cons.values(), key=lambda c: c.ticket)
        pipe = self.reader.pipeline(transaction=False)
        for con in cons:
            pipe.hgetall(keys.consultation(con.cid))
        records = [consultation_from(fields) for fields in pipe.execute()]
        for record, con in zip(records, cons, strict=True):
            assert (
                record.id,
                record.ticket_id,
                record.patient_id,
                record.department,
                record.state,
                record.doctor_id,
                record.outcome,
                record.former_doctors,
                record.started_ms is not None,
            ) == (
                con.cid,
                con.ticket,
                con.patient,
                con.dept,
                con.state,
                con.doctor,
                con.outcome,
                tuple(con.former),
                con.started,
            ), (record, con)

        for doctor_id, fields in doctors.items():
            mine_doctor = model.doctors[doctor_id]
            if mine_doctor.status is None:
                assert fields == {}, fields
                continue
            doctor = doctor_from(fields)
            assert (doctor.status, doctor.active, doctor.alive_until_ms, doctor.capacity) == (
                mine_doctor.status,
                len(mine_doctor.open),
                mine_doctor.alive_until,
                mine_doctor.capacity,
            ), (doctor, mine_doctor)

        for patient, fields in patients.items():
            held = model.patients.get(patient)
            want = {}
            if held is not None:
                con = model.cons.get(held)
                want = {"ticket": held, "consultation": con.cid if con else ""}
            assert fields == want, (patient, fields, want)

        for dept in DEPARTMENTS:
            assert queues[dept] == tuple(t.id for t in model.queue(dept)), dept
            listed = [d for d in model.doctors.values() if d.listed and dept in d.departments]
            order = [d.id for d in sorted(listed, key=lambda d: (d.score, d.id))]
            assert available[dept] == order, (dept, available[dept], order)
            assert stats[dept] == dict(model.stats[dept]), (dept, stats[dept])
        assert timers == model.timer_list()

        # What must hold whatever the model says: from the engine's records alone.
        for doctor_id, fields in doctors.items():
            if fields:
                doctor = doctor_from(fields)
                holding = sum(r.doctor_id == doctor_id and r.state in OPEN for r in records)
                assert holding == doctor.active <= doctor.capacity, doctor
        queued = [tid for q in queues.values() for tid in q]
        for patient in PATIENTS:
            waits = sum(tickets[tid].patient_id == patient for tid in queued)
            with_doctor = sum(r.patient_id == patient and r.state in OPEN for r in records)
            assert waits + with_doctor <= 1, f"{patient} is matched or waiting twice"
        total = Counter[str]()
        for counters in stats.values():
            total.update(counters)
        bound = sum(1 for t in tickets.values() if t.consultation_id)
        never_bound_waiting = sum(1 for tid in queued if not tickets[tid].consultation_id)
        abandoned = sum(t.state is TicketState.ABANDONED for t in tickets.values())
        assert total["joined"] == len(tickets) == abandoned + never_bound_waiting + bound
        assert total["abandoned"] == abandoned
        assert total["matched"] == sum(r.started_ms is not None for r in records)
        assert total["ended"] == sum(r.state is ConsultationState.ENDED for r in records)


# -- the tests --------------------------------------------------------------------------------

# Bounded so the suite runs in seconds; CHATSVC_TEST_MODEL_EXAMPLES=1000 (say) searches harder.
MODEL_SETTINGS = settings(
    max_examples=int(os.environ.get("CHATSVC_TEST_MODEL_EXAMPLES", "60")),
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_engine_agrees_with_the_reference_model(redis_url: str) -> None:
    class Desk(DeskMachine):  # the machine on the suite's Redis (hypothesis builds it bare)
        def __init__(self) -> None:
            super().__init__(redis_url)

    run_state_machine_as_test(Desk, settings=MODEL_SETTINGS)


# -- regressions: the faults the model found (f448c0a), each replayed from its minimal sequence --

T1 = "t000000000001"  # the first ticket of a desk, and so the name of its consultation here
T2 = "t000000000002"
ROUTINE = Urgency.ROUTINE
AVAILABLE = DoctorStatus.AVAILABLE
Move = Callable[[DeskMachine], object]


@pytest.fixture
def desk(redis_url: str) -> Iterator[DeskMachine]:
    """The machine outside hypothesis, to replay a fixed sequence of moves."""
    machine = DeskMachine(redis_url)
    yield machine
    machine.teardown()


def play(desk: DeskMachine, *moves: Move) -> object:
    """Make `moves` on the engine and the model, checking the whole desk after each; returns the
    engine's answer to the last one."""
    desk.check()
    answer: object = None
    for move in moves:
        answer = move(desk)
        desk.check()
    return answer


def timers(desk: DeskMachine) -> dict[str, int]:
    return {name: int(at) for name, at in desk.reader.zrange(keys.timers(), 0, -1, withscores=True)}


def at(seconds: int) -> int:
    return START_MS + seconds * 1000


@pytest.mark.parametrize("disconnected_again", [False, True], ids=["armed-before", "armed-again"])
def test_regression_a_queued_consultation_that_ends_closes_its_ticket_and_grace_timer(
    desk: DeskMachine, disconnected_again: bool
) -> None:
    """Was: ending a queued consultation left its ticket 'waiting' and its grace timer armed;
    the timer then ended it a second time and deleted the patient's newer record."""
    play(
        desk,
        lambda desk: desk.do_set_status("d1", AVAILABLE),
        lambda desk: desk.do_enqueue("p1", "general", "cough", ROUTINE, True),
        lambda desk: desk.do_ticket_presence(T1, False),  # grace timer armed while waiting
        lambda desk: desk.do_take_next("d1"),  # binding drops it
        lambda desk: desk.do_requeue(T1),
        # armed-again: the patient is disconnected while their consultation waits
        lambda desk: desk.do_ticket_presence(T1, not disconnected_again),
    )
    assert (f"grace|{T1}" in timers(desk)) is disconnected_again
    play(desk, lambda desk: desk.do_patient_left(T1))
    assert desk.run(desk.engine.ticket(T1)).state is TicketState.ASSIGNED
    assert f"grace|{T1}" not in timers(desk)

    rejoined = play(
        desk,
        lambda desk: desk.do_enqueue("p1", "general", "cough", ROUTINE, True),
        lambda desk: desk.do_advance(65),
        lambda desk: desk.do_fire_timers(),
    )
    assert rejoined == ("presence|d1",)  # nothing of T1's is left to fire
    assert desk.reader.hgetall(keys.patient("p1")) == {"ticket": T2, "consultation": ""}
    assert desk.run(desk.engine.waiting("general")) == (T2,)
    assert desk.run(desk.engine.stats("general"))["ended"] == 1
    again = play(desk, lambda desk: desk.do_enqueue("p1", "general", "cough", ROUTINE, True))
    assert isinstance(again, Refusal) and again.kind is errors.AlreadyWaiting


def test_regression_a_sweep_keeps_the_accept_timer_it_re_armed(desk: DeskMachine) -> None:
    """Was: timers_fire removed a snapshotted due timer that an earlier firing in the same sweep
    had re-armed, so the new offer never timed out."""
    fired = play(
        desk,
        lambda desk: desk.do_set_status("d3", AVAILABLE),  # presence until +20 s
        lambda desk: desk.do_advance(5, silent=frozenset({"d3"})),
        lambda desk: desk.do_enqueue("p1", "psych", "cough", ROUTINE, True),  # to d3 until +35
        lambda desk: desk.do_advance(34, silent=frozenset({"d3"})),
        lambda desk: desk.do_set_status("d4", AVAILABLE),
        lambda desk: desk.do_advance(1, silent=frozenset({"d3"})),
        # presence|d3 fires first and re-offers p1 to d4 until +70 s; the snapshotted
        # accept|<p1's case> is no longer due, so it is neither removed nor reported.
        lambda desk: desk.do_fire_timers(),
    )
    assert fired == ("presence|d3",)
    cid = desk.cid(T1)
    con = desk.run(desk.engine.consultation(cid))
    assert (con.state, con.doctor_id, con.former_doctors) == (
        ConsultationState.OFFERED,
        "d4",
        ("d3",),
    )
    assert timers(desk)[f"accept|{cid}"] == at(70)

    fired = play(
        desk,
        lambda desk: desk.do_advance(30, silent=frozenset()),  # d4 stays, but does not accept
        lambda desk: desk.do_fire_timers(),
    )
    assert fired == (f"accept|{cid}",)  # and so the offer to d4 does time out
    assert desk.run(desk.engine.consultation(cid)).state is ConsultationState.QUEUED
    doctor = desk.run(desk.engine.doctor("d4"))
    assert doctor is not None and doctor.status is DoctorStatus.AWAY


@pytest.mark.parametrize("noticed_by", ["heartbeat", "take_next", "accept"])
def test_regression_a_lapse_noticed_by_a_call_re_offers_push_cases_at_once(
    desk: DeskMachine, noticed_by: str
) -> None:
    """Was: a lapse noticed by heartbeat or take_next requeued push cases without offering them,
    unlike the presence timer it stands in for; accept by a lapsed doctor went through."""
    notice: Move = {
        "heartbeat": lambda desk: desk.do_heartbeat("d3"),
        "take_next": lambda desk: desk.do_take_next("d3"),
        "accept": lambda desk: desk.do_accept("d3", T1),  # the offer is theirs until +30 s
    }[noticed_by]
    accepted: tuple[Move, ...] = ()
    if noticed_by != "accept":
        accepted = (lambda desk: desk.do_accept("d3", T1),)
    answer = play(
        desk,
        lambda desk: desk.do_set_status("d3", AVAILABLE),  # presence until +20 s
        lambda desk: desk.do_enqueue("p1", "psych", "cough", ROUTINE, True),
        *accepted,
        lambda desk: desk.do_advance(15),
        lambda desk: desk.do_set_status("d4", AVAILABLE),
        lambda desk: desk.do_advance(6, silent=frozenset({"d3"})),
        notice,  # at +21 s: d3 lapsed, not yet swept
    )
    assert isinstance(answer, Refusal) and answer.kind is errors.DoctorOffline
    con = desk.run(desk.engine.consultation(desk.cid(T1)))
    assert (con.state, con.doctor_id, con.former_doctors) == (
        ConsultationState.OFFERED,
        "d4",
        ("d3",),
    )
    doctor = desk.run(desk.engine.doctor("d3"))
    assert doctor is not None and (doctor.status, doctor.active) == (DoctorStatus.OFFLINE, 0)
    assert "presence|d3" not in timers(desk)


@pytest.mark.parametrize("colleague", [True, False], ids=["colleague-free", "nobody-free"])
def test_regression_requeue_answers_the_real_state_and_sets_the_doctor_away(
    desk: DeskMachine, colleague: bool
) -> None:
    """Was: requeue answered QUEUED for a consultation push routing had offered again in the
    same step (straight back to the doctor who had lost it)."""
    free: tuple[Move, ...] = ()
    if colleague:
        free = (lambda desk: desk.do_set_status("d4", AVAILABLE),)
    moved = play(
        desk,
        lambda desk: desk.do_set_status("d3", AVAILABLE),
        lambda desk: desk.do_enqueue("p1", "psych", "cough", ROUTINE, True),
        lambda desk: desk.do_accept("d3", T1),
        *free,
        lambda desk: desk.do_requeue(T1),
    )
    cid = desk.cid(T1)
    if colleague:
        assert moved == Moved(cid, ConsultationState.OFFERED, (Offer(cid, "d4"),))
    else:
        assert moved == Moved(cid, ConsultationState.QUEUED, ())
    doctor = desk.run(desk.engine.doctor("d3"))
    assert doctor is not None and (doctor.status, doctor.active) == (DoctorStatus.AWAY, 0)
