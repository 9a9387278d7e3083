"""Whole consultations over real sockets: intake to summary, both encodings, several at once."""

from __future__ import annotations

import json

import pytest

from chatsvc.client import ChatError
from chatsvc.config import Config, TriageConfig
from chatsvc.protocol import frames as f
from chatsvc.protocol.codec import Encoding
from tests.e2e.conftest import Desk, DeskFactory


async def test_a_full_consultation_from_intake_to_summary_and_export(desk: Desk) -> None:
    patient = await desk.patient("p1")
    doctor = await desk.doctor("d1")
    assert patient.welcome is not None and patient.welcome.emergency is not None

    quoted = await patient.quote("general")
    assert quoted.position == 1
    joined = await patient.join("general", "sore throat for three days", "18-39", "days")
    assert joined.position == 1 and joined.urgency == "routine"

    case = await doctor.take_next()
    assert case.patient == "p1" and case.intake is not None
    assert case.intake.symptoms == "sore throat for three days"
    assigned = await patient.next(f.Assigned)
    assert assigned.consultation == case.id and assigned.doctor_name == "Dr D1"

    ack = await patient.send(case.id, "hello doctor")
    assert ack.seq == 1 and not ack.duplicate
    await doctor.wait_for_messages(case.id, 1)
    await doctor.send(case.id, "hello, how can I help?")
    thread = await patient.wait_for_messages(case.id, 2)
    assert [m.text for m in thread.in_order()] == ["hello doctor", "hello, how can I help?"]
    assert [m.role for m in thread.in_order()] == ["patient", "doctor"]

    ended = await doctor.end(case.id, "viral pharyngitis; rest and fluids")
    assert ended.outcome == "completed"
    told = await patient.next(f.Ended)
    assert told.summary == "viral pharyngitis; rest and fluids"

    response = await desk.gateway.get(
        f"/api/consultations/{case.id}/transcript?format=json",
        headers={"Authorization": f"Bearer {patient.token}"},
    )
    assert response.status == 200
    document = json.loads(await response.text())
    assert [e["body"] for e in document["entries"]] == ["hello doctor", "hello, how can I help?"]
    assert patient.duplicates == doctor.duplicates == 0


async def test_a_json_patient_and_a_msgpack_doctor_talk_to_each_other(desk: Desk) -> None:
    patient = await desk.patient("p1", encoding=Encoding.JSON)
    doctor = await desk.doctor("d1", encoding=Encoding.MSGPACK)
    await patient.join("general", "a rash on my arm")
    case = await doctor.take_next()
    await patient.next(f.Assigned)

    await patient.send(case.id, "it itches — 很痒")
    await doctor.send(case.id, "since when? 多久了？")
    for client in (patient, doctor):
        thread = await client.wait_for_messages(case.id, 2)
        assert [m.text for m in thread.in_order()] == ["it itches — 很痒", "since when? 多久了？"]


async def test_a_doctor_holds_three_consultations_at_once(desk: Desk) -> None:
    doctor = await desk.doctor("d1", capacity=3)
    patients = [await desk.patient(f"p{i}") for i in range(4)]
    for i, patient in enumerate(patients):
        await patient.join("general", f"symptom number {i}")
    cases = [await doctor.take_next() for _ in range(3)]
    assert [c.patient for c in cases] == ["p0", "p1", "p2"]
    with pytest.raises(ChatError) as refused:
        await doctor.take_next()
    assert refused.value.code == "at_capacity"

    for case, patient in zip(cases, patients, strict=False):
        await patient.next(f.Assigned)
        await patient.send(case.id, f"from {case.patient}")
        await doctor.send(case.id, f"to {case.patient}")
    for case, patient in zip(cases, patients, strict=False):
        mine = await patient.wait_for_messages(case.id, 2)
        assert [m.text for m in mine.in_order()] == [f"from {case.patient}", f"to {case.patient}"]
        held = await doctor.wait_for_messages(case.id, 2)
        assert [m.text for m in held.in_order()] == [f"from {case.patient}", f"to {case.patient}"]
    assert set(patients[0].threads) == {cases[0].id}  # nobody sees another's consultation


