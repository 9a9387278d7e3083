"""Push routing and crash-safe timers: accept deadlines, presence lapses, patient grace, and
the races between a timer and the call it would pre-empt."""

from __future__ import annotations

import pytest

from tests.triage.conftest import Join, OnDuty, intake
from triage import errors
from triage.engine import Engine, ManualClock
from triage.models import ConsultationState, DoctorStatus, TicketState
from triage.records import Intake


async def test_push_assigns_a_new_patient_to_the_least_busy_doctor_at_once(
    join: Join, on_duty: OnDuty, engine: Engine, clock: ManualClock
) -> None:
    await on_duty("busy", ("psych",), capacity=3)
    clock.advance(1)
    await on_duty("idle", ("psych",), capacity=3)
    first = await engine.enqueue("p1", "psych", _intake(), clock.now_ms)
    assert first.position == 0 and len(first.offers) == 1
    assert first.offers[0].doctor_id == "busy"  # equal load: idle longest (never assigned)
    await engine.accept("busy", first.offers[0].consultation_id)
    second = await engine.enqueue("p2", "psych", _intake(), clock.now_ms)
    assert second.offers[0].doctor_id == "idle"  # fewer active consultations
    consultation = await engine.consultation(second.offers[0].consultation_id)
    assert consultation.state is ConsultationState.OFFERED


async def test_push_waits_in_the_queue_when_nobody_is_free_and_goes_out_when_someone_is(
    engine: Engine, on_duty: OnDuty, clock: ManualClock
) -> None:
    queued = await engine.enqueue("p1", "psych", _intake(), clock.now_ms)
    assert (queued.position, queued.offers) == (1, ())
    await on_duty("d1", ("psych",))
    assert await engine.waiting("psych") == ()
    ticket = await engine.ticket(queued.ticket_id)
    consultation = await engine.consultation(ticket.consultation_id)
    assert (consultation.doctor_id, consultation.state) == ("d1", ConsultationState.OFFERED)


async def test_an_offer_not_accepted_in_time_sets_the_doctor_away_and_goes_to_another(
    engine: Engine, on_duty: OnDuty, clock: ManualClock
) -> None:
    await on_duty("slow", ("psych",))
    clock.advance(1)
    await on_duty("quick", ("psych",))
    joined = await engine.enqueue("p1", "psych", _intake(), clock.now_ms)
    offer = joined.offers[0]
    assert offer.doctor_id == "slow"
    clock.advance(15)
    await engine.heartbeat("slow")
    await engine.heartbeat("quick")
    assert await engine.fire_timers() == ()  # not due yet
    clock.advance(16)  # past the 30 s accept deadline
    assert await engine.fire_timers() == (f"accept|{offer.consultation_id}",)
    slow = await engine.doctor("slow")
    assert slow is not None and (slow.status, slow.active) == (DoctorStatus.AWAY, 0)
    consultation = await engine.consultation(offer.consultation_id)
    assert (consultation.doctor_id, consultation.state) == ("quick", ConsultationState.OFFERED)
    with pytest.raises(errors.NotOffered):
        await engine.accept("slow", offer.consultation_id)
    assert (await engine.accept("quick", offer.consultation_id)).patient_id == "p1"


async def test_an_accept_that_comes_first_wins_the_race_with_its_deadline(
    engine: Engine, on_duty: OnDuty, clock: ManualClock
) -> None:
    await on_duty("d1", ("psych",))
    offer = (await engine.enqueue("p1", "psych", _intake(), clock.now_ms)).offers[0]
    clock.advance(15)
    await engine.heartbeat("d1")
    clock.advance(14)
    await engine.accept("d1", offer.consultation_id)
    clock.advance(5)
    assert await engine.fire_timers() == ()  # re-checked: nothing left to time out
    doctor = await engine.doctor("d1")
    assert doctor is not None and doctor.status is DoctorStatus.AVAILABLE


async def test_an_accept_after_the_deadline_loses_even_before_the_sweep(
    engine: Engine, on_duty: OnDuty, clock: ManualClock
) -> None:
    await on_duty("d1", ("psych",))
    offer = (await engine.enqueue("p1", "psych", _intake(), clock.now_ms)).offers[0]
    clock.advance(15)
    await engine.heartbeat("d1")
    clock.advance(16)
    with pytest.raises(errors.NotOffered, match="expired"):
        await engine.accept("d1", offer.consultation_id)
    assert await engine.fire_timers() == ()  # the timeout already happened, exactly once
    ticket = await engine.ticket((await engine.consultation(offer.consultation_id)).ticket_id)
    assert ticket.state is TicketState.WAITING


async def test_a_lapsed_doctor_is_never_assigned(
    engine: Engine, on_duty: OnDuty, clock: ManualClock
) -> None:
    await on_duty("gone", ("psych",))
    clock.advance(21)  # presence lapsed; the sweep has not run yet
    joined = await engine.enqueue("p1", "psych", _intake(), clock.now_ms)
    assert joined.offers == () and joined.position == 1
    gone = await engine.doctor("gone")
    assert gone is not None and gone.status is DoctorStatus.OFFLINE


async def test_presence_lapse_requeues_the_doctors_consultations_at_their_place(
    join: Join, on_duty: OnDuty, engine: Engine, clock: ManualClock
) -> None:
    first = await join("p1")
    await on_duty("d1")
    match = await engine.take_next("d1")
    clock.advance(5)
    later = await join("p2")
    clock.advance(16)  # 21 s since the last sign of life
    assert await engine.fire_timers() == ("presence|d1",)
    assert await engine.waiting("general") == (first, later)
    consultation = await engine.consultation(match.consultation_id)
    assert consultation.state is ConsultationState.QUEUED and consultation.doctor_id == ""
    with pytest.raises(errors.DoctorOffline):
        await engine.heartbeat("d1")


async def test_a_heartbeat_that_comes_first_wins_the_race_with_the_lapse(
    on_duty: OnDuty, engine: Engine, clock: ManualClock
) -> None:
    await on_duty("d1")
    clock.advance(19)
    await engine.heartbeat("d1")
    clock.advance(2)  # the original deadline has passed, the renewed one has not
    assert await engine.fire_timers() == ()
    doctor = await engine.doctor("d1")
    assert doctor is not None and doctor.status is DoctorStatus.AVAILABLE


async def test_a_waiting_patient_gone_past_the_grace_is_abandoned(
    join: Join, engine: Engine, clock: ManualClock
) -> None:
    ticket = await join("p1")
    await engine.ticket_presence(ticket, connected=False)
    clock.advance(61)
    assert await engine.fire_timers() == (f"grace|{ticket}",)
    assert (await engine.ticket(ticket)).state is TicketState.ABANDONED
    assert (await engine.stats("general"))["abandoned"] == 1
    assert await engine.waiting("general") == ()


async def test_a_patient_who_reconnects_in_time_keeps_their_place(
    join: Join, engine: Engine, clock: ManualClock
) -> None:
    ticket = await join("p1")
    await engine.ticket_presence(ticket, connected=False)
    clock.advance(59)
    await engine.ticket_presence(ticket, connected=True)
    clock.advance(10)
    assert await engine.fire_timers() == ()
    assert await engine.waiting("general") == (ticket,)


def _intake() -> Intake:
    return intake("feeling low")
