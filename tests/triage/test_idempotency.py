"""Lost replies: every mutating call replayed with its request id returns the first result and
changes nothing, so a retry can never make a second consultation or a second match."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.triage.conftest import OnDuty, intake
from triage import errors, keys
from triage.engine import Engine, ManualClock
from triage.models import DoctorStatus, Urgency


async def _snapshot(redis: Redis) -> dict[str, object]:
    """Every desk key's value, except the replay records themselves."""
    state: dict[str, object] = {}
    async for key in redis.scan_iter(match="chatsvc:*"):
        if ":idem:" in key:
            continue
        kind = await redis.type(key)
        if kind == "hash":
            state[key] = await redis.hgetall(key)
        elif kind == "zset":
            state[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            state[key] = sorted(await redis.smembers(key))
        elif kind == "stream":
            state[key] = await redis.xlen(key)
        else:
            state[key] = await redis.get(key)
    return state


async def test_every_mutation_replays_its_first_result(
    engine: Engine, clock: ManualClock, on_duty: OnDuty, redis: Redis
) -> None:
    calls = [
        (
            "status",
            lambda: engine.set_status("d1", DoctorStatus.AVAILABLE, "Dr", ["general"], 2, "r1"),
        ),
        (
            "status2",
            lambda: engine.set_status("d2", DoctorStatus.AVAILABLE, "Dr", ["general"], 2, "r2"),
        ),
        ("join", lambda: engine.enqueue("p1", "general", intake(), clock.now_ms, "r3")),
        ("join2", lambda: engine.enqueue("p2", "general", intake(), clock.now_ms, "r4")),
        ("join3", lambda: engine.enqueue("p3", "general", intake(), clock.now_ms, "r5")),
        ("raise", lambda: engine.reprioritise("t000000000003", Urgency.URGENT, "why", "r6")),
        ("take", lambda: engine.take_next("d1", "r7")),
        ("cancel", lambda: engine.cancel("p1", "r8")),
    ]
    results: dict[str, object] = {}
    for name, call in calls:
        first = await call()
        before = await _snapshot(redis)
        assert await call() == first, name  # the reply was "lost"; the caller retries
        assert await _snapshot(redis) == before, f"{name} changed state on replay"
        results[name] = first
    take = results["take"]
    consultation = take.consultation_id  # type: ignore[attr-defined]
    more = [
        ("transfer", lambda: engine.transfer("d1", consultation, to_doctor="d2", request_id="r9")),
        ("accept", lambda: engine.accept("d2", consultation, "r10")),
        ("requeue", lambda: engine.requeue(consultation, "r11")),
        (
            "back",
            lambda: engine.set_status("d2", DoctorStatus.AVAILABLE, "Dr", ["general"], 2, "r14"),
        ),
        ("take again", lambda: engine.take_next("d2", "r12")),
        ("end", lambda: engine.end("d2", consultation, "summary", "r13")),
    ]
    for name, call in more:
        first = await call()
        before = await _snapshot(redis)
        assert await call() == first, name
        assert await _snapshot(redis) == before, f"{name} changed state on replay"
    stats = await engine.stats("general")
    assert stats["matched"] == 1 and stats["ended"] == 1


async def test_a_replayed_refusal_is_refused_again_without_change(
    engine: Engine, on_duty: OnDuty, redis: Redis
) -> None:
    await on_duty("d1")
    with pytest.raises(errors.QueueEmpty):
        await engine.take_next("d1", "same")
    await engine.enqueue("p1", "general", intake(), 1, "join")
    with pytest.raises(errors.QueueEmpty):  # the first answer stands for this request id
        await engine.take_next("d1", "same")
    assert await redis.zcard(keys.queue("general")) == 1
    assert (await engine.take_next("d1", "fresh")).patient_id == "p1"


async def test_retried_take_next_never_makes_a_second_match(
    engine: Engine, on_duty: OnDuty, clock: ManualClock
) -> None:
    await engine.enqueue("p1", "general", intake(), clock.now_ms)
    await engine.enqueue("p2", "general", intake(), clock.now_ms)
    await on_duty("d1", capacity=5)
    first = await engine.take_next("d1", "lost-reply")
    for _ in range(5):
        assert await engine.take_next("d1", "lost-reply") == first
    doctor = await engine.doctor("d1")
    assert doctor is not None and doctor.active == 1
    assert await engine.waiting("general") == ("t000000000002",)
