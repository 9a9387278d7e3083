"""The key layout is ready for Redis Cluster: every script call's KEYS hash to one slot, and the
Lua key builders name exactly the keys `triage/keys.py` names."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.cluster import key_slot

from tests.triage.conftest import OnDuty, intake
from triage import keys
from triage.engine import Engine, ManualClock
from triage.models import Urgency
from triage.presence import Presence
from triage.scripts import library_source, loadable_source, script_names
from triage.transcripts import Transcripts


async def test_every_script_call_touches_one_slot(
    engine: Engine,
    clock: ManualClock,
    on_duty: OnDuty,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: defaultdict[str, set[int]] = defaultdict(set)
    # Every script call is an EVALSHA on the client, whichever wrapper sends it.
    names = {hashlib.sha1(loadable_source(n).encode()).hexdigest(): n for n in script_names()}
    original = Redis.evalsha

    # Not a coroutine: a pipeline's evalsha (the transcripts' batcher) queues and returns.
    def recording(self: Redis, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        seen[names[sha]].update(key_slot(str(k).encode()) for k in keys_and_args[:numkeys])
        return original(self, sha, numkeys, *keys_and_args)

    monkeypatch.setattr(Redis, "evalsha", recording)
    await on_duty("d1", ("general", "psych"), capacity=3)
    await on_duty("d2", ("general",))
    await engine.heartbeat("d1")
    await engine.quote("general")
    joined = await engine.enqueue("p1", "general", intake(), clock.now_ms)
    await engine.position(joined.ticket_id)
    await engine.ticket_presence(joined.ticket_id, connected=True)
    await engine.enqueue("p2", "general", intake(), clock.now_ms)
    await engine.reprioritise("t000000000002", Urgency.URGENT, "x")
    offered = await engine.enqueue("p3", "psych", intake(), clock.now_ms)
    await engine.accept("d1", offered.offers[0].consultation_id)
    await engine.assign("psych")
    match = await engine.take_next("d1")
    await engine.transfer("d1", match.consultation_id, to_department="general")
    again = await engine.take_next("d2")
    await engine.requeue(again.consultation_id)
    await on_duty("d2", ("general",))
    again = await engine.take_next("d2")
    await engine.patient_left(offered.offers[0].consultation_id)
    await engine.enqueue("p4", "paeds", intake(), clock.now_ms)
    await engine.cancel("p4")
    transcripts = Transcripts(redis, engine._scripts, max_body_chars=100)  # noqa: SLF001
    await transcripts.open(again.consultation_id, {"p1": "patient", "d2": "doctor"})
    await transcripts.append(again.consultation_id, "p1", "m1", "text", "hello")
    await transcripts.mark_read(again.consultation_id, "d2", 1)
    await transcripts.mark_delivered(again.consultation_id, "p1", 1)
    await transcripts.close(again.consultation_id, 60)
    await engine.end("d2", again.consultation_id, "")
    await engine.fire_timers()
    presence = Presence(redis, engine._scripts, engine.rules, clock)  # noqa: SLF001
    await presence.lease("g1", 10)
    await presence.connect("g1", "p9", "patient")
    await presence.disconnect("g1", "p9", "patient")
    await presence.reassert("g1", {("doctor", "d1"): 2})
    await presence.reap()
    waiting = await engine.enqueue("p5", "general", intake(), clock.now_ms)
    await engine.note_quote(waiting.ticket_id, 60)
    await engine.metrics(900, 120, cache_ms=0)

    assert set(seen) == set(script_names()) - {"desk_init"}, "a script was not exercised"
    for name, slots in seen.items():
        if name.startswith("transcript_"):
            assert len(slots) == 1, name  # one consultation here: one slot
        else:
            assert slots == {key_slot(keys.desk_meta().encode())}, name


# Desk keys in the order the Lua probe below builds them.
DESK_KEYS = [
    keys.queue("general"),
    keys.ticket("t1"),
    keys.patient("p"),
    keys.doctor("d"),
    keys.doctor_consultations("d"),
    keys.available("general"),
    keys.serving("general"),
    keys.consultation("c"),
    keys.timers(),
    keys.events(),
    keys.stats("general"),
    keys.matches("general"),
    keys.departments(),
]


def test_desk_keys_share_the_desk_slot_and_transcript_keys_their_own() -> None:
    desk_slot = key_slot(keys.desk_meta().encode())
    desk_keys = [*DESK_KEYS, keys.idempotency("r"), keys.surge("general")]
    assert {key_slot(k.encode()) for k in desk_keys} == {desk_slot}
    transcript = [
        keys.transcript_stream("c1"),
        keys.transcript_meta("c1"),
        keys.transcript_dedup("c1"),
    ]
    assert len({key_slot(k.encode()) for k in transcript}) == 1
    spread = {key_slot(keys.transcript_stream(f"c{i}").encode()) for i in range(50)}
    assert len(spread) > 40, "transcripts should spread across slots"


async def test_lua_key_builders_match_keys_py(redis: Redis) -> None:
    probe = (
        library_source()
        + """
local P = desk_prefix(KEYS[1])
return {dk(P, 'queue', 'general'), dk(P, 'ticket', 't1'), dk(P, 'patient', 'p'),
  dk(P, 'doctor', 'd'), dk(P, 'doctor', 'd', 'consultations'), dk(P, 'available', 'general'),
  dk(P, 'serving', 'general'), dk(P, 'consultation', 'c'), dk(P, 'timers'), dk(P, 'events'),
  dk(P, 'stats', 'general'), dk(P, 'matches', 'general'), dk(P, 'departments')}
"""
    )
    built = await redis.eval(probe, 1, keys.desk_meta())
    assert built == DESK_KEYS
