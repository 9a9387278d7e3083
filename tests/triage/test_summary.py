"""A department's load (waiting, longest wait, red flags waiting) and the indexes behind it,
which every script that changes a queue keeps in step with it."""

from __future__ import annotations

from redis.asyncio import Redis

from tests.triage.conftest import Join, OnDuty
from triage import audit, keys, views
from triage.engine import Engine, ManualClock
from triage.summary import department_load


async def assert_indexes_match_queues(redis: Redis, engine: Engine) -> None:
    for department in engine.rules.departments:
        waiting = set(await redis.zrange(keys.queue(department.id), 0, -1))
        since = set(await redis.zrange(keys.waiting_since(department.id), 0, -1))
        flagged = set(await redis.smembers(keys.flagged_waiting(department.id)))
        assert since == waiting, department.id
        expected_flagged = {t for t in waiting if (await engine.ticket(t)).red_flags}
        assert flagged == expected_flagged, department.id


async def test_load_counts_waiting_longest_wait_and_red_flags(
    engine: Engine, clock: ManualClock, join: Join, redis: Redis
) -> None:
    empty = await department_load(redis, "general", clock.now_ms)
    assert (empty.waiting, empty.longest_wait_ms, empty.red_flags_waiting) == (0, 0, 0)

    await join("p1", symptoms="cough")
    clock.advance(60)
    await join("p2", symptoms="sudden chest pain")  # emergency: first in the queue
    clock.advance(30)
    load = await department_load(redis, "general", clock.now_ms)
    assert (load.waiting, load.longest_wait_ms, load.red_flags_waiting) == (2, 90_000, 1)
    await assert_indexes_match_queues(redis, engine)


async def test_indexes_follow_every_way_out_of_and_back_into_a_queue(
    engine: Engine, clock: ManualClock, join: Join, on_duty: OnDuty, redis: Redis
) -> None:
    await on_duty("d1", ("general",), capacity=3)
    await on_duty("d2", ("paeds",), capacity=3)
    await join("p1", symptoms="chest pain")
    await join("p2", symptoms="cough")
    await join("p3", symptoms="high fever")
    await join("p4", symptoms="rash")
    await assert_indexes_match_queues(redis, engine)

    match = await engine.take_next("d1")  # p1, the emergency
    await assert_indexes_match_queues(redis, engine)
    await engine.transfer("d1", match.consultation_id, to_department="paeds")
    await assert_indexes_match_queues(redis, engine)
    assert await redis.sismember(keys.flagged_waiting("paeds"), match.ticket_id)
    await engine.cancel("p4")
    await assert_indexes_match_queues(redis, engine)
    again = await engine.take_next("d2")
    await engine.requeue(again.consultation_id)
    await assert_indexes_match_queues(redis, engine)
    await engine.patient_left(again.consultation_id)
    await assert_indexes_match_queues(redis, engine)
    load = await department_load(redis, "general", clock.now_ms)
    assert (load.waiting, load.red_flags_waiting) == (2, 1)  # p2 and p3 (high fever)


async def test_a_patients_consultations_are_listed_newest_first(
    engine: Engine, clock: ManualClock, join: Join, on_duty: OnDuty, redis: Redis
) -> None:
    await on_duty("d1", ("general",), capacity=3)
    await join("p1")
    first = await engine.take_next("d1")
    await engine.end("d1", first.consultation_id, "fine")
    clock.advance(10)
    await join("p1")
    second = await engine.take_next("d1")

    assert await views.patient_consultations(redis, "p1") == [
        second.consultation_id,
        first.consultation_id,
    ]
    assert await views.doctor_consultations(redis, "d1") == (second.consultation_id,)
    assert (await views.open_case(redis, "p1")).consultation_id == second.consultation_id
    assert await views.doctor_names(redis, ["d1", "nobody"]) == {"d1": "Dr d1", "nobody": ""}
    assert await views.live_consultations(redis, "general") == (second.consultation_id,)
    ttl = await redis.ttl(keys.patient_consultations("p1"))
    assert ttl > 0  # set when a consultation ends: kept as long as the records it lists


async def test_the_audit_lists_newest_first_and_pages_back(redis: Redis) -> None:
    ids = [await audit.record(redis, f"d{n}", "doctor", "read_transcript", "c1") for n in range(5)]
    newest = await audit.newest(redis, limit=2)
    assert [entry.user for entry in newest] == ["d4", "d3"]
    older = await audit.newest(redis, limit=10, before=newest[-1].id)
    assert [entry.user for entry in older] == ["d2", "d1", "d0"]
    assert [entry.id for entry in older] == ids[2::-1]
    assert all(entry.ts_ms == int(entry.id.split("-")[0]) for entry in older)
