"""Two gateways on one desk: they share nothing but Redis, and users on either see each other."""

from __future__ import annotations

from chatsvc.protocol import frames as f
from tests.e2e.conftest import DeskFactory


async def test_a_patient_and_a_doctor_on_different_gateways_hold_a_consultation(
    make_desk: DeskFactory,
) -> None:
    east, west = await make_desk(), await make_desk()
    doctor = await east.doctor("d1")
    await doctor.next(f.QueueSummary)
    patient = await west.patient("p1")
    await patient.join("general", "dizziness")

    summary = await doctor.next(f.QueueSummary, lambda s: s.departments[0].waiting == 1)
    assert summary.departments[0].id == "general"
    case = await doctor.take_next()
    assigned = await patient.next(f.Assigned)
    assert assigned.consultation == case.id and assigned.doctor_name == "Dr D1"

    for n in range(20):
        await patient.send(case.id, f"patient {n}")
        await doctor.send(case.id, f"doctor {n}")
    expected = [text for n in range(20) for text in (f"patient {n}", f"doctor {n}")]
    for client in (patient, doctor):
        thread = await client.wait_for_messages(case.id, 40)
        assert [m.text for m in thread.in_order()] == expected
        assert client.duplicates == 0

    await doctor.end(case.id, "benign positional vertigo")
    ended = await patient.next(f.Ended)
    assert ended.summary == "benign positional vertigo"


async def test_a_doctor_with_tabs_on_two_gateways_sees_the_consultation_on_both(
    make_desk: DeskFactory,
) -> None:
    east, west = await make_desk(), await make_desk()
    tab_east = await east.doctor("d1")
    tab_west = await west.doctor("d1", available=False)
    patient = await east.patient("p1")
    await patient.join("general", "ear ache")
    case = await tab_east.take_next()
    opened = await tab_west.next(f.Opened)
    assert opened.consultation.id == case.id
    await patient.next(f.Assigned)
    await patient.send(case.id, "left ear")
    await tab_west.send(case.id, "how long?")
    for client in (tab_east, tab_west, patient):
        thread = await client.wait_for_messages(case.id, 2)
        assert [m.text for m in thread.in_order()] == ["left ear", "how long?"]
