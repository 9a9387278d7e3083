"""The script batcher: calls of one event-loop turn go as one pipeline, each with its own
reply or error, in the order they were made."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from triage.batching import MAX_BATCH, ScriptBatcher
from triage.scripts import Scripts
from triage.transcripts import TranscriptNotOpen, Transcripts

PARTICIPANTS = {"p1": "patient", "d1": "doctor"}


async def evalsha_calls(redis: Redis) -> int:
    """How many EVALSHA commands this Redis has run."""
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_calls_of_one_turn_keep_their_order_and_each_gets_its_reply(redis: Redis) -> None:
    transcripts = Transcripts(redis, Scripts(redis), max_body_chars=100)
    await transcripts.open("c1", PARTICIPANTS)
    # Made in one turn (gather starts every coroutine before any awaits Redis): one batch,
    # more than one pipeline holds.
    count = 2 * MAX_BATCH + 7
    stored = await asyncio.gather(
        *(transcripts.append("c1", "p1", f"m{n}", "text", f"message {n}") for n in range(count))
    )
    assert [s.seq for s in stored] == list(range(1, count + 1))
    entries = (await transcripts.read("c1", limit=count)).entries
    assert [e.client_msg_id for e in entries] == [f"m{n}" for n in range(count)]


async def test_a_refused_call_fails_alone(redis: Redis) -> None:
    transcripts = Transcripts(redis, Scripts(redis), max_body_chars=100)
    await transcripts.open("c1", PARTICIPANTS)
    outcomes = await asyncio.gather(
        transcripts.append("c1", "p1", "a", "text", "first"),
        transcripts.append("never-opened", "p1", "b", "text", "lost?"),
        transcripts.append("c1", "d1", "c", "text", "third"),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], TranscriptNotOpen)
    assert [o.seq for o in (outcomes[0], outcomes[2])] == [1, 2]  # type: ignore[union-attr]


async def test_a_batch_after_redis_lost_its_scripts_loads_them_and_keeps_the_order(
    redis: Redis,
) -> None:
    transcripts = Transcripts(redis, Scripts(redis), max_body_chars=100)
    await transcripts.open("c1", PARTICIPANTS)
    await redis.script_flush()  # what a Redis restart without persistence of scripts does
    stored = await asyncio.gather(
        *(transcripts.append("c1", "p1", f"m{n}", "text", "after a restart") for n in range(10))
    )
    assert [s.seq for s in stored] == list(range(1, 11))
    entries = (await transcripts.read("c1")).entries
    assert [e.client_msg_id for e in entries] == [f"m{n}" for n in range(10)]


async def test_more_calls_than_one_pipeline_holds_all_get_their_replies(redis: Redis) -> None:
    scripts = Scripts(redis)
    await scripts.load_all()
    batcher = ScriptBatcher(redis, scripts)
    before = await evalsha_calls(redis)
    calls = 2 * MAX_BATCH + 7
    replies = await asyncio.gather(
        *(
            batcher.run("transcript_open", ["{c:x}:m", "{c:x}:s", "{c:x}:d"], ["", "{}"])
            for _ in range(calls)
        )
    )
    assert len(replies) == calls and all(r[0] == "ok" for r in replies)  # type: ignore[index]
    assert await evalsha_calls(redis) - before == calls


async def test_a_lost_connection_fails_every_call_of_the_batch(tmp_path: Path) -> None:
    nowhere = Redis(unix_socket_path=str(tmp_path / "no.sock"), socket_connect_timeout=1)
    try:
        transcripts = Transcripts(nowhere, Scripts(nowhere), max_body_chars=100)
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(transcripts.append("c1", "p1", f"m{n}", "text", "x") for n in range(5)),
                return_exceptions=True,
            ),
            timeout=30,
        )
    finally:
        await nowhere.aclose()
    assert all(isinstance(o, (RedisConnectionError, OSError)) for o in outcomes), outcomes


@pytest.mark.parametrize("cancel_first", [True, False])
async def test_a_caller_who_gives_up_does_not_disturb_the_others(
    redis: Redis, cancel_first: bool
) -> None:
    transcripts = Transcripts(redis, Scripts(redis), max_body_chars=100)
    await transcripts.open("c1", PARTICIPANTS)
    calls = [
        asyncio.ensure_future(transcripts.append("c1", "p1", f"m{n}", "text", "x"))
        for n in range(4)
    ]
    calls[0 if cancel_first else 3].cancel()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    kept = [o for o in outcomes if not isinstance(o, asyncio.CancelledError)]
    assert len(kept) == 3 and all(not isinstance(o, BaseException) for o in kept)
    # The cancelled call may or may not have been stored (it was queued already); the
    # others were, each once, in order.
    entries = (await transcripts.read("c1")).entries
    ids = [e.client_msg_id for e in entries]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {f"m{n}" for n in range(4)} - set(ids) <= {"m0" if cancel_first else "m3"}
