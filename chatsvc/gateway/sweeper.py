"""The sweeper: every gateway fires the desk's due timers and tidies the event stream.

Timers live in Redis, not in any process, so a deadline set by a gateway that has since died
still fires: every gateway runs this loop, and the scripts re-check state when they fire, so
two gateways sweeping at once fire each timer exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import structlog
from redis.exceptions import RedisError

from chatsvc.gateway.cancellation import stop_if_cancelled
from chatsvc.gateway.redis_link import RedisLink
from triage import events
from triage.models import Routing

log = structlog.get_logger(__name__)

# A deadline (accept timeout, presence lapse, patient grace) fires at most this late.
TIMER_INTERVAL_S = 0.25
# Push departments are offered waiting patients by every transition already; this catches a
# configuration change that made a department push while patients waited.
ASSIGN_INTERVAL_S = 5.0
# Trimming reads every consumer group's position: cheap, but no need to do it often.
TRIM_INTERVAL_S = 60.0
# At most this many timers fire per script call, so one sweep never blocks Redis for long.
TIMERS_PER_CALL = 200


class Sweeper:
    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._last_assign = 0.0
        self._last_trim = 0.0

    async def run(self) -> None:
        """Runs until cancelled; survives Redis outages (the link reconnects)."""
        while True:
            stop_if_cancelled()
            await self._link.wait_ready()
            try:
                await self.sweep_once()
            except (RedisError, OSError) as error:
                stop_if_cancelled()
                log.warning("sweep_failed", error=str(error).splitlines()[0][:200])
            await asyncio.sleep(TIMER_INTERVAL_S)

    async def sweep_once(self) -> None:
        engine = self._link.engine
        fired = await engine.fire_timers(TIMERS_PER_CALL)
        if fired:
            kinds = Counter(member.split("|", 1)[0] for member in fired)
            log.info("timers_fired", **{f"{kind}": n for kind, n in kinds.items()})
        now = time.monotonic()
        if now - self._last_assign >= ASSIGN_INTERVAL_S:
            self._last_assign = now
            for department in engine.rules.departments:
                if department.routing is Routing.PUSH:
                    await engine.assign(department.id)
        if now - self._last_trim >= TRIM_INTERVAL_S:
            self._last_trim = now
            seconds, micros = await self._link.client.time()
            removed = await events.trim(self._link.client, seconds * 1000 + micros // 1000)
            if removed:
                log.info("events_trimmed", removed=removed)
            removed = await engine.trim_matches()
            if removed:
                log.info("matches_trimmed", removed=removed)
