"""Script loading and the desk stamp, on real Redis."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis

from tests.triage.conftest import intake
from triage import keys
from triage.desk import SCHEMA_VERSION, init_desk
from triage.engine import Engine, ManualClock
from triage.errors import SchemaMismatch
from triage.scripts import Scripts, script_names, script_source
from triage.server import read_server_info


def test_every_lua_file_is_a_script_with_a_contract_header() -> None:
    names = script_names()
    assert "desk_init" in names
    for name in names:
        source = script_source(name)
        assert source.startswith(f"-- {name}:"), f"{name}.lua must open with its contract"


def test_every_script_names_its_keys_and_args_as_locals_first() -> None:
    for name in script_names():
        code = [line for line in script_source(name).splitlines() if not line.startswith("--")]
        uses = set(re.findall(r"(KEYS|ARGV)\[\d+\]", "\n".join(code)))
        for line in code:
            if re.search(r"(KEYS|ARGV)\[\d+\]", line):
                assert line.startswith("local "), f"{name}.lua: {line!r} reads KEYS/ARGV inline"
        assert uses <= {"KEYS", "ARGV"}


async def test_scripts_load_and_are_found_by_sha(redis: Redis) -> None:
    scripts = Scripts(redis)
    assert not await scripts.all_loaded()
    await scripts.load_all()
    assert await scripts.all_loaded()
    assert len(scripts) == len(script_names())


async def test_desk_is_stamped_once_and_keeps_its_creation_time(redis: Redis) -> None:
    scripts = Scripts(redis)
    first = await init_desk(redis, scripts)
    assert first.schema_version == SCHEMA_VERSION
    server_time_ms = (await redis.time())[0] * 1000
    assert abs(first.created_ms - server_time_ms) < 5000
    again = await init_desk(redis, scripts)
    assert again == first


async def test_a_desk_from_a_newer_schema_is_refused(redis: Redis) -> None:
    await redis.hset(
        keys.desk_meta(), mapping={"schema_version": SCHEMA_VERSION + 1, "created_ms": 7}
    )
    with pytest.raises(SchemaMismatch) as caught:
        await init_desk(redis, Scripts(redis))
    assert caught.value.stored == SCHEMA_VERSION + 1
    assert await redis.hget(keys.desk_meta(), "created_ms") == "7"


async def test_server_info_reads_version_and_eviction_policy(redis: Redis) -> None:
    info = await read_server_info(redis)
    assert info.version >= (6, 2, 0)
    assert info.maxmemory_policy == "noeviction"
    assert info.has_sharded_pubsub == (info.version >= (7, 0, 0))


async def test_a_call_after_redis_lost_its_scripts_loads_the_script_and_runs(
    engine: Engine, clock: ManualClock, redis: Redis
) -> None:
    await redis.script_flush()  # as a Redis restart leaves its script cache
    joined = await engine.enqueue("p1", "general", intake(), clock.now_ms)
    assert joined.ticket_id == "t000000000001"
    assert await engine.waiting("general") == (joined.ticket_id,)
    assert await Scripts(redis).all_loaded() is False  # only the script called was loaded
