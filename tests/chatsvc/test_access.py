"""The access matrix cell by cell, the relation of an asker to a consultation, and the audit rule.

The expected matrix is written out below by hand, every role against every relation, and not
read from `access.MATRIX`: a cell changed there by mistake fails here.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from chatsvc.protocol.access import (
    Action,
    ConsultationFacts,
    Relation,
    decide,
    is_audited,
    relation_of,
)
from chatsvc.tokens import Role

# Columns: read_transcript, read_details, write, end, transfer. A letter allows the action,
# "-" refuses it. Relations that cannot occur for a role are refused everything.
COLUMNS = (Action.READ_TRANSCRIPT, Action.READ_DETAILS, Action.WRITE, Action.END, Action.TRANSFER)
EXPECTED: dict[tuple[Role, Relation], str] = {
    (Role.PATIENT, Relation.PATIENT): "RDWE-",
    (Role.PATIENT, Relation.CURRENT_DOCTOR): "-----",
    (Role.PATIENT, Relation.OFFERED_DOCTOR): "-----",
    (Role.PATIENT, Relation.FORMER_DOCTOR): "-----",
    (Role.PATIENT, Relation.TREATING_DOCTOR): "-----",
    (Role.PATIENT, Relation.DEPARTMENT_SUPERVISOR): "-----",
    (Role.PATIENT, Relation.OTHER_SUPERVISOR): "-----",
    (Role.PATIENT, Relation.UNRELATED): "-----",
    (Role.DOCTOR, Relation.PATIENT): "-----",
    (Role.DOCTOR, Relation.CURRENT_DOCTOR): "RDWET",
    (Role.DOCTOR, Relation.OFFERED_DOCTOR): "-D---",
    (Role.DOCTOR, Relation.FORMER_DOCTOR): "RD---",
    (Role.DOCTOR, Relation.TREATING_DOCTOR): "RD---",
    (Role.DOCTOR, Relation.DEPARTMENT_SUPERVISOR): "-----",
    (Role.DOCTOR, Relation.OTHER_SUPERVISOR): "-----",
    (Role.DOCTOR, Relation.UNRELATED): "-----",
    (Role.SUPERVISOR, Relation.PATIENT): "-----",
    (Role.SUPERVISOR, Relation.CURRENT_DOCTOR): "-----",
    (Role.SUPERVISOR, Relation.OFFERED_DOCTOR): "-----",
    (Role.SUPERVISOR, Relation.FORMER_DOCTOR): "-----",
    (Role.SUPERVISOR, Relation.TREATING_DOCTOR): "-----",
    (Role.SUPERVISOR, Relation.DEPARTMENT_SUPERVISOR): "RD---",
    (Role.SUPERVISOR, Relation.OTHER_SUPERVISOR): "-----",
    (Role.SUPERVISOR, Relation.UNRELATED): "-----",
}


def test_the_expected_table_has_every_role_and_relation() -> None:
    assert set(EXPECTED) == set(itertools.product(Role, Relation))
    assert set(COLUMNS) == set(Action)
    assert all(len(row) == len(COLUMNS) for row in EXPECTED.values())


CELLS = [
    pytest.param(
        role,
        relation,
        action,
        EXPECTED[role, relation][column] != "-",
        id=f"{role.value}-{relation.value}-{action.value}",
    )
    for (role, relation), (column, action) in itertools.product(EXPECTED, enumerate(COLUMNS))
]


@pytest.mark.parametrize(("role", "relation", "action", "allowed"), CELLS)
def test_access_matrix_cell(role: Role, relation: Relation, action: Action, allowed: bool) -> None:
    assert decide(role, relation, action) is allowed


# Relations

FACTS = ConsultationFacts(
    patient_id="p1",
    doctor_id="d-current",
    state="active",
    department="general",
    former_doctors=("d-former",),
)


def facts(**changes: object) -> ConsultationFacts:
    return dataclasses.replace(FACTS, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("role", "user_id", "departments", "case", "expected"),
    [
        pytest.param(Role.PATIENT, "p1", (), FACTS, Relation.PATIENT, id="patient"),
        pytest.param(Role.PATIENT, "p2", (), FACTS, Relation.UNRELATED, id="other-patient"),
        pytest.param(
            Role.PATIENT,
            "p2",
            ("general",),
            FACTS,
            Relation.UNRELATED,
            id="other-patient-naming-the-department",
        ),
        pytest.param(Role.PATIENT, "d-current", (), FACTS, Relation.UNRELATED, id="patient-ids"),
        pytest.param(Role.DOCTOR, "d-current", (), FACTS, Relation.CURRENT_DOCTOR, id="current"),
        pytest.param(
            Role.DOCTOR,
            "d-current",
            (),
            facts(state="ended"),
            Relation.CURRENT_DOCTOR,
            id="current-of-an-ended-one",
        ),
        pytest.param(
            Role.DOCTOR,
            "d-current",
            (),
            facts(state="offered"),
            Relation.OFFERED_DOCTOR,
            id="offered",
        ),
        pytest.param(Role.DOCTOR, "d-former", (), FACTS, Relation.FORMER_DOCTOR, id="former"),
        pytest.param(
            Role.DOCTOR,
            "d-former",
            (),
            facts(state="queued", doctor_id=""),
            Relation.FORMER_DOCTOR,
            id="former-of-a-requeued-one",
        ),
        pytest.param(
            Role.DOCTOR,
            "d-treating",
            (),
            facts(asker_treats_patient=True),
            Relation.TREATING_DOCTOR,
            id="treating",
        ),
        pytest.param(Role.DOCTOR, "d-other", (), FACTS, Relation.UNRELATED, id="unrelated"),
        pytest.param(
            Role.DOCTOR,
            "d-other",
            ("general",),
            FACTS,
            Relation.UNRELATED,
            id="unrelated-of-the-same-department",
        ),
        pytest.param(
            Role.DOCTOR,
            "d-other",
            (),
            facts(state="queued", doctor_id=""),
            Relation.UNRELATED,
            id="unrelated-to-a-queued-one",
        ),
        pytest.param(
            Role.DOCTOR,
            "p1",
            (),
            FACTS,
            Relation.UNRELATED,
            id="doctor-with-the-patients-id",
        ),
        pytest.param(
            Role.DOCTOR,
            "d-current",
            (),
            facts(former_doctors=("d-current",)),
            Relation.CURRENT_DOCTOR,
            id="current-again-after-a-transfer-back",
        ),
        pytest.param(
            Role.DOCTOR,
            "d-former",
            (),
            facts(asker_treats_patient=True),
            Relation.FORMER_DOCTOR,
            id="former-and-treating",
        ),
        pytest.param(
            Role.SUPERVISOR,
            "s1",
            ("psych", "general"),
            FACTS,
            Relation.DEPARTMENT_SUPERVISOR,
            id="supervisor-of-the-department",
        ),
        pytest.param(
            Role.SUPERVISOR,
            "s1",
            ("psych",),
            FACTS,
            Relation.OTHER_SUPERVISOR,
            id="supervisor-of-another",
        ),
        pytest.param(
            Role.SUPERVISOR, "s1", (), FACTS, Relation.OTHER_SUPERVISOR, id="supervisor-of-none"
        ),
        pytest.param(
            Role.SUPERVISOR,
            "d-current",
            (),
            FACTS,
            Relation.OTHER_SUPERVISOR,
            id="supervisor-with-the-doctors-id",
        ),
        pytest.param(
            Role.SUPERVISOR,
            "s1",
            ("gen",),
            FACTS,
            Relation.OTHER_SUPERVISOR,
            id="supervisor-of-a-prefix",
        ),
    ],
)
def test_relation_of_the_asker(
    role: Role,
    user_id: str,
    departments: tuple[str, ...],
    case: ConsultationFacts,
    expected: Relation,
) -> None:
    assert relation_of(role, user_id, departments, case) is expected


# The audit: reads by anyone but the patient

AUDITED_READS = {
    Relation.CURRENT_DOCTOR,
    Relation.OFFERED_DOCTOR,
    Relation.FORMER_DOCTOR,
    Relation.TREATING_DOCTOR,
    Relation.DEPARTMENT_SUPERVISOR,
    Relation.OTHER_SUPERVISOR,
    Relation.UNRELATED,
}


@pytest.mark.parametrize(
    ("relation", "action"),
    [
        pytest.param(relation, action, id=f"{relation.value}-{action.value}")
        for relation, action in itertools.product(Relation, Action)
    ],
)
def test_is_audited(relation: Relation, action: Action) -> None:
    reads = (Action.READ_TRANSCRIPT, Action.READ_DETAILS)
    expected = action in reads and relation in AUDITED_READS

    assert is_audited(relation, action) is expected


def test_every_read_the_matrix_allows_to_anyone_but_the_patient_is_audited() -> None:
    for (role, relation), row in EXPECTED.items():
        for column, action in enumerate(COLUMNS):
            if row[column] in "RD" and relation is not Relation.PATIENT:
                assert is_audited(relation, action), (role, relation, action)
