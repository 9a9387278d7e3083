"""Doctors, matching, consultations and their wrong calls, on real Redis."""

from __future__ import annotations

import pytest

from tests.triage.conftest import Join, OnDuty
from triage import errors
from triage.engine import Engine, ManualClock
from triage.models import ConsultationState, DoctorStatus, TicketState


async def test_take_next_creates_the_consultation_in_the_same_step(
    join: Join, on_duty: OnDuty, engine: Engine, clock: ManualClock
) -> None:
    ticket = await join("p1")
    clock.advance(120)
    await on_duty("d1")
    match = await engine.take_next("d1")
    assert (match.ticket_id, match.patient_id, match.department, match.waited_ms) == (
        ticket,
        "p1",
        "general",
        120_000,
    )
    consultation = await engine.consultation(match.consultation_id)
    assert consultation.state is ConsultationState.ACTIVE
    assert (consultation.doctor_id, consultation.patient_id) == ("d1", "p1")
    assert consultation.started_ms == clock.now_ms
    assert (await engine.ticket(ticket)).state is TicketState.ASSIGNED
    doctor = await engine.doctor("d1")
    assert doctor is not None and doctor.active == 1
    assert await engine.waiting("general") == ()
    stats = await engine.stats("general")
    assert (stats["matched"], stats["wait_ms_matched"]) == (1, 120_000)


async def test_take_next_picks_the_best_ticket_across_departments(
    join: Join, on_duty: OnDuty, engine: Engine, clock: ManualClock
) -> None:
    await join("g1", "general")
    clock.advance(1)
    paeds = await join("k1", "paeds", symptoms="rash")
    clock.advance(1)
    emergency = await join("g2", "general", symptoms="chest pain")
    await on_duty("d1", ("general", "paeds"), capacity=3)
    order = [(await engine.take_next("d1")).ticket_id for _ in range(3)]
    assert order[0] == emergency
    assert order[2] == paeds or order[1] == paeds
    assert order[1:] == ["t000000000001", paeds]


async def test_a_doctor_never_exceeds_capacity(join: Join, on_duty: OnDuty, engine: Engine) -> None:
    for i in range(3):
        await join(f"p{i}")
    await on_duty("d1", capacity=2)
    await engine.take_next("d1")
    await engine.take_next("d1")
    with pytest.raises(errors.AtCapacity):
        await engine.take_next("d1")
    assert len(await engine.waiting("general")) == 1


async def test_take_next_wrong_calls(join: Join, on_duty: OnDuty, engine: Engine) -> None:
    with pytest.raises(errors.DoctorOffline):
        await engine.take_next("nobody")
    await on_duty("d1", status=DoctorStatus.AWAY)
    await join("p1")
    with pytest.raises(errors.NotAvailable):
        await engine.take_next("d1")
    await on_duty("d2", ("paeds",))
    with pytest.raises(errors.QueueEmpty):
        await engine.take_next("d2")
    assert await engine.waiting("general") == ("t000000000001",)


async def test_a_lapsed_doctor_cannot_take_a_patient(
    join: Join, on_duty: OnDuty, engine: Engine, clock: ManualClock
) -> None:
    await on_duty("d1")
    await join("p1")
    clock.advance(21)  # presence ttl is 20 s
    with pytest.raises(errors.DoctorOffline):
        await engine.take_next("d1")
    doctor = await engine.doctor("d1")
    assert doctor is not None and doctor.status is DoctorStatus.OFFLINE
    assert await engine.waiting("general") == ("t000000000001",)


async def test_end_by_a_participant_frees_the_slot_and_records_the_summary(
    join: Join, on_duty: OnDuty, engine: Engine
) -> None:
    await join("p1")
    await on_duty("d1", capacity=1)
    match = await engine.take_next("d1")
    with pytest.raises(errors.NotParticipant):
        await engine.end("d2", match.consultation_id, "not mine")
    ended = await engine.end("d1", match.consultation_id, "Viral; rest and fluids.")
    assert ended.outcome == "completed"
    consultation = await engine.consultation(match.consultation_id)
    assert consultation.state is ConsultationState.ENDED
    assert consultation.summary == "Viral; rest and fluids."
    assert consultation.history[0].outcome == "completed"
    doctor = await engine.doctor("d1")
    assert doctor is not None and doctor.active == 0
    with pytest.raises(errors.AlreadyEnded):
        await engine.end("d1", match.consultation_id, "twice")
    await join("p1")  # the patient may come back


async def test_the_patient_can_end_too_and_patient_left_frees_the_slot(
    join: Join, on_duty: OnDuty, engine: Engine
) -> None:
    await join("p1")
    await join("p2")
    await on_duty("d1", capacity=2)
    first = await engine.take_next("d1")
    second = await engine.take_next("d1")
    assert (await engine.end("p1", first.consultation_id, "")).outcome == "completed"
    left = await engine.patient_left(second.consultation_id)
    assert left.outcome == "patient_left"
    assert (await engine.consultation(second.consultation_id)).outcome == "patient_left"
    doctor = await engine.doctor("d1")
    assert doctor is not None and doctor.active == 0
    with pytest.raises(errors.AlreadyEnded):
        await engine.patient_left(second.consultation_id)


