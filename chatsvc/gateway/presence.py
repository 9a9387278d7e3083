"""This gateway's part in presence: its lease, its users' connections, its doctors' heartbeats.

Presence itself lives in Redis (triage.presence): per (user, gateway) under each gateway's
lease. This module keeps this gateway's lease renewed, reports each connection it opens and
closes, reaps the leases of dead gateways, and renews the presence of the doctors connected
here (a doctor whose last connection anywhere is gone stops being renewed and, after the
grace period, lapses: their patients go back to the queue).

Each time the Redis link comes back up, the gateway first asks for a hold (no timer fires, no
lease is reaped meanwhile), then restates the connections it holds and renews its doctors: an
outage never requeues everyone at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter

import structlog
from redis.exceptions import RedisError

from chatsvc.gateway.cancellation import stop_if_cancelled
from chatsvc.gateway.hub import Conn, Hub
from chatsvc.gateway.redis_link import RedisLink
from chatsvc.tokens import Role
from triage.errors import Refused, TriageError
from triage.presence import Presence as PresenceBook

log = structlog.get_logger(__name__)

# A gateway's lease: its users count as gone this long after it dies (plus one reap round).
LEASE_TTL_S = 10.0
# Lease renewals and reaps per lease period: two may fail before the lease lapses.
RENEWALS_PER_LEASE = 3
# Doctors' presence renewals per presence ttl.
RENEWALS_PER_TTL = 3
# The gateway restates all its connections this often even without an outage: a count that a
# client-side retry of a lost reply applied twice is repaired within this time.
RESTATE_EVERY_S = 30.0


class GatewayPresence:
    def __init__(self, hub: Hub, link: RedisLink, max_connections_per_user: int) -> None:
        self.gateway_id = uuid.uuid4().hex[:12]
        self._hub = hub
        self._link = link
        self._max = max_connections_per_user
        self._book = PresenceBook(link.client, link.scripts, link.rules)
        self._generation = 0
        # Counting a connection and restating all of them must not interleave: a restate
        # built before a +1 and written after it would wipe it out.
        self._lock = asyncio.Lock()
        self._last_restate = 0.0

    async def connect(self, conn: Conn) -> None:
        """Count the connection. Raises TooManyConnections over the user's limit."""
        async with self._lock:
            await self._ensure_asserted()
            await self._book.connect(self.gateway_id, conn.user_id, conn.role.value, self._max)
            conn.counted = True

    async def disconnect(self, conn: Conn) -> None:
        async with self._lock:
            if not conn.counted:
                return
            conn.counted = False
            with contextlib.suppress(RedisError, OSError, Refused):
                await self._book.disconnect(self.gateway_id, conn.user_id, conn.role.value)

    async def run(self) -> None:
        lease_every = LEASE_TTL_S / RENEWALS_PER_LEASE
        heartbeat_every = self._link.rules.presence_ttl_s / RENEWALS_PER_TTL
        loop = asyncio.get_running_loop()
        last_heartbeat = 0.0
        while True:
            stop_if_cancelled()
            await self._link.wait_ready()
            try:
                async with self._lock:
                    if loop.time() - self._last_restate >= RESTATE_EVERY_S:
                        self._generation = -1  # restate: repairs any count a retry doubled
                    await self._ensure_asserted()
                await self._book.lease(self.gateway_id, LEASE_TTL_S)
                reaped = await self._book.reap()
                if reaped:
                    log.warning("gateways_reaped", gateways=list(reaped))
                if loop.time() - last_heartbeat >= heartbeat_every:
                    last_heartbeat = loop.time()
                    await self.renew_doctors()
            except (RedisError, OSError, TriageError) as error:
                stop_if_cancelled()
                log.warning("presence_renewal_failed", error=str(error)[:200])
            except Exception:  # a bug: log it, keep the lease alive
                log.exception("presence_renewal_crashed")
            stop_if_cancelled()  # a Redis call may have swallowed a cancellation
            await asyncio.sleep(min(lease_every, heartbeat_every))

    async def _ensure_asserted(self) -> None:
        """After each (re)connection to Redis: hold the timers, restate what this gateway
        holds, renew its doctors."""
        if self._generation == self._link.generation:
            return
        # The first connection is a start, not a recovery: nothing was missed, hold nothing.
        # (The Redis link itself holds timers when it comes back; this is belt and braces.)
        recovering = self._generation > 0
        await self._book.lease(
            self.gateway_id, LEASE_TTL_S, hold_s=LEASE_TTL_S if recovering else 0
        )
        held = Counter(
            (conn.role.value, conn.user_id) for conn in self._hub.all_conns() if conn.counted
        )
        await self._book.reassert(self.gateway_id, dict(held))
        await self.renew_doctors()
        # Only now: if any step failed, the next call tries the whole restatement again.
        self._generation = self._link.generation
        self._last_restate = asyncio.get_running_loop().time()
        log.info("presence_asserted", gateway=self.gateway_id, users=len(held))

    async def renew_doctors(self) -> None:
        doctors = {conn.user_id for conn in self._hub.all_conns() if conn.role is Role.DOCTOR}
        for doctor in sorted(doctors):
            with contextlib.suppress(Refused):  # offline: they must set a status again
                await self._link.engine.heartbeat(doctor)