async def test_push_department_offers_the_patient_and_the_doctor_accepts(desk: Desk) -> None:
    doctor = await desk.doctor("d1", departments=("psych",))
    patient = await desk.patient("p1")
    await patient.join("psych", "I cannot sleep and feel anxious")

    offer = await doctor.next(f.Offered)
    assert offer.consultation.patient == "p1" and offer.consultation.intake is not None
    case = await doctor.accept(offer.consultation.id)
    assert case.state == "active"
    assigned = await patient.next(f.Assigned)
    assert assigned.consultation == case.id


async def test_an_offer_not_accepted_in_time_returns_to_the_queue(make_desk: DeskFactory) -> None:
    config = Config(triage=TriageConfig(accept_timeout_s=1))
    desk = await make_desk(config)
    doctor = await desk.doctor("d1", departments=("psych",))
    patient = await desk.patient("p1")
    await patient.join("psych", "feeling low")
    offer = await doctor.next(f.Offered)

    released = await doctor.next(f.Released, timeout=10)
    assert released.consultation == offer.consultation.id
    assert released.reason == "offer_expired"
    status = await doctor.next(f.StatusChanged, lambda s: s.status == "away", timeout=10)
    assert status.status == "away"
    with pytest.raises(ChatError) as late:
        await doctor.accept(offer.consultation.id)
    assert late.value.code == "not_offered"

    other = await desk.doctor("d2", departments=("psych",))
    again = await other.next(f.Offered, timeout=10)
    assert again.consultation.id == offer.consultation.id


async def test_a_transfer_hands_the_patient_to_another_department(desk: Desk) -> None:
    first = await desk.doctor("d1", departments=("general",))
    second = await desk.doctor("d2", departments=("paediatrics",))
    patient = await desk.patient("p1")
    await patient.join("general", "my child has a fever")
    case = await first.take_next()
    await patient.next(f.Assigned)
    await patient.send(case.id, "she is four")

    released = await first.transfer(case.id, department="paediatrics")
    assert released.reason == "transferred"
    queued = await patient.next(f.Queued)
    assert queued.department == "paediatrics"
    taken = await second.take_next()
    assert taken.id == case.id
    assigned = await patient.next(f.Assigned)
    assert assigned.doctor_name == "Dr D2"

    held = await second.catch_up(case.id)
    assert [m.text for m in held.in_order()] == ["she is four"]
    await second.send(case.id, "paediatrics here")
    await patient.wait_for_messages(case.id, 2)
    with pytest.raises(ChatError) as refused:
        await first.send(case.id, "still me")
    assert refused.value.code == "forbidden"
    page = await first.fetch(case.id)  # a former doctor still reads what they saw
    assert isinstance(page, f.Messages) and len(page.entries) == 2


async def test_a_red_flag_intake_gets_emergency_guidance_at_once_and_again_on_leaving(
    desk: Desk,
) -> None:
    patient = await desk.patient("p1", lang="zh-CN")
    joined = await patient.join("general", "突然胸痛，出冷汗")
    assert joined.urgency == "emergency"
    assert [flag.phrase for flag in joined.red_flags] == ["胸痛"]
    guidance = await patient.next(f.Guidance)
    assert guidance.number == "120" and "120" in guidance.text and "急" in guidance.text

    await patient.leave()
    again = await patient.next(f.Guidance)
    assert again.phrase == "胸痛"


async def test_a_send_whose_ack_was_lost_is_stored_once(desk: Desk) -> None:
    patient = await desk.patient("p1")
    doctor = await desk.doctor("d1")
    await patient.join("general", "cough")
    case = await doctor.take_next()
    await patient.next(f.Assigned)

    lost = f.Send(consultation=case.id, client_msg_id="m-1", text="first try", id="send-m-1")
    await patient.send_frame(lost)  # the reply to this is "lost": nobody waits for it
    await patient.next(f.Ack)
    await patient.reconnect()
    retried = await patient.send(case.id, "first try", client_msg_id="m-1")
    assert retried.duplicate and retried.seq == 1

    await patient.send(case.id, "second")
    thread = await doctor.wait_for_messages(case.id, 2)
    assert [m.text for m in thread.in_order()] == ["first try", "second"]
    assert doctor.duplicates == 0


async def test_a_patient_back_in_the_queue_after_a_transfer_can_leave(desk: Desk) -> None:
    doctor = await desk.doctor("d1", departments=("general",))
    patient = await desk.patient("p1")
    await patient.join("general", "a question about my medication")
    case = await doctor.take_next()
    await patient.next(f.Assigned)
    with pytest.raises(ChatError) as refused:
        await patient.leave()
    assert refused.value.code == "in_consultation"

    await doctor.transfer(case.id, department="paediatrics")
    await patient.next(f.Queued)
    left = await patient.leave()
    assert left.ticket
    ended = await patient.next(f.Ended)
    assert ended.outcome == "patient_left"
    assert isinstance(await patient.quote("general"), f.Quoted)
    await patient.join("general", "a new question")  # free to join again


