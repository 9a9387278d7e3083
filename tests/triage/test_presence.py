"""Presence per (user, gateway) under gateway leases, and the absences it starts and cancels."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.triage.conftest import RULES, Join, OnDuty
from triage import errors, events, keys
from triage.engine import Engine, ManualClock
from triage.models import ConsultationState, DoctorStatus, TicketState
from triage.presence import Change, Counted, Presence
from triage.records import Intake
from triage.views import OpenCase

LEASE_S = 10


@pytest.fixture
async def presence(redis: Redis, engine: Engine, clock: ManualClock) -> Presence:
    book = Presence(redis, engine._scripts, RULES, clock)  # noqa: SLF001
    for gateway in ("A", "B"):
        await book.lease(gateway, LEASE_S)
    return book


async def pass_time(clock: ManualClock, engine: Engine, seconds: float, *doctors: str) -> None:
    """Let time pass while the doctors' gateways keep renewing their presence, as they do."""
    step = RULES.presence_ttl_s / 4
    while seconds > 0:
        clock.advance(min(step, seconds))
        seconds -= step
        for doctor in doctors:
            await engine.heartbeat(doctor)


async def event_types(redis: Redis) -> list[str]:
    return [event.type for event in await events.read(redis, "0-0", count=1000)]


async def test_a_doctor_on_two_gateways_is_present_until_the_last_connection_closes(
    presence: Presence,
    engine: Engine,
    on_duty: OnDuty,
    join: Join,
    redis: Redis,
    clock: ManualClock,
) -> None:
    await on_duty("d1")
    await join("p1")
    match = await engine.take_next("d1")
    assert await presence.connect("A", "d1", "doctor") == 1
    assert await presence.connect("B", "d1", "doctor") == 2
    assert await presence.disconnect("A", "d1", "doctor") == 1
    assert "doctor_away" not in await event_types(redis)

    await presence.disconnect("B", "d1", "doctor")
    assert "doctor_away" in await event_types(redis)
    doctor = await engine.doctor("d1")
    assert doctor is not None
    assert doctor.alive_until_ms == clock.now_ms + RULES.presence_ttl_s * 1000
    clock.advance(RULES.presence_ttl_s)
    await engine.fire_timers()
    consultation = await engine.consultation(match.consultation_id)
    assert consultation.state is ConsultationState.QUEUED  # requeued at its place
    assert (await engine.doctor("d1")).status is DoctorStatus.OFFLINE  # type: ignore[union-attr]


async def test_a_doctor_back_within_the_grace_keeps_their_patients(
    presence: Presence,
    engine: Engine,
    on_duty: OnDuty,
    join: Join,
    redis: Redis,
    clock: ManualClock,
) -> None:
    await on_duty("d1")
    await join("p1")
    match = await engine.take_next("d1")
    await presence.connect("A", "d1", "doctor")
    await presence.disconnect("A", "d1", "doctor")
    clock.advance(RULES.presence_ttl_s / 2)
    await presence.connect("B", "d1", "doctor")
    await pass_time(clock, engine, RULES.presence_ttl_s * 2, "d1")  # B renews them now
    await engine.fire_timers()
    assert (await engine.consultation(match.consultation_id)).state is ConsultationState.ACTIVE
    assert (await event_types(redis))[-2:] == ["doctor_away", "doctor_back"]


async def test_a_patient_gone_from_an_active_consultation_leaves_after_the_grace(
    presence: Presence,
    engine: Engine,
    on_duty: OnDuty,
    join: Join,
    redis: Redis,
    clock: ManualClock,
) -> None:
    await on_duty("d1", capacity=1)
    await join("p1")
    match = await engine.take_next("d1")
    await presence.connect("A", "p1", "patient")
    await presence.disconnect("A", "p1", "patient")
    assert (await event_types(redis))[-1] == "patient_away"
    await pass_time(clock, engine, RULES.patient_grace_s - 1, "d1")
    await engine.fire_timers()
    assert (await engine.consultation(match.consultation_id)).state is ConsultationState.ACTIVE
    await pass_time(clock, engine, 1, "d1")
    await engine.fire_timers()
    ended = await engine.consultation(match.consultation_id)
    assert (ended.state, ended.outcome) == (ConsultationState.ENDED, "patient_left")
    assert (await engine.doctor("d1")).active == 0  # type: ignore[union-attr]


