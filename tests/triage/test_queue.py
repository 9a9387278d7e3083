"""Joining, leaving, ordering and quoting the queue, on real Redis with a controlled clock."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.triage.conftest import Join, OnDuty, intake
from triage import errors, keys
from triage.engine import MATCH_HISTORY_S, Engine, ManualClock
from triage.eta import Basis
from triage.models import TicketState, Urgency


async def test_join_records_the_ticket_with_consent_intake_and_place(
    engine: Engine, clock: ManualClock
) -> None:
    result = await engine.enqueue("p1", "general", intake("cough"), clock.now_ms - 5000)
    assert (result.ticket_id, result.arrival, result.position) == ("t000000000001", 1, 1)
    ticket = await engine.ticket(result.ticket_id)
    assert ticket.state is TicketState.WAITING
    assert ticket.join_ms == clock.now_ms and ticket.place == clock.now_ms
    assert ticket.consent_ms == clock.now_ms - 5000
    assert ticket.intake.symptoms == "cough" and ticket.urgency is Urgency.ROUTINE
    assert await engine.waiting("general") == ("t000000000001",)
    assert (await engine.stats("general"))["joined"] == 1


async def test_fifo_within_a_level_even_at_the_same_millisecond(join: Join, engine: Engine) -> None:
    tickets = [await join(f"p{i}") for i in range(12)]  # the clock does not move
    assert await engine.waiting("general") == tuple(tickets)


async def test_urgent_goes_ahead_of_recent_routine_but_not_of_long_waiters(
    join: Join, engine: Engine, clock: ManualClock
) -> None:
    old = await join("old")  # waits 40 minutes: more than urgent's 30-minute head start
    clock.advance(40 * 60)
    recent = await join("recent")
    clock.advance(60)
    urgent = await join("urgent", symptoms="very high fever since yesterday")
    assert (await engine.ticket(urgent)).urgency is Urgency.URGENT
    assert await engine.waiting("general") == (old, urgent, recent)


async def test_emergency_goes_to_the_head_in_arrival_order(
    join: Join, engine: Engine, clock: ManualClock
) -> None:
    routine = await join("r")
    clock.advance(3600)
    first = await join("e1", symptoms="Crushing CHEST PAIN")
    clock.advance(1)
    second = await join("e2", symptoms="我胸痛")
    assert await engine.waiting("general") == (first, second, routine)
    flags = (await engine.ticket(first)).red_flags
    assert [(f.phrase, f.urgency) for f in flags] == [("chest pain", Urgency.EMERGENCY)]


async def test_reprioritise_raises_and_keeps_the_join_time(
    join: Join, engine: Engine, clock: ManualClock
) -> None:
    first = await join("a")
    clock.advance(599)
    second = await join("b")
    clock.advance(1)
    tied = await join("c")  # joins exactly 600 s after `first`
    clock.advance(30)
    assert await engine.reprioritise(second, Urgency.PRIORITY, "new symptoms") == 1
    # Same place as `first` (600 s later, 600 s head start): the earlier arrival stays ahead.
    assert await engine.reprioritise(tied, Urgency.PRIORITY, "doctor's call") == 3
    assert await engine.waiting("general") == (second, first, tied)
    ticket = await engine.ticket(second)
    assert ticket.join_ms == (await engine.ticket(first)).join_ms + 599_000
    assert [h["urgency"] for h in ticket.urgency_history] == ["routine", "priority"]
    with pytest.raises(errors.NotRaised):
        await engine.reprioritise(second, Urgency.ROUTINE, "oops")


async def test_a_patient_cannot_join_twice(join: Join, engine: Engine, clock: ManualClock) -> None:
    ticket = await join("p1")
    with pytest.raises(errors.AlreadyWaiting, match=ticket):
        await engine.enqueue("p1", "paeds", intake(), clock.now_ms)
    assert await engine.waiting("paeds") == ()


async def test_wrong_joins_are_refused_and_change_nothing(
    engine: Engine, clock: ManualClock, redis: Redis
) -> None:
    with pytest.raises(errors.ConsentRequired):
        await engine.enqueue("p1", "general", intake(), None)
    with pytest.raises(errors.UnknownDepartment):
        await engine.enqueue("p1", "cardio", intake(), clock.now_ms)
    assert await redis.exists(keys.patient("p1")) == 0
    assert await engine.waiting("general") == ()


async def test_cancel_abandons_with_the_wait_and_counts_it(
    join: Join, engine: Engine, clock: ManualClock
) -> None:
    ticket = await join("p1", symptoms="chest pain")
    clock.advance(90)
    left = await engine.cancel("p1")
    assert (left.ticket_id, left.waited_ms, left.urgency) == (ticket, 90_000, Urgency.EMERGENCY)
    assert left.red_flags[0].phrase == "chest pain"
    assert (await engine.ticket(ticket)).state is TicketState.ABANDONED
    stats = await engine.stats("general")
    assert (stats["abandoned"], stats["wait_ms_abandoned"]) == (1, 90_000)
    with pytest.raises(errors.NotWaiting):
        await engine.cancel("p1")
    await join("p1")  # free to join again


async def test_cancelling_an_assigned_ticket_is_refused(
    join: Join, on_duty: OnDuty, engine: Engine
) -> None:
    await join("p1")
    await on_duty("d1")
    await engine.take_next("d1")
    with pytest.raises(errors.NotWaiting):
        await engine.cancel("p1")


async def test_quote_counts_who_is_ahead_and_flags_surge(
    join: Join, on_duty: OnDuty, engine: Engine, clock: ManualClock
) -> None:
    empty = await engine.quote("general")
    assert (empty.estimate.position, empty.estimate.basis, empty.surge) == (
        1,
        Basis.NO_DOCTORS,
        True,
    )
    for i in range(3):
        await join(f"p{i}")
    await on_duty("d1", capacity=1)
    quote = await engine.quote("general")
    assert quote.waiting == 3 and quote.estimate.position == 4
    assert quote.estimate.basis in (Basis.STAFFING, Basis.FREE_SLOT)
    emergency = await engine.quote("general", Urgency.EMERGENCY)
    assert emergency.estimate.position == 1
    position = await engine.position("t000000000002")
    assert (position.state, position.estimate.position) == ("waiting", 2)


async def test_eta_follows_the_departments_service_rate(
    join: Join, on_duty: OnDuty, engine: Engine, clock: ManualClock
) -> None:
    await on_duty("d1", capacity=1)
    for i in range(6):  # six matches, one a minute: a service rate of 1/min
        await join(f"served{i}")
        match = await engine.take_next("d1")
        for _ in range(4):  # a minute's consultation, heartbeats every 15 s
            clock.advance(15)
            await engine.heartbeat("d1")
        await engine.end("d1", match.consultation_id, "")
    for i in range(4):
        await join(f"w{i}")
    await engine.take_next("d1")  # the doctor is busy: no free slot
    quote = await engine.quote("general")
    assert quote.estimate.basis is Basis.SERVICE_RATE
    assert quote.estimate.position == 4  # three still waiting ahead
    # 7 matches in the 900 s window: 4 patients to serve at 7/900 per second, rounded up.
    assert quote.estimate.eta_s == -(-4 * 900 // 7)


async def test_a_quote_over_the_max_wait_flags_surge_until_a_quote_within_it(
    join: Join, on_duty: OnDuty, engine: Engine, clock: ManualClock
) -> None:
    await on_duty("d1", ("paeds",), capacity=1)
    for i in range(4):
        await join(f"k{i}", "paeds")
    await engine.take_next("d1")
    over = await engine.quote("paeds")  # staffing: 4 ahead x 600 s > 1200 s max wait
    assert over.surge and over.estimate.eta_s is not None and over.estimate.eta_s > 1200
    assert set(await engine.surging()) == {"paeds"}
    for _ in range(3):
        await engine.cancel(
            f"k{(await engine.ticket((await engine.waiting('paeds'))[0])).patient_id[1:]}"
        )
    within = await engine.quote("paeds")
    assert not within.surge
    assert await engine.surging() == {}


async def test_trim_matches_drops_only_matches_older_than_the_longest_eta_window(
    join: Join, on_duty: OnDuty, engine: Engine, clock: ManualClock, redis: Redis
) -> None:
    await on_duty("d1", ("general", "paeds"), capacity=5)
    await join("old")
    old = await engine.take_next("d1")
    clock.advance(MATCH_HISTORY_S - 30)
    await on_duty("d1", ("general", "paeds"), capacity=5)  # presence renewed
    await join("recent", "paeds")
    recent = await engine.take_next("d1")
    clock.advance(60)  # the first match is now past the history, the second is not
    # The scripts only add: nothing is dropped until the sweeper's trim.
    assert await redis.zcard(keys.matches("general")) == 1
    assert await engine.trim_matches() == 1
    assert await redis.zrange(keys.matches("general"), 0, -1) == []
    assert await redis.zrange(keys.matches("paeds"), 0, -1) == [recent.ticket_id]
    assert old.ticket_id != recent.ticket_id
    assert await engine.trim_matches() == 0