async def test_typing_and_read_receipts_reach_the_other_side(desk: Desk) -> None:
    patient = await desk.patient("p1")
    doctor = await desk.doctor("d1")
    await patient.join("general", "a question")
    case = await doctor.take_next()
    await patient.next(f.Assigned)

    await patient.typing(case.id)
    typing = await doctor.next(f.TypingNotice)
    assert (typing.consultation, typing.role) == (case.id, "patient")
    await patient.send(case.id, "one")
    await patient.send(case.id, "two")
    await doctor.wait_for_messages(case.id, 2)
    await doctor.mark_read(case.id, 2)
    receipt = await patient.next(f.ReadReceipt)
    assert (receipt.role, receipt.seq) == ("doctor", 2)
    await doctor.mark_read(case.id, 1)  # a lower mark changes nothing and tells nobody
    view = await patient.open(case.id)
    assert view.read == {"doctor": 2}
    assert not [frame for frame in patient.inbox if isinstance(frame, f.ReadReceipt)]


async def test_the_patients_delivery_marks_reach_the_doctor_and_show_in_the_view(
    desk: Desk,
) -> None:
    patient = await desk.patient("p1")
    doctor = await desk.doctor("d1")
    await patient.join("general", "a question")
    case = await doctor.take_next()
    await patient.next(f.Assigned)
    for text in ("one", "two", "three"):
        await doctor.send(case.id, text)
    await patient.wait_for_messages(case.id, 3)

    await patient.mark_delivered(case.id, 2)
    receipt = await doctor.next(f.DeliveryReceipt)
    assert (receipt.consultation, receipt.role, receipt.seq) == (case.id, "patient", 2)
    assert (await doctor.open(case.id)).delivered == {"patient": 2}

    await patient.mark_delivered(case.id, 1)  # a lower mark changes nothing and tells nobody
    await patient.mark_read(case.id, 3)  # reading raises delivery; the read receipt says so
    read = await doctor.next(f.ReadReceipt)
    assert (read.role, read.seq) == ("patient", 3)
    view = await doctor.open(case.id)
    assert (view.read, view.delivered) == ({"patient": 3}, {"patient": 3})
    # Published on the same channel before the read receipt, any delivery receipt is here now.
    assert not [frame for frame in doctor.inbox if isinstance(frame, f.DeliveryReceipt)]


async def test_the_doctor_sees_the_patients_earlier_consultations(desk: Desk) -> None:
    first_doctor = await desk.doctor("d1")
    patient = await desk.patient("p1")
    await patient.join("general", "a cough")
    earlier = await first_doctor.take_next()
    await first_doctor.end(earlier.id, "bronchitis; reviewed")
    await patient.next(f.Ended)

    await patient.join("general", "the cough is back")
    doctor = await desk.doctor("d2")
    case = await doctor.take_next()
    history = await doctor.patient_history(case.id)
    assert [(item.id, item.summary, item.doctor_name) for item in history.items] == [
        (earlier.id, "bronchitis; reviewed", "Dr D1")
    ]
    with pytest.raises(ChatError) as refused:
        await first_doctor.patient_history(case.id)  # not this consultation's doctor
    assert refused.value.code == "forbidden"
    auditor = await desk.supervisor("s1", ("general",))
    entries = {(e.user, e.action, e.consultation) for e in await auditor.list_audit()}
    assert ("d2", "patient_history", earlier.id) in entries


async def test_the_client_tells_of_each_message_as_its_frame_is_read(desk: Desk) -> None:
    patient = await desk.patient("p1")
    doctor = await desk.doctor("d1")
    await patient.join("general", "a cough")
    case = await doctor.take_next()
    await patient.next(f.Assigned)
    heard: list[tuple[str, int, str]] = []
    patient.on_message = lambda consultation, entry: heard.append(
        (consultation, entry.seq, entry.text)
    )
    for n in range(3):
        await doctor.send(case.id, f"question {n}")
    await patient.wait_for_messages(case.id, 3)
    assert heard == [(case.id, n + 1, f"question {n}") for n in range(3)]
