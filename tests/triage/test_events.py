"""The event stream: complete and ordered, and trimmed only behind every consumer group."""

from __future__ import annotations

from redis.asyncio import Redis

from tests.triage.conftest import START_MS, Join, OnDuty
from triage import events, keys
from triage.engine import Engine


async def test_each_change_is_one_event_in_commit_order(
    join: Join, on_duty: OnDuty, engine: Engine, redis: Redis
) -> None:
    start = await events.last_id(redis)
    await join("p1", symptoms="chest pain")
    await on_duty("d1")
    match = await engine.take_next("d1")
    await engine.end("d1", match.consultation_id, "ok")
    seen = await events.read(redis, after=start)
    assert [e.type for e in seen] == ["enqueued", "doctor_status", "assigned", "ended"]
    enqueued, _, assigned, ended = seen
    assert enqueued.data["patient"] == "p1" and enqueued.data["urgency"] == "emergency"
    assert assigned.data["consultation"] == match.consultation_id
    assert assigned.data["doctor"] == "d1"
    assert ended.data["outcome"] == "completed"
    assert "symptoms" not in enqueued.data  # health data stays on the ticket, not in events


async def test_a_follower_blocks_until_the_next_event(join: Join, redis: Redis) -> None:
    start = await events.last_id(redis)
    assert await events.read(redis, after=start, block_ms=50) == []
    await join("p1")
    [event] = await events.read(redis, after=start, block_ms=1000)
    assert event.type == "enqueued"


async def test_trim_keeps_what_a_group_has_not_processed(join: Join, redis: Redis) -> None:
    for i in range(6):
        await join(f"p{i}")
    await events.ensure_group(redis, "archiver")
    first_three = await events.read_group(redis, "archiver", "a1", count=3)
    await events.ack(redis, "archiver", *(e.id for e in first_three[:2]))
    far_future = START_MS + 10**12  # everything is "old"; only the group holds events back
    removed = await events.trim(redis, now_ms=far_future, keep_s=0)
    assert removed == 2  # the third was read but not acknowledged
    remaining = await redis.xrange(keys.events())
    assert remaining[0][0] == first_three[2].id
    reclaimed = await events.reclaim(redis, "archiver", "a2", idle_ms=0)
    assert [e.id for e in reclaimed] == [first_three[2].id]
    await events.ack(redis, "archiver", first_three[2].id)
    rest = await events.read_group(redis, "archiver", "a2")
    await events.ack(redis, "archiver", *(e.id for e in rest))
    assert await events.trim(redis, now_ms=far_future, keep_s=0) == 4
    assert await redis.xlen(keys.events()) == 0


async def test_without_groups_trim_keeps_recent_events(join: Join, redis: Redis) -> None:
    await join("p1")
    newest = await events.last_id(redis)
    now = int(newest.split("-")[0])
    assert await events.trim(redis, now_ms=now, keep_s=60) == 0
    assert await events.trim(redis, now_ms=now + 61_000, keep_s=60) == 1