async def test_a_patient_back_in_time_keeps_the_consultation(
    presence: Presence,
    engine: Engine,
    on_duty: OnDuty,
    join: Join,
    redis: Redis,
    clock: ManualClock,
) -> None:
    await on_duty("d1")
    await join("p1")
    match = await engine.take_next("d1")
    await presence.connect("A", "p1", "patient")
    await presence.disconnect("A", "p1", "patient")
    await presence.connect("B", "p1", "patient")
    await pass_time(clock, engine, RULES.patient_grace_s * 2, "d1")
    await engine.fire_timers()
    assert (await engine.consultation(match.consultation_id)).state is ConsultationState.ACTIVE
    assert (await event_types(redis))[-1] == "patient_back"


async def test_a_waiting_patient_gone_past_the_grace_leaves_the_queue(
    presence: Presence, engine: Engine, join: Join, clock: ManualClock
) -> None:
    ticket = await join("p1")
    await presence.connect("A", "p1", "patient")
    await presence.disconnect("A", "p1", "patient")
    clock.advance(RULES.patient_grace_s)
    await engine.fire_timers()
    assert (await engine.ticket(ticket)).state is TicketState.ABANDONED


async def test_a_dead_gateways_users_are_gone_once_its_lease_lapses_and_it_is_reaped(
    presence: Presence,
    engine: Engine,
    on_duty: OnDuty,
    join: Join,
    redis: Redis,
    clock: ManualClock,
) -> None:
    await on_duty("d1")
    await join("p1")
    await engine.take_next("d1")
    await presence.connect("A", "d1", "doctor")
    await presence.connect("B", "p1", "patient")
    clock.advance(LEASE_S / 2)
    await presence.lease("B", LEASE_S)  # B lives on; A stopped renewing (SIGKILL)
    assert await presence.reap() == ()
    clock.advance(LEASE_S / 2)
    assert await presence.reap() == ("A",)
    assert "doctor_away" in await event_types(redis)
    assert "patient_away" not in await event_types(redis)
    assert await presence.connections("d1") == {}
    assert await redis.exists(keys.gateway_users("A")) == 0


async def test_a_hold_after_an_outage_stops_timers_and_reaping_until_it_ends(
    presence: Presence, engine: Engine, join: Join, clock: ManualClock
) -> None:
    ticket = await join("p1")
    await presence.connect("A", "p1", "patient")
    await presence.disconnect("A", "p1", "patient")
    clock.advance(RULES.patient_grace_s + LEASE_S)  # the outage: nothing ran meanwhile
    await presence.lease("B", LEASE_S, hold_s=5)
    assert await engine.fire_timers() == ()
    assert await presence.reap() == ()
    assert (await engine.ticket(ticket)).state is TicketState.WAITING
    clock.advance(5)
    await engine.fire_timers()
    assert (await engine.ticket(ticket)).state is TicketState.ABANDONED


async def test_connections_per_user_are_limited_across_gateways(presence: Presence) -> None:
    await presence.connect("A", "p1", "patient", max_connections=2)
    await presence.connect("B", "p1", "patient", max_connections=2)
    with pytest.raises(errors.TooManyConnections):
        await presence.connect("A", "p1", "patient", max_connections=2)
    await presence.disconnect("B", "p1", "patient")
    assert await presence.connect("A", "p1", "patient", max_connections=2) == 2


async def test_changes_counted_together_are_judged_in_order_one_refusal_leaving_the_rest(
    presence: Presence,
) -> None:
    opened = [Change("p1", "patient", 1)] * 3 + [Change("p1", "patient", -1)]
    counted = await presence.update("A", [*opened, Change("p1", "patient", 1)], 2)
    assert [(c.live, c.refused) for c in counted] == [
        (1, ""),
        (2, ""),
        (2, "too_many_connections"),  # nothing counted: the close after it leaves one
        (1, ""),
        (2, ""),
    ]
    assert await presence.connections("p1") == {"A": 2}


