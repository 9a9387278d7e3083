"""Who may do what with a consultation: the one access matrix, and nothing else.

Every consultation-scoped command and REST call asks `decide` before it touches anything. The
matrix is a table (role × relation to the consultation → actions) so that it can be printed in
docs/operations.md and tested cell by cell; `relation_of` works out the relation from facts the
gateway looked up. Pure: no I/O, no clock.

Reads by anyone but the patient are audited (`is_audited`); the gateway records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chatsvc.tokens import Role


class Relation(StrEnum):
    PATIENT = "patient"  # the consultation's patient
    CURRENT_DOCTOR = "current_doctor"  # the doctor holding it now (active)
    OFFERED_DOCTOR = "offered_doctor"  # push routing: offered to this doctor, not yet accepted
    FORMER_DOCTOR = "former_doctor"  # held it before a transfer or requeue
    TREATING_DOCTOR = "treating_doctor"  # holds another open consultation with this patient
    DEPARTMENT_SUPERVISOR = "department_supervisor"  # supervises the consultation's department
    OTHER_SUPERVISOR = "other_supervisor"  # a supervisor of other departments only
    UNRELATED = "unrelated"  # anyone else (another patient, any other doctor)


class Action(StrEnum):
    READ_TRANSCRIPT = "read_transcript"  # fetch, export
    READ_DETAILS = "read_details"  # intake, red flags, state (the `open` frame)
    WRITE = "write"  # send a message, typing, read and delivery marks
    END = "end"  # end with a summary (a patient's end means "I am leaving")
    TRANSFER = "transfer"


_R, _D, _W, _E, _T = (
    Action.READ_TRANSCRIPT,
    Action.READ_DETAILS,
    Action.WRITE,
    Action.END,
    Action.TRANSFER,
)

# The matrix. A relation missing from a role's row cannot occur for that role.
MATRIX: dict[Role, dict[Relation, frozenset[Action]]] = {
    Role.PATIENT: {
        Relation.PATIENT: frozenset({_R, _D, _W, _E}),
        Relation.UNRELATED: frozenset(),
    },
    Role.DOCTOR: {
        Relation.CURRENT_DOCTOR: frozenset({_R, _D, _W, _E, _T}),
        # An offer shows the intake so the doctor can decide; there is no chat yet.
        Relation.OFFERED_DOCTOR: frozenset({_D}),
        # A transfer hands the case on: the former doctor keeps read access to what they saw.
        Relation.FORMER_DOCTOR: frozenset({_R, _D}),
        # A doctor treating this patient now may read the patient's earlier consultations.
        Relation.TREATING_DOCTOR: frozenset({_R, _D}),
        Relation.UNRELATED: frozenset(),
    },
    Role.SUPERVISOR: {
        # Supervisors are read-only, and only within their departments.
        Relation.DEPARTMENT_SUPERVISOR: frozenset({_R, _D}),
        Relation.OTHER_SUPERVISOR: frozenset(),
    },
}


@dataclass(frozen=True)
class ConsultationFacts:
    """What the gateway looked up about a consultation and the user asking."""

    patient_id: str
    doctor_id: str  # "" while queued
    state: str  # offered, active, queued, ended
    department: str
    former_doctors: tuple[str, ...]
    # Set by the gateway for a doctor who holds another open consultation with this patient.
    asker_treats_patient: bool = False


def relation_of(
    role: Role, user_id: str, departments: tuple[str, ...], facts: ConsultationFacts
) -> Relation:
    """The asker's relation to the consultation. `departments` are a supervisor's (from their
    token); other roles' departments do not grant access."""
    if role is Role.PATIENT:
        return Relation.PATIENT if user_id == facts.patient_id else Relation.UNRELATED
    if role is Role.SUPERVISOR:
        if facts.department in departments:
            return Relation.DEPARTMENT_SUPERVISOR
        return Relation.OTHER_SUPERVISOR
    if user_id == facts.doctor_id and facts.state in ("active", "ended"):
        return Relation.CURRENT_DOCTOR
    if user_id == facts.doctor_id and facts.state == "offered":
        return Relation.OFFERED_DOCTOR
    if user_id in facts.former_doctors:
        return Relation.FORMER_DOCTOR
    if facts.asker_treats_patient:
        return Relation.TREATING_DOCTOR
    return Relation.UNRELATED


def decide(role: Role, relation: Relation, action: Action) -> bool:
    return action in MATRIX.get(role, {}).get(relation, frozenset())


def is_audited(relation: Relation, action: Action) -> bool:
    """Reads of a consultation by anyone but its patient leave an audit entry."""
    return relation is not Relation.PATIENT and action in (_R, _D)
