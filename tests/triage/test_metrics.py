"""Desk-wide metrics from a scripted scenario on the test clock: every figure is known exactly."""

from __future__ import annotations

from redis.asyncio import Redis

from tests.triage.conftest import Join, OnDuty
from triage import keys
from triage.engine import Engine, ManualClock
from triage.metrics import record_messages
from triage.models import DoctorStatus

WINDOW_S = 900
ALERT_AFTER_S = 120


async def test_a_scripted_morning_gives_exact_figures(
    engine: Engine, clock: ManualClock, join: Join, on_duty: OnDuty, redis: Redis
) -> None:
    t0 = clock.now_ms

    async def tick(seconds: float) -> None:
        """Time passes in steps shorter than the presence ttl; the doctors stay connected."""
        while seconds > 0:
            step = min(seconds, 10)
            clock.advance(step)
            seconds -= step
            for doctor in ("d1", "d2"):
                await engine.heartbeat(doctor)

    await on_duty("d1", capacity=2)
    await on_duty("d2", capacity=1)
    p1 = await join("p1")  # t0
    assert await engine.note_quote(p1, 60)  # p1 was told "about a minute"
    assert not await engine.note_quote(p1, 5)  # only the first quote counts
    await tick(10)
    await join("p2", symptoms="chest pain since this morning")  # emergency, red-flagged
    await tick(10)
    await join("p3")  # t0 + 20 s
    await tick(10)
    await join("p4")  # t0 + 30 s
    await tick(10)
    await engine.cancel("p4")  # t0 + 40 s: a routine abandon
    await tick(60)
    first = await engine.take_next("d1")  # t0 + 100 s: the emergency first, waited 90 s
    assert first.patient_id == "p2"
    await tick(30)
    second = await engine.take_next("d1")  # t0 + 130 s: p1, waited 130 s (quoted 60 s)
    assert second.patient_id == "p1"
    await tick(10)
    await join("p5", symptoms="high fever for two days")  # t0 + 140 s: urgent, red-flagged
    await tick(160)
    await engine.set_status("d2", DoctorStatus.AWAY, "Dr d2", ("general",), 1)  # t0 + 300 s
    await tick(10)
    await engine.end("d1", first.consultation_id, "reassured")  # t0 + 310 s
    await tick(10)  # t0 + 320 s
    await record_messages(redis, 7, clock.now_ms - 5_000)
    await record_messages(redis, 3, clock.now_ms - 1_000)
    await record_messages(redis, 99, clock.now_ms)  # this second is not whole yet

    desk = await engine.metrics(WINDOW_S, ALERT_AFTER_S, cache_ms=0)
    general = desk.department("general")
    assert desk.computed_ms == t0 + 320_000
    assert desk.messages_per_s == 1.0  # 10 messages in the last 10 whole seconds
    assert (general.waiting, general.longest_wait_ms) == (2, 300_000)  # p3 and p5; p3 since +20
    assert general.red_flags_waiting == 1
    assert general.red_flags_overdue == 1  # p5 has waited 180 s > 120 s
    assert [(o.waited_ms,) for o in general.red_flags_overdue_list] == [(180_000,)]
    assert general.matched_in_window == 2
    assert (general.wait_p50_ms, general.wait_p90_ms) == (90_000, 130_000)
    assert general.started_last_minute == 0  # both matches were more than 60 s ago
    assert general.ended_last_minute == 1
    assert (general.abandoned_in_window, general.abandoned_last_minute) == (1, 0)
    assert general.abandonment_rate == 1 / 3
    assert general.flagged_abandoned_in_window == 0
    assert (general.doctors_available, general.doctors_busy, general.doctors_away) == (1, 0, 1)
    assert (general.slots_held, general.slots_total, general.utilisation) == (1, 2, 0.5)
    assert general.active_consultations == 1  # p1 with d1
    assert general.eta_checks == 1
    assert general.eta_mean_abs_error_s == 70.0  # quoted 60 s, waited 130 s
    assert general.eta_within_share == 0.0  # 70 s off: more than a minute and a quarter
    assert desk.department("paeds").waiting == 0

    await tick(10)
    await engine.cancel("p5")  # t0 + 330 s: a red-flagged patient gives up
    desk = await engine.metrics(WINDOW_S, ALERT_AFTER_S, cache_ms=0)
    general = desk.department("general")
    assert general.flagged_abandoned_in_window == 1
    assert [a.at_ms for a in general.flagged_abandoned_list] == [t0 + 330_000]
    assert general.abandonment_rate == 2 / 4
    assert general.red_flags_overdue == 0

    # Past the window everything windowed has gone; the queue and the doctors remain.
    await tick(WINDOW_S + 1)  # the window is [now - window, now]
    desk = await engine.metrics(WINDOW_S, ALERT_AFTER_S, cache_ms=0)
    general = desk.department("general")
    assert general.matched_in_window == 0 and general.wait_p50_ms is None
    assert general.abandoned_in_window == 0 and general.abandonment_rate is None
    assert general.flagged_abandoned_in_window == 0 and general.eta_checks == 0
    assert general.waiting == 1 and general.active_consultations == 1
    assert await redis.zcard(keys.waits("general")) == 0  # trimmed, not only skipped
    assert desk.messages_per_s == 0.0


async def test_a_fresh_result_is_reused_within_the_cache_time(
    engine: Engine, clock: ManualClock, join: Join
) -> None:
    before = await engine.metrics(WINDOW_S, ALERT_AFTER_S, cache_ms=1000)
    await join("p1")
    clock.advance(0.5)
    cached = await engine.metrics(WINDOW_S, ALERT_AFTER_S, cache_ms=1000)
    assert cached == before  # within a second: the same computation
    clock.advance(0.5)
    fresh = await engine.metrics(WINDOW_S, ALERT_AFTER_S, cache_ms=1000)
    assert fresh.department("general").waiting == 1