async def test_a_patients_counted_connection_brings_where_they_stand(
    presence: Presence, engine: Engine, join: Join
) -> None:
    ticket = await join("p1")
    counted = await presence.update(
        "A",
        [Change("p1", "patient", 1), Change("p2", "patient", 1), Change("d1", "doctor", 1)],
    )
    assert counted == [
        Counted(1, True, case=OpenCase(ticket, "", "waiting", "general")),
        Counted(1, True, case=OpenCase("", "")),  # a patient with nothing open
        Counted(1, True),  # staff: no case
    ]
    refused = await presence.update("A", [Change("p1", "patient", 1)], max_connections=1)
    assert refused == [Counted(1, False, "too_many_connections")]


async def test_reasserting_replaces_a_gateways_counts_without_events(
    presence: Presence, redis: Redis
) -> None:
    await presence.connect("A", "d1", "doctor")
    await presence.connect("A", "p1", "patient")
    before = await event_types(redis)
    assert await presence.reassert("A", {("doctor", "d1"): 3}) == 1
    assert await presence.connections("d1") == {"A": 3}
    assert await presence.connections("p1") == {}
    assert await event_types(redis) == before


async def test_reasserting_after_a_reap_keeps_a_connected_waiting_patient_in_the_queue(
    presence: Presence, engine: Engine, join: Join, clock: ManualClock
) -> None:
    ticket = await join("p1")
    await presence.connect("A", "p1", "patient")
    clock.advance(LEASE_S)  # A stalled past its lease and was reaped, though its socket lived
    assert await presence.reap() == ("A", "B")
    await presence.lease("A", LEASE_S)
    await presence.reassert("A", {("patient", "p1"): 1})
    clock.advance(RULES.patient_grace_s)
    await engine.fire_timers()
    assert (await engine.ticket(ticket)).state is TicketState.WAITING
    assert await presence.connections("p1") == {"A": 1}


async def test_a_hold_alone_names_no_gateway(
    presence: Presence, redis: Redis, engine: Engine, join: Join, clock: ManualClock
) -> None:
    ticket = await join("p1")
    await presence.connect("A", "p1", "patient")
    await presence.disconnect("A", "p1", "patient")
    clock.advance(RULES.patient_grace_s)
    await presence.hold(3)
    assert await engine.fire_timers() == ()
    assert set(await redis.zrange(keys.gateways(), 0, -1)) == {"A", "B"}
    clock.advance(3)
    assert len(await engine.fire_timers()) == 1
    assert (await engine.ticket(ticket)).state is TicketState.ABANDONED


async def test_a_doctor_away_in_the_grace_is_offered_no_new_patient(
    presence: Presence, engine: Engine, on_duty: OnDuty, join: Join, redis: Redis
) -> None:
    await on_duty("d1", ("psych",), capacity=3)
    await presence.connect("A", "d1", "doctor")
    await presence.disconnect("A", "d1", "doctor")
    assert await redis.zrange(keys.available("psych"), 0, -1) == []
    await join("p1", "psych")
    assert await engine.waiting("psych") != ()  # nobody reachable: the patient waits
    await presence.connect("B", "d1", "doctor")
    assert await redis.zrange(keys.available("psych"), 0, -1) == ["d1"]
    await engine.assign("psych")
    assert await engine.waiting("psych") == ()  # offered once the doctor is back


async def test_during_a_hold_push_routing_passes_over_a_doctor_whose_presence_ran_out(
    presence: Presence, engine: Engine, on_duty: OnDuty, join: Join, clock: ManualClock
) -> None:
    await on_duty("d1", ("psych",), capacity=3)  # ranked first: on duty first, same load
    clock.advance(1)
    await on_duty("d2", ("psych",), capacity=3)
    clock.advance(RULES.presence_ttl_s - 0.5)  # an outage: d1's presence ran out, d2's not
    await engine.heartbeat("d2")
    await presence.hold(5)
    joined = await engine.enqueue("p1", "psych", intake_for_psych(), clock.now_ms)
    assert [offer.doctor_id for offer in joined.offers] == ["d2"]
    assert (await engine.doctor("d1")).status is DoctorStatus.AVAILABLE  # not lapsed meanwhile


def intake_for_psych() -> Intake:
    return Intake(symptoms="low mood", age_band="30-39", duration="1w")
