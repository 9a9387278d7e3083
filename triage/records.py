"""Typed results of the engine's operations and typed views of its Redis records.

Scripts return flat arrays and hashes of strings; the functions here turn them into frozen
dataclasses at once, so nothing above the engine handles raw Redis replies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from triage.eta import Estimate
from triage.models import ConsultationState, DoctorStatus, TicketState, Urgency


@dataclass(frozen=True)
class Offer:
    """Push routing reserved a consultation for a doctor until they accept or time out."""

    consultation_id: str
    doctor_id: str


def offers_from(flat: list[str] | dict[str, str]) -> tuple[Offer, ...]:
    if isinstance(flat, dict):  # cjson turns an empty list into an empty object
        return ()
    return tuple(Offer(str(flat[i]), str(flat[i + 1])) for i in range(0, len(flat), 2))


@dataclass(frozen=True)
class RedFlag:
    phrase: str
    urgency: Urgency


@dataclass(frozen=True)
class Intake:
    """What the patient says before joining. Health data: never logged."""

    symptoms: str
    age_band: str = ""
    duration: str = ""
    language: str = ""
    # When the patient acknowledged that the service is not for emergencies (ms; 0 = unknown).
    notice_acknowledged_ms: int = 0


@dataclass(frozen=True)
class Enqueued:
    ticket_id: str
    arrival: int
    position: int  # 0 once offered to a doctor (push routing)
    urgency: Urgency
    red_flags: tuple[RedFlag, ...]
    offers: tuple[Offer, ...]


@dataclass(frozen=True)
class Quote:
    department: str
    state: str  # "new" for a quote before joining, else the ticket's state
    waiting: int
    estimate: Estimate
    surge: bool


@dataclass(frozen=True)
class Match:
    consultation_id: str
    ticket_id: str
    patient_id: str
    department: str
    waited_ms: int


@dataclass(frozen=True)
class Abandoned:
    ticket_id: str
    waited_ms: int
    urgency: Urgency
    red_flags: tuple[RedFlag, ...]


@dataclass(frozen=True)
class StatusChange:
    status: DoctorStatus
    active: int
    capacity: int
    offers: tuple[Offer, ...]


@dataclass(frozen=True)
class Ended:
    consultation_id: str
    outcome: str
    offers: tuple[Offer, ...]


@dataclass(frozen=True)
class Moved:
    """A transfer or requeue: where the consultation stands now."""

    consultation_id: str
    state: ConsultationState
    offers: tuple[Offer, ...]


@dataclass(frozen=True)
class Ticket:
    id: str
    patient_id: str
    department: str
    urgency: Urgency
    state: TicketState
    join_ms: int
    place: float
    arrival: int
    consent_ms: int
    intake: Intake
    red_flags: tuple[RedFlag, ...]
    consultation_id: str
    connected: bool
    urgency_history: tuple[dict[str, object], ...]


@dataclass(frozen=True)
class Segment:
    doctor_id: str
    started_ms: int
    ended_ms: int | None
    outcome: str | None
    offered_only: bool = False  # an offer the doctor never accepted: they never held it


@dataclass(frozen=True)
class Consultation:
    id: str
    patient_id: str
    doctor_id: str
    department: str
    ticket_id: str
    state: ConsultationState
    created_ms: int
    started_ms: int | None
    ended_ms: int | None
    outcome: str | None
    summary: str
    former_doctors: tuple[str, ...]
    history: tuple[Segment, ...]


@dataclass(frozen=True)
class Doctor:
    id: str
    name: str
    departments: tuple[str, ...]
    capacity: int
    status: DoctorStatus
    active: int
    alive_until_ms: int


def red_flags_from(text: str) -> tuple[RedFlag, ...]:
    return tuple(
        RedFlag(item["phrase"], Urgency.parse(item["urgency"])) for item in json.loads(text or "[]")
    )


def red_flags_to(flags: tuple[RedFlag, ...]) -> str:
    return json.dumps([{"phrase": f.phrase, "urgency": f.urgency.label} for f in flags])


def _optional_int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _list(text: str | None) -> list[dict[str, object]]:
    loaded = json.loads(text or "[]")
    return loaded if isinstance(loaded, list) else []  # cjson writes an empty list as {}


def ticket_from(fields: dict[str, str]) -> Ticket:
    intake = json.loads(fields.get("intake") or "{}")
    return Ticket(
        id=fields["id"],
        patient_id=fields["patient"],
        department=fields["dept"],
        urgency=Urgency.parse(fields["urgency"]),
        state=TicketState(fields["state"]),
        join_ms=int(fields["join_ms"]),
        place=float(fields["place"]),
        arrival=int(fields["arrival"]),
        consent_ms=int(fields["consent_ms"]),
        intake=Intake(**intake),
        red_flags=red_flags_from(fields.get("red_flags", "")),
        consultation_id=fields.get("consultation", ""),
        connected=fields.get("connected") == "1",
        urgency_history=tuple(_list(fields.get("urgency_history"))),
    )


def consultation_from(fields: dict[str, str]) -> Consultation:
    segments = tuple(
        Segment(
            doctor_id=str(item["doctor"]),
            started_ms=int(str(item["started"])),
            ended_ms=_optional_int(str(item["ended"])) if "ended" in item else None,
            outcome=str(item["outcome"]) if "outcome" in item else None,
            offered_only=item.get("offer") is True,
        )
        for item in _list(fields.get("history"))
    )
    former = fields.get("former_doctors", "")
    return Consultation(
        id=fields["id"],
        patient_id=fields["patient"],
        doctor_id=fields.get("doctor", ""),
        department=fields["dept"],
        ticket_id=fields["ticket"],
        state=ConsultationState(fields["state"]),
        created_ms=int(fields["created_ms"]),
        started_ms=_optional_int(fields.get("started_ms")),
        ended_ms=_optional_int(fields.get("ended_ms")),
        outcome=fields.get("outcome") or None,
        summary=fields.get("summary", ""),
        former_doctors=tuple(d for d in former.split(",") if d),
        history=segments,
    )


def doctor_from(fields: dict[str, str]) -> Doctor:
    return Doctor(
        id=fields["id"],
        name=fields.get("name", ""),
        departments=tuple(d for d in fields.get("departments", "").split(",") if d),
        capacity=int(fields["capacity"]),
        status=DoctorStatus(fields["status"]),
        active=int(fields.get("active", "0")),
        alive_until_ms=int(fields.get("alive_until", "0")),
    )