async def test_going_offline_with_open_consultations_is_refused(
    join: Join, on_duty: OnDuty, engine: Engine
) -> None:
    await join("p1")
    await on_duty("d1")
    await engine.take_next("d1")
    with pytest.raises(errors.OpenConsultations):
        await on_duty("d1", status=DoctorStatus.OFFLINE)
    await on_duty("d1", status=DoctorStatus.AWAY)  # away keeps them
    doctor = await engine.doctor("d1")
    assert doctor is not None and (doctor.status, doctor.active) == (DoctorStatus.AWAY, 1)


async def test_transfer_to_a_department_keeps_the_consultation_and_the_place(
    join: Join, on_duty: OnDuty, engine: Engine, clock: ManualClock
) -> None:
    ticket = await join("p1")
    clock.advance(300)
    later = await join("k1", "paeds")
    await on_duty("d1", ("general",))
    match = await engine.take_next("d1")
    moved = await engine.transfer("d1", match.consultation_id, to_department="paeds")
    assert moved.state is ConsultationState.QUEUED
    assert await engine.waiting("paeds") == (ticket, later)  # joined earlier: ahead
    await on_duty("k-doc", ("paeds",))
    resumed = await engine.take_next("k-doc")
    assert resumed.consultation_id == match.consultation_id
    consultation = await engine.consultation(match.consultation_id)
    assert consultation.former_doctors == ("d1",)
    assert [s.outcome for s in consultation.history] == ["transferred", None]
    with pytest.raises(errors.NotParticipant):
        await engine.transfer("d1", match.consultation_id, to_department="general")


async def test_transfer_to_a_named_doctor_is_an_offer_they_accept(
    join: Join, on_duty: OnDuty, engine: Engine
) -> None:
    await join("p1")
    await on_duty("d1")
    await on_duty("d2")
    match = await engine.take_next("d1")
    with pytest.raises(errors.TargetUnavailable):
        await engine.transfer("d1", match.consultation_id, to_doctor="ghost")
    moved = await engine.transfer("d1", match.consultation_id, to_doctor="d2")
    assert moved.state is ConsultationState.OFFERED
    with pytest.raises(errors.NotOffered):
        await engine.accept("d1", match.consultation_id)
    accepted = await engine.accept("d2", match.consultation_id)
    assert accepted.consultation_id == match.consultation_id
    consultation = await engine.consultation(match.consultation_id)
    assert (consultation.doctor_id, consultation.state) == ("d2", ConsultationState.ACTIVE)
    assert [(await engine.doctor(d)).active for d in ("d1", "d2")] == [0, 1]  # type: ignore[union-attr]


async def test_a_named_transfer_needs_a_doctor_of_the_consultations_department(
    join: Join, on_duty: OnDuty, engine: Engine
) -> None:
    await join("p1")
    await on_duty("d1", ("general",))
    await on_duty("k1", ("paeds",))
    match = await engine.take_next("d1")
    with pytest.raises(errors.TargetUnavailable):
        await engine.transfer("d1", match.consultation_id, to_doctor="k1")
    assert (await engine.consultation(match.consultation_id)).doctor_id == "d1"


async def test_a_transfer_to_a_push_department_is_never_offered_back_to_its_sender(
    join: Join, on_duty: OnDuty, engine: Engine
) -> None:
    await join("p1")
    await on_duty("d1", ("general", "psych"), capacity=3)
    match = await engine.take_next("d1")
    moved = await engine.transfer("d1", match.consultation_id, to_department="psych")
    assert moved.state is ConsultationState.QUEUED and not moved.offers  # only d1 serves psych
    await on_duty("d2", ("psych",))
    assert await engine.waiting("psych") == ()  # offered to d2 when they came on duty
    consultation = await engine.consultation(match.consultation_id)
    assert (consultation.doctor_id, consultation.state) == ("d2", ConsultationState.OFFERED)


async def test_requeue_returns_the_consultation_at_its_original_place(
    join: Join, on_duty: OnDuty, engine: Engine, clock: ManualClock
) -> None:
    first = await join("p1")
    await on_duty("d1", capacity=1)
    match = await engine.take_next("d1")
    clock.advance(15)
    second = await join("p2")
    await engine.requeue(match.consultation_id)
    assert await engine.waiting("general") == (first, second)
    assert (await engine.ticket(first)).state is TicketState.WAITING
    doctor = await engine.doctor("d1")
    assert doctor is not None and (doctor.active, doctor.status) == (0, DoctorStatus.AWAY)
    await on_duty("d1", capacity=1)  # back: they say so themselves
    again = await engine.take_next("d1")
    assert again.consultation_id == match.consultation_id
    assert (await engine.stats("general"))["matched"] == 1  # one patient, one match
