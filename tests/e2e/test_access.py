"""The access matrix over real sockets: each relation to a consultation tries to read and to
write, gets the right answer, and every permitted read by someone other than the patient is in
the audit that supervisors list."""

from __future__ import annotations

import pytest

from chatsvc.client import ChatClient, ChatError
from chatsvc.config import Config, TriageConfig
from chatsvc.protocol import frames as f
from tests.e2e.conftest import ROOMY_LIMITS, Desk, DeskFactory

pytestmark = pytest.mark.usefixtures("desk")


async def consultation_with_history(desk: Desk) -> tuple[str, ChatClient, ChatClient]:
    """p1's consultation, transferred from d-former (general) to d-current (paediatrics), with
    one message in it. It belongs to paediatrics now."""
    former = await desk.doctor("d-former", departments=("general",))
    current = await desk.doctor("d-current", departments=("paediatrics",))
    patient = await desk.patient("p1")
    await patient.join("general", "stomach ache")
    case = await former.take_next()
    await patient.next(f.Assigned)
    await patient.send(case.id, "it hurts here")
    await former.transfer(case.id, department="paediatrics")
    assert (await current.take_next()).id == case.id
    return case.id, patient, current


async def tries(client: ChatClient, consultation: str) -> tuple[str, str]:
    """(read outcome, write outcome): "ok" or the error code."""
    try:
        await client.fetch(consultation)
        read = "ok"
    except ChatError as error:
        read = error.code
    try:
        await client.send(consultation, "may I?")
        write = "ok"
    except ChatError as error:
        write = error.code
    return read, write


async def audited(desk: Desk, department: str = "paediatrics") -> set[tuple[str, str, str]]:
    auditor = await desk.supervisor("s-audit", (department,))
    return {(e.user, e.action, e.consultation) for e in await auditor.list_audit()}


async def test_the_patient_reads_and_writes_unaudited(desk: Desk) -> None:
    consultation, patient, _ = await consultation_with_history(desk)
    assert await tries(patient, consultation) == ("ok", "ok")
    assert not {entry for entry in await audited(desk) if entry[0] == "p1"}


async def test_the_current_doctor_reads_and_writes_and_the_read_is_audited(desk: Desk) -> None:
    consultation, _, current = await consultation_with_history(desk)
    assert await tries(current, consultation) == ("ok", "ok")
    assert ("d-current", "read_transcript", consultation) in await audited(desk)


async def test_another_patient_can_neither_read_nor_write(desk: Desk) -> None:
    consultation, _, _ = await consultation_with_history(desk)
    stranger = await desk.patient("p2")
    assert await tries(stranger, consultation) == ("forbidden", "forbidden")
    with pytest.raises(ChatError) as refused:
        await stranger.open(consultation)
    assert refused.value.code == "forbidden"


async def test_an_unassigned_doctor_can_neither_read_nor_write(desk: Desk) -> None:
    consultation, _, _ = await consultation_with_history(desk)
    outsider = await desk.doctor("d-outsider", departments=("general",))
    assert await tries(outsider, consultation) == ("forbidden", "forbidden")
    assert not {e for e in await audited(desk) if e[0] == "d-outsider"}


async def test_a_former_doctor_reads_audited_but_cannot_write(desk: Desk) -> None:
    consultation, _, _ = await consultation_with_history(desk)
    former = await desk.doctor("d-former", departments=("general",), available=False)
    assert await tries(former, consultation) == ("ok", "forbidden")
    assert ("d-former", "read_transcript", consultation) in await audited(desk)


async def test_a_doctor_treating_the_patient_now_reads_the_earlier_consultation(
    desk: Desk,
) -> None:
    consultation, patient, current = await consultation_with_history(desk)
    await current.end(consultation, "settled")
    await patient.next(f.Ended)
    await patient.join("general", "back again")
    treating = await desk.doctor("d-treating", departments=("general",))
    later = await treating.take_next()
    assert later.patient == "p1"
    assert await tries(treating, consultation) == ("ok", "forbidden")
    assert ("d-treating", "read_transcript", consultation) in await audited(desk)


async def test_a_supervisor_of_the_department_reads_audited_and_never_writes(desk: Desk) -> None:
    consultation, _, _ = await consultation_with_history(desk)
    supervisor = await desk.supervisor("s-paeds", ("paediatrics", "general"))
    assert await tries(supervisor, consultation) == ("ok", "wrong_role")
    listed = await supervisor.list_consultations("paediatrics")
    assert [item.id for item in listed] == [consultation]
    assert listed[0].intake is None  # a listing shows no health data
    assert ("s-paeds", "read_transcript", consultation) in await audited(desk)


async def test_a_supervisor_of_another_department_cannot_read(desk: Desk) -> None:
    consultation, _, _ = await consultation_with_history(desk)
    other = await desk.supervisor("s-psych", ("psych",))
    assert await tries(other, consultation) == ("forbidden", "wrong_role")
    with pytest.raises(ChatError) as refused:
        await other.list_consultations("paediatrics")
    assert refused.value.code == "forbidden"


async def test_transcript_export_follows_the_matrix_and_is_audited(desk: Desk) -> None:
    consultation, patient, _ = await consultation_with_history(desk)
    stranger = await desk.patient("p2")
    supervisor = await desk.supervisor("s-paeds", ("paediatrics",))
    url = f"/api/consultations/{consultation}/transcript?format=text"

    async def export(client: ChatClient) -> int:
        response = await desk.gateway.get(url, headers={"Authorization": f"Bearer {client.token}"})
        return response.status

    assert await export(patient) == 200
    assert await export(stranger) == 403
    assert await export(supervisor) == 200
    unauthenticated = await desk.gateway.get(url)
    assert unauthenticated.status == 401
    assert ("s-paeds", "export_transcript", consultation) in await audited(desk)


async def test_a_doctor_who_let_an_offer_expire_never_held_it_and_cannot_read_it(
    make_desk: DeskFactory,
) -> None:
    desk = await make_desk(Config(limits=ROOMY_LIMITS, triage=TriageConfig(accept_timeout_s=1)))
    first = await desk.doctor("d1", departments=("psych",))
    patient = await desk.patient("p1")
    await patient.join("psych", "trouble sleeping")
    offer = await first.next(f.Offered)
    await first.next(f.Released, timeout=10)  # not accepted in time
    second = await desk.doctor("d2", departments=("psych",))
    again = await second.next(f.Offered, timeout=10)
    case = await second.accept(again.consultation.id)
    await patient.next(f.Assigned)
    await patient.send(case.id, "hello")
    assert case.id == offer.consultation.id
    assert await tries(first, case.id) == ("forbidden", "forbidden")
