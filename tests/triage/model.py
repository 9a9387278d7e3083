"""A reference model of the triage desk: its rules in plain Python, with no Redis in it.

`Model` states the rules of issue 4 and the scripts' header comments (triage/lua, and the shared
transitions of triage/lua/lib/desk.lua). Each operation returns what the engine must answer, or
raises `Refuse` naming the refusal the engine must raise; tests/triage/test_model.py drives the
engine and this model side by side and compares their answers and their whole desks.

Consultation ids are random, so the model names a consultation by its ticket (one ticket, one
consultation); the test tells it the engine's id (`MConsultation.cid`) once an answer shows it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tests.triage.conftest import RULES
from triage import errors
from triage.models import ConsultationState, DoctorStatus, Routing, Urgency
from triage.records import RedFlag

ACCEPT_MS = RULES.accept_timeout_s * 1000
PRESENCE_MS = RULES.presence_ttl_s * 1000
GRACE_MS = RULES.patient_grace_s * 1000
# desk.lua: an emergency's place is its join time minus this, ahead of any other head start.
EMERGENCY_OFFSET_MS = 10_000_000_000_000
# desk.lua: push routing scores a doctor load * this + last assignment time, lowest first.
LOAD_WEIGHT = 10_000_000_000_000

DEPARTMENTS = tuple(d.id for d in RULES.departments)
PUSH = frozenset(d.id for d in RULES.departments if d.routing is Routing.PUSH)
# A small staff with mixed departments and capacities, so push ties, cross-department picks and
# full doctors all happen within a few dozen steps; three serve psych (push), so a case taken
# from one doctor (a lapse, a requeue, a timeout) often has a colleague to be offered to.
DOCTORS: dict[str, tuple[tuple[str, ...], int]] = {
    "d1": (("general", "psych"), 2),
    "d2": (("general", "paeds"), 1),
    "d3": (("psych",), 2),
    "d4": (("psych", "general"), 1),
}

OPEN = (ConsultationState.OFFERED, ConsultationState.ACTIVE)


class Refuse(Exception):
    """The model refuses a call: the engine must raise `kind`."""

    def __init__(self, kind: type[errors.Refused]) -> None:
        super().__init__(kind.code)
        self.kind = kind


@dataclass
class MTicket:
    id: str
    patient: str
    dept: str
    urgency: Urgency
    join_ms: int
    place: int
    red_flags: tuple[RedFlag, ...]
    # waiting | assigned (with a doctor, or served: its consultation ended) | abandoned
    state: str = "waiting"
    connected: bool = True
    matched: bool = False  # was once in an active consultation (counted once)


@dataclass
class MConsultation:
    ticket: str
    patient: str
    dept: str
    state: ConsultationState
    doctor: str  # "" while queued; an ended one keeps its last doctor
    cid: str = ""  # the engine's id, learned from its answers
    deadline: int = 0  # accept deadline while offered
    started: bool = False
    outcome: str | None = None
    former: list[str] = field(default_factory=list)
    transferred_by: str = ""  # who last transferred it to a department: never offered it back


@dataclass
class MDoctor:
    id: str
    departments: tuple[str, ...]
    capacity: int
    status: DoctorStatus | None = None  # None: never signed on
    alive_until: int = 0
    last_assigned: int = 0
    open: set[str] = field(default_factory=set)  # tickets of their offered/active consultations
    listed: bool = False  # in the available sets, as of the last change to their record

    @property
    def score(self) -> int:
        return len(self.open) * LOAD_WEIGHT + self.last_assigned


Offers = list[tuple[str, str]]  # (ticket, doctor) in the order the engine offers them


def place_of(join_ms: int, urgency: Urgency) -> int:
    if urgency is Urgency.EMERGENCY:
        return join_ms - EMERGENCY_OFFSET_MS
    return join_ms - RULES.head_starts.for_level(urgency) * 1000


def red_flags_in(dept: str, symptoms: str) -> tuple[RedFlag, ...]:
    rules = RULES.department_index.get(dept)
    found = [
        RedFlag(phrase, level)
        for phrase, level in (rules.red_flags.items() if rules else ())
        if phrase in symptoms.lower()
    ]
    return tuple(sorted(found, key=lambda f: (-f.urgency, f.phrase)))


class Model:
    """The desk's rules in plain Python. Operations return what the engine must answer, or raise
    `Refuse`; a refusal changes nothing except a lapse or timeout that was due anyway."""

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms
        self.arrivals = 0
        self.tickets: dict[str, MTicket] = {}
        self.cons: dict[str, MConsultation] = {}  # by ticket id
        self.doctors = {d: MDoctor(d, depts, cap) for d, (depts, cap) in DOCTORS.items()}
        self.patients: dict[str, str] = {}  # patient -> their one open ticket
        self.timers: dict[tuple[str, str], int] = {}  # (kind, ticket or doctor id) -> deadline
        self.stats: dict[str, Counter[str]] = {d: Counter() for d in DEPARTMENTS}

    # -- reads --------------------------------------------------------------------------------

    def queue(self, dept: str) -> list[MTicket]:
        """Waiting tickets by place, ties to the earlier arrival (the zero-padded id)."""
        waiting = (t for t in self.tickets.values() if t.state == "waiting" and t.dept == dept)
        return sorted(waiting, key=lambda t: (t.place, t.id))

    def by_cid(self, cid: str) -> MConsultation | None:
        return next((c for c in self.cons.values() if c.cid and c.cid == cid), None)

    def timer_name(self, key: tuple[str, str]) -> str:
        kind, ident = key
        return f"accept|{self.cons[ident].cid}" if kind == "accept" else f"{kind}|{ident}"

    def timer_list(self) -> list[tuple[str, int]]:
        named = ((self.timer_name(key), at) for key, at in self.timers.items())
        return sorted(named, key=lambda item: (item[1], item[0]))

    def lapsed(self, doctor: MDoctor) -> bool:
        return doctor.status not in (None, DoctorStatus.OFFLINE) and doctor.alive_until <= self.now

    # -- shared transitions (desk.lua) ----------------------------------------------------------

    def refresh(self, doctor: MDoctor) -> None:
        doctor.listed = (
            doctor.status is DoctorStatus.AVAILABLE
            and doctor.alive_until > self.now
            and len(doctor.open) < doctor.capacity
        )

    def hold(self, doctor: MDoctor, ticket_id: str) -> None:
        doctor.open.add(ticket_id)
        doctor.last_assigned = self.now
        self.refresh(doctor)

    def release(self, doctor_id: str, ticket_id: str) -> None:
        if doctor_id:
            doctor = self.doctors[doctor_id]
            doctor.open.discard(ticket_id)
            self.refresh(doctor)

    def bind(self, ticket: MTicket, doctor: MDoctor, state: ConsultationState) -> MConsultation:
        con = self.cons.get(ticket.id)
        if con is None:
            con = MConsultation(ticket.id, ticket.patient, ticket.dept, state, doctor.id)
            self.cons[ticket.id] = con
        con.state, con.doctor, con.dept = state, doctor.id, ticket.dept
        ticket.state = "assigned"
        # With a doctor, the patient's connection is the consultation's business, not the queue's.
        self.timers.pop(("grace", ticket.id), None)
        self.hold(doctor, ticket.id)
        if state is ConsultationState.OFFERED:
            con.deadline = self.now + ACCEPT_MS
            self.timers[("accept", ticket.id)] = con.deadline
        return con

    def activate(self, con: MConsultation, doctor_id: str) -> int:
        ticket = self.tickets[con.ticket]
        waited = self.now - ticket.join_ms
        con.state, con.doctor, con.started = ConsultationState.ACTIVE, doctor_id, True
        self.timers.pop(("accept", con.ticket), None)
        if not ticket.matched:
            ticket.matched = True
            self.stats[con.dept]["matched"] += 1
            self.stats[con.dept]["wait_ms_matched"] += waited
        return waited

    def back_to_queue(self, con: MConsultation, event: str) -> None:
        """At the ticket's original place; the doctor's slot is freed."""
        doctor_id = con.doctor
        con.state, con.doctor = ConsultationState.QUEUED, ""
        if doctor_id:
            con.former.append(doctor_id)
        self.timers.pop(("accept", con.ticket), None)
        ticket = self.tickets[con.ticket]
        ticket.state, ticket.dept = "waiting", con.dept
        self.release(doctor_id, con.ticket)
        self.stats[con.dept][event] += 1

    def finish(self, con: MConsultation, outcome: str) -> None:
        """The consultation ends for good, from any open or queued state. Its ticket was served
        (a queued one leaves its queue), so it is done with: 'assigned', no timer left on it."""
        con.state, con.outcome = ConsultationState.ENDED, outcome
        self.tickets[con.ticket].state = "assigned"
        self.timers.pop(("accept", con.ticket), None)
        self.timers.pop(("grace", con.ticket), None)
        self.release(con.doctor, con.ticket)
        self.forget(con.patient, con.ticket)
        self.stats[con.dept]["ended"] += 1

    def forget(self, patient: str, ticket_id: str) -> None:
        """The patient's record goes only while it is still about this ticket (a newer one is
        theirs to keep)."""
        if self.patients.get(patient) == ticket_id:
            del self.patients[patient]

    def abandon(self, ticket: MTicket) -> int:
        waited = self.now - ticket.join_ms
        ticket.state = "abandoned"
        self.timers.pop(("grace", ticket.id), None)
        self.forget(ticket.patient, ticket.id)
        self.stats[ticket.dept]["abandoned"] += 1
        self.stats[ticket.dept]["wait_ms_abandoned"] += waited
        return waited

    def expire(self, doctor: MDoctor) -> list[str]:
        """Presence lapsed: offline, and every open consultation back in its queue (in the
        order of their consultation ids, as the engine goes)."""
        doctor.status = DoctorStatus.OFFLINE
        self.timers.pop(("presence", doctor.id), None)
        self.refresh(doctor)
        requeued = sorted(doctor.open, key=lambda ticket_id: self.cons[ticket_id].cid)
        for ticket_id in requeued:
            self.back_to_queue(self.cons[ticket_id], "requeued")
        return requeued

    def lapse(self, doctor: MDoctor) -> Offers:
        """A lapse, wherever it is noticed (the presence timer, a heartbeat, a take, an accept,
        an offer), is one transition: the doctor goes offline and their consultations return to
        their places and, in push departments, are offered again at once."""
        made: Offers = []
        for ticket_id in self.expire(doctor):
            made += self.assign_push(self.cons[ticket_id].dept)
        return made

    def assign_push(self, dept: str) -> Offers:
        """Offer the queue's head to the least busy available doctor (ties: idle longest, then
        id) until either runs out; a lapsed doctor met on the way lapses, never offered."""
        made: Offers = []
        if dept not in PUSH:
            return made
        while queue := self.queue(dept):
            listed = [d for d in self.doctors.values() if d.listed and dept in d.departments]
            if not listed:
                break
            # The engine looks at the two least busy: a transferring doctor is skipped.
            first_two = sorted(listed, key=lambda d: (d.score, d.id))[:2]
            held = self.cons.get(queue[0].id)
            excluded = held.transferred_by if held is not None else ""
            choices = [d for d in first_two[:1] if d.id != excluded] or first_two[1:2]
            if not choices:
                break
            best = choices[0]
            if best.alive_until <= self.now:
                made += self.lapse(best)  # the lapse's own offers come first
                continue
            self.bind(queue[0], best, ConsultationState.OFFERED)
            made.append((queue[0].id, best.id))
        return made

    def assign_push_for(self, doctor_id: str) -> Offers:
        return [o for d in self.doctors[doctor_id].departments for o in self.assign_push(d)]

    def accept_timeout(self, con: MConsultation) -> None:
        """Offer not accepted in time: the doctor goes away, the ticket back to its place."""
        self.doctors[con.doctor].status = DoctorStatus.AWAY
        self.back_to_queue(con, "offer_expired")
        self.assign_push(con.dept)

    # -- operations -----------------------------------------------------------------------------

    def set_status(self, doctor_id: str, status: DoctorStatus) -> tuple[MDoctor, Offers]:
        doctor = self.doctors[doctor_id]
        if status is DoctorStatus.OFFLINE and doctor.open:
            raise Refuse(errors.OpenConsultations)
        if doctor.status is None:
            doctor.last_assigned = self.now  # idle since first signing on
        doctor.status = status
        if status is DoctorStatus.OFFLINE:
            doctor.alive_until = 0
            self.timers.pop(("presence", doctor_id), None)
        else:
            doctor.alive_until = self.now + PRESENCE_MS
            self.timers[("presence", doctor_id)] = doctor.alive_until
        self.refresh(doctor)
        offers = self.assign_push_for(doctor_id) if status is DoctorStatus.AVAILABLE else []
        return doctor, offers

    def heartbeat(self, doctor_id: str) -> int:
        doctor = self.doctors.get(doctor_id)
        if doctor is None or doctor.status in (None, DoctorStatus.OFFLINE):
            raise Refuse(errors.DoctorOffline)
        if doctor.alive_until <= self.now:
            self.lapse(doctor)
            raise Refuse(errors.DoctorOffline)
        doctor.alive_until = self.now + PRESENCE_MS
        self.timers[("presence", doctor_id)] = doctor.alive_until
        return doctor.alive_until

    def enqueue(
        self, patient: str, dept: str, symptoms: str, urgency: Urgency, consent: bool
    ) -> tuple[MTicket, int, Offers]:
        if dept not in DEPARTMENTS:
            raise Refuse(errors.UnknownDepartment)
        if not consent:
            raise Refuse(errors.ConsentRequired)
        if patient in self.patients:
            held = self.patients[patient]
            raise Refuse(errors.InConsultation if held in self.cons else errors.AlreadyWaiting)
        self.arrivals += 1
        flags = red_flags_in(dept, symptoms)
        level = max((urgency, *(f.urgency for f in flags)))
        ticket_id = f"t{self.arrivals:012d}"
        ticket = MTicket(
            ticket_id, patient, dept, level, self.now, place_of(self.now, level), flags
        )
        self.tickets[ticket_id] = ticket
        self.patients[patient] = ticket_id
        self.stats[dept]["joined"] += 1
        offers = self.assign_push(dept)
        queue = self.queue(dept)
        position = queue.index(ticket) + 1 if ticket in queue else 0
        return ticket, position, offers

    def cancel(self, patient: str) -> tuple[MTicket, int]:
        ticket_id = self.patients.get(patient)
        if ticket_id is None or ticket_id in self.cons:
            raise Refuse(errors.NotWaiting)  # an offered or taken ticket ends as patient_left
        ticket = self.tickets[ticket_id]
        return ticket, self.abandon(ticket)

    def reprioritise(self, ticket_id: str, urgency: Urgency) -> int:
        ticket = self.tickets.get(ticket_id)
        if ticket is None or ticket.state != "waiting":
            raise Refuse(errors.NotWaiting)
        if urgency <= ticket.urgency:
            raise Refuse(errors.NotRaised)
        ticket.urgency, ticket.place = urgency, place_of(ticket.join_ms, urgency)
        return self.queue(ticket.dept).index(ticket) + 1

    def ticket_presence(self, ticket_id: str, connected: bool) -> None:
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            raise Refuse(errors.UnknownTicket)
        if connected:
            ticket.connected = True
            self.timers.pop(("grace", ticket_id), None)
        elif ticket.state == "waiting":  # a second report restarts the grace period
            ticket.connected = False
            self.timers[("grace", ticket_id)] = self.now + GRACE_MS

    def take_next(self, doctor_id: str) -> tuple[MConsultation, int]:
        doctor = self.doctors.get(doctor_id)
        if doctor is None or doctor.status in (None, DoctorStatus.OFFLINE):
            raise Refuse(errors.DoctorOffline)
        if doctor.alive_until <= self.now:
            self.lapse(doctor)
            raise Refuse(errors.DoctorOffline)
        if doctor.status is not DoctorStatus.AVAILABLE:
            raise Refuse(errors.NotAvailable)
        if len(doctor.open) >= doctor.capacity:
            raise Refuse(errors.AtCapacity)
        heads = [q[0] for q in map(self.queue, doctor.departments) if q]
        if not heads:
            raise Refuse(errors.QueueEmpty)
        best = min(heads, key=lambda t: (t.place, t.id))
        con = self.bind(best, doctor, ConsultationState.ACTIVE)
        return con, self.activate(con, doctor_id)

    def accept(self, doctor_id: str, cid: str) -> tuple[MConsultation, int]:
        con = self.by_cid(cid)
        if con is None or con.state is not ConsultationState.OFFERED or con.doctor != doctor_id:
            raise Refuse(errors.NotOffered)
        doctor = self.doctors[doctor_id]
        if doctor.alive_until <= self.now:  # lapsed, not yet swept: never assigned, as if swept
            self.lapse(doctor)
            raise Refuse(errors.DoctorOffline)
        if con.deadline <= self.now:  # due but not yet swept: the timeout wins
            self.accept_timeout(con)
            raise Refuse(errors.NotOffered)
        return con, self.activate(con, doctor_id)

    def end(self, user: str, cid: str) -> tuple[MConsultation, Offers]:
        con = self.by_cid(cid)
        if con is None:
            raise Refuse(errors.UnknownConsultation)
        if user not in (con.patient, con.doctor):
            raise Refuse(errors.NotParticipant)
        if con.state is ConsultationState.ENDED:
            raise Refuse(errors.AlreadyEnded)
        if con.state is not ConsultationState.ACTIVE:
            raise Refuse(errors.NotActive)
        self.finish(con, "completed")
        return con, self.assign_push_for(con.doctor)

    def patient_left(self, cid: str) -> tuple[MConsultation, Offers]:
        con = self.by_cid(cid)
        if con is None:
            raise Refuse(errors.UnknownConsultation)
        if con.state is ConsultationState.ENDED:
            raise Refuse(errors.AlreadyEnded)
        self.finish(con, "patient_left")
        return con, self.assign_push_for(con.doctor) if con.doctor else []

    def transfer(self, doctor_id: str, cid: str, target: str) -> tuple[MConsultation, Offers]:
        con = self.by_cid(cid)
        if con is None:
            raise Refuse(errors.UnknownConsultation)
        if con.doctor != doctor_id:
            raise Refuse(errors.NotParticipant)
        if con.state is not ConsultationState.ACTIVE:
            raise Refuse(errors.NotActive)
        offers: Offers = []
        if target in DEPARTMENTS or target == "cardio":
            if target not in DEPARTMENTS:
                raise Refuse(errors.UnknownDepartment)
            con.dept = self.tickets[con.ticket].dept = target
            con.transferred_by = doctor_id
            self.back_to_queue(con, "transferred")
            offers = self.assign_push(target)
        else:
            to = self.doctors.get(target)
            if (
                to is None
                or target == doctor_id
                or con.dept not in to.departments
                or to.status is not DoctorStatus.AVAILABLE
                or to.alive_until <= self.now
                or len(to.open) >= to.capacity
            ):
                raise Refuse(errors.TargetUnavailable)
            con.former.append(doctor_id)
            self.release(doctor_id, con.ticket)
            con.state, con.doctor = ConsultationState.OFFERED, target
            con.deadline = self.now + ACCEPT_MS
            self.hold(to, con.ticket)
            self.timers[("accept", con.ticket)] = con.deadline
            self.stats[con.dept]["transferred"] += 1
        return con, offers + self.assign_push_for(doctor_id)

    def requeue(self, cid: str) -> tuple[MConsultation, Offers]:
        """Back at its place; the doctor who lost it, if available, goes away (so it is not
        pushed straight back to them). The answer's state is the consultation's real one:
        offered if push routing offered it again at once."""
        con = self.by_cid(cid)
        if con is None or con.state not in OPEN:
            raise Refuse(errors.NotActive)
        doctor = self.doctors[con.doctor]
        if doctor.status is DoctorStatus.AVAILABLE:
            doctor.status = DoctorStatus.AWAY  # back_to_queue's release refreshes the sets
        self.back_to_queue(con, "requeued")
        return con, self.assign_push(con.dept)

    def fire_timers(self) -> list[str]:
        """Fire the timers due when the sweep starts, in (deadline, name) order; each fires only
        if still due (an earlier firing in this sweep may have cancelled or re-armed it) and its
        transition is re-checked against the state it finds. Returns the timers that fired."""
        due = sorted((at, self.timer_name(key), key) for key, at in self.timers.items())
        fired: list[str] = []
        for at, name, key in due:
            if at > self.now:
                break
            if self.timers.get(key, self.now + 1) > self.now:
                continue  # cancelled, or re-armed for later, by an earlier firing
            del self.timers[key]
            kind, ident = key
            if kind == "accept":
                con = self.cons[ident]
                if con.state is ConsultationState.OFFERED:
                    self.accept_timeout(con)
                    fired.append(name)
            elif kind == "presence":
                doctor = self.doctors[ident]
                if self.lapsed(doctor):
                    self.lapse(doctor)
                    fired.append(name)
            else:
                ticket = self.tickets[ident]
                if ticket.state == "waiting" and not ticket.connected:
                    if ticket.id in self.cons:
                        self.finish(self.cons[ticket.id], "patient_left")
                    else:
                        self.abandon(ticket)
                    fired.append(name)
        return fired
