"""The engine's vocabulary: enums and the frozen records its operations return.

Values of these enums are stored in Redis and sent to clients: never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Urgency(IntEnum):
    """Ordered: a higher value is more urgent. Stored by name."""

    ROUTINE = 0
    PRIORITY = 1
    URGENT = 2
    EMERGENCY = 3  # always ahead of every other level, FIFO among themselves

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, label: str) -> Urgency:
        return cls[label.upper()]


class Routing(StrEnum):
    PULL = "pull"  # doctors take the next patient
    PUSH = "push"  # the engine assigns a new patient at once to the least busy doctor


class TicketState(StrEnum):
    WAITING = "waiting"
    ASSIGNED = "assigned"  # offered to or taken by a doctor
    ABANDONED = "abandoned"  # the patient left, or their connection stayed gone too long


class DoctorStatus(StrEnum):
    AVAILABLE = "available"
    AWAY = "away"  # keeps open consultations, gets no new ones
    OFFLINE = "offline"


class ConsultationState(StrEnum):
    OFFERED = "offered"  # push mode: reserved for a doctor until they accept or time out
    ACTIVE = "active"
    QUEUED = "queued"  # transferred or requeued: waiting for its next doctor
    ENDED = "ended"


class Outcome(StrEnum):
    COMPLETED = "completed"
    PATIENT_LEFT = "patient_left"
    TRANSFERRED = "transferred"
    REQUEUED = "requeued"


@dataclass(frozen=True)
class HeadStarts:
    """Seconds of queue place each level gains over routine; emergency needs none (it leads)."""

    priority_s: int = 600
    urgent_s: int = 1800

    def for_level(self, urgency: Urgency) -> int:
        return {Urgency.PRIORITY: self.priority_s, Urgency.URGENT: self.urgent_s}.get(urgency, 0)


@dataclass(frozen=True)
class DepartmentRules:
    id: str
    name: str
    routing: Routing = Routing.PULL
    max_wait_s: int = 1800
    red_flags: dict[str, Urgency] = field(default_factory=dict)  # phrase -> level it raises to
