"""What happened in a run, as the simulated clients saw it: the records the report is made from.

Owns the per-patient records, the per-message records, the consultations the doctors started and
ended, and the error counts. Actors write here as things happen (seconds since the run began);
`report.py` only reads. Holds no text of any message or intake.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from chatsvc.simulate.arrivals import PatientPlan


class Outcome(StrEnum):
    """How a consultation the simulation started came to an end."""

    COMPLETED = "completed"  # the doctor ended it after the planned messages
    CUT_SHORT = "cut_short"  # the drain time ran out first: the doctor ended it then
    FAILED = "failed"  # the doctor's end was refused or lost (counted under errors too)
    # The patient is not one of this run's (left in the queue by an earlier run, or a real
    # one): the doctor ended it at once rather than wait for messages that never come.
    FOREIGN = "foreign"


@dataclass
class PatientRecord:
    plan: PatientPlan
    user_id: str
    joined_s: float | None = None
    first_eta_s: int | None = None  # the ETA in the `joined` reply (None: nobody serving)
    first_position: int | None = None
    flagged: bool = False  # the desk raised the ticket's urgency for a red flag
    assigned_s: float | None = None
    consultation: str = ""
    left_s: float | None = None  # gave up waiting (the desk accepted the `leave`)
    ended_s: float | None = None  # the patient got `ended`
    still_waiting: bool = False  # in the queue when the run ended

    @property
    def wait_s(self) -> float | None:
        if self.joined_s is None or self.assigned_s is None:
            return None
        return self.assigned_s - self.joined_s


@dataclass
class MessageRecord:
    role: str  # the sender's: "patient" or "doctor"
    sent_s: float  # when the send was made
    delivered_s: float | None = None  # when the other side held it


@dataclass
class ConsultationRecord:
    department: str
    doctor: str
    started_s: float
    ended_s: float | None = None
    outcome: Outcome | None = None


@dataclass
class Journal:
    """Everything recorded in one run. `finished_s` is when the run stopped taking patients."""

    patients: list[PatientRecord] = field(default_factory=list)
    by_user: dict[str, PatientRecord] = field(default_factory=dict)
    messages: dict[tuple[str, str], MessageRecord] = field(default_factory=dict)
    consultations: dict[str, ConsultationRecord] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    duration_s: float = 0.0  # how long arrivals ran
    ended_s: float = 0.0  # when the last client closed

    def add_patient(self, plan: PatientPlan, user_id: str) -> PatientRecord:
        record = PatientRecord(plan=plan, user_id=user_id)
        self.patients.append(record)
        self.by_user[user_id] = record
        return record

    def sent(self, consultation: str, client_msg_id: str, role: str, sent_s: float) -> None:
        self.messages[(consultation, client_msg_id)] = MessageRecord(role, sent_s)

    def unsent(self, consultation: str, client_msg_id: str) -> None:
        """The send was refused (or failed): it is not counted as sent."""
        self.messages.pop((consultation, client_msg_id), None)

    def delivered(self, consultation: str, client_msg_id: str, now: float) -> None:
        """The other side holds the message now (the first time counts)."""
        record = self.messages.get((consultation, client_msg_id))
        if record is not None and record.delivered_s is None:
            record.delivered_s = now

    def started(self, consultation: str, department: str, doctor: str, now: float) -> None:
        self.consultations[consultation] = ConsultationRecord(department, doctor, now)

    def ended(self, consultation: str, outcome: Outcome, now: float) -> None:
        record = self.consultations[consultation]
        record.ended_s, record.outcome = now, outcome

    @property
    def open_consultations(self) -> int:
        return sum(1 for c in self.consultations.values() if c.outcome is None)

    def error(self, code: str) -> None:
        self.errors[code] += 1
