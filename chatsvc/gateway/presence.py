"""Doctors' presence: while a doctor has a connection on this gateway, renew it in the desk.

The triage engine takes a doctor offline when nobody renews their presence for
`[triage] presence_ttl_s` (their patients go back to the queue at their places). Each gateway
renews, every third of that, the doctors connected to it, so a doctor stays present as long as
any of their connections lives anywhere, and a dead gateway stops vouching for its doctors.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.exceptions import RedisError

from chatsvc.gateway.cancellation import stop_if_cancelled
from chatsvc.gateway.context import GatewayContext
from chatsvc.tokens import Role
from triage.errors import Refused

log = structlog.get_logger(__name__)

# Renewals per presence period: two may be lost or late before a doctor lapses.
RENEWALS_PER_TTL = 3


class Presence:
    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx

    async def run(self) -> None:
        interval = self._ctx.link.engine.rules.presence_ttl_s / RENEWALS_PER_TTL
        while True:
            stop_if_cancelled()
            await asyncio.sleep(interval)
            await self._ctx.link.wait_ready()
            try:
                await self.renew_all()
            except (RedisError, OSError) as error:
                stop_if_cancelled()
                log.warning("presence_renewal_failed", error=str(error)[:200])

    async def renew_all(self) -> None:
        doctors = {conn.user_id for conn in self._ctx.hub.all_conns() if conn.role is Role.DOCTOR}
        for doctor in sorted(doctors):
            with contextlib.suppress(Refused):  # offline: they must set a status again
                await self._ctx.link.engine.heartbeat(doctor)
