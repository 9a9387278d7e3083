"""A department's load at a glance, for doctors' consoles and supervisors: how many wait, the
longest wait, and how many waiting intakes raised a red flag. Three O(1)/O(log n) reads of
indexes the scripts keep in step with the queue, so it is cheap enough to read every second.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from triage import keys


@dataclass(frozen=True)
class Load:
    department: str
    waiting: int
    longest_wait_ms: int  # 0 when nobody waits
    red_flags_waiting: int


async def department_load(client: Redis, department: str, now_ms: int) -> Load:
    async with client.pipeline(transaction=True) as pipe:
        pipe.zcard(keys.queue(department))
        pipe.zrange(keys.waiting_since(department), 0, 0, withscores=True)
        pipe.scard(keys.flagged_waiting(department))
        waiting, oldest, flagged = await pipe.execute()
    longest = max(0, now_ms - int(oldest[0][1])) if oldest else 0
    return Load(department, int(waiting), longest, int(flagged))


async def redis_now_ms(client: Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000
