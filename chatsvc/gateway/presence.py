"""This gateway's part in presence: its lease, its users' connections, its doctors' heartbeats.

Presence itself lives in Redis (triage.presence): per (user, gateway) under each gateway's
lease. This module keeps this gateway's lease renewed, reports each connection it opens and
closes, reaps the leases of dead gateways, and renews the presence of the doctors connected
here (a doctor whose last connection anywhere is gone stops being renewed and, after the
grace period, lapses: their patients go back to the queue).

Each time the Redis link comes back up, the gateway first asks for a hold (no timer fires, no
lease is reaped meanwhile), then restates the connections it holds and renews its doctors: an
outage never requeues everyone at once.

Connections opened and closed are counted in batches: each change waits in a queue, and one
flusher at a time sends every change waiting to `presence_update` in one script run, so a
thousand connects a second cost a few round trips and fsyncs rather than a thousand (the
changes of a batch are applied in the order they came). In a surge (changes came while the last
batch was counted) the next batch waits a few ms for more; a change that finds the flusher idle
goes at once. A batch and a restatement never
interleave (one lock): a restatement built before a +1 and written after it would wipe the +1
out. A patient's +1 also brings back their open ticket and consultation, read in the same run,
so restoring their state needs no read of its own.
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
from triage.errors import Refused, TriageError, refusal
from triage.presence import Change, Counted
from triage.presence import Presence as PresenceBook
from triage.views import OpenCase

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
# Changes counted in one presence_update run at most: a script run blocks Redis, keep it short.
BATCH_MAX = 256
# When changes came while a batch was being counted (a surge of connects), the next batch waits
# this long for more before it goes: a script run costs the gateway ~0.3 ms of CPU however few
# changes it carries, and without the wait a surge of 1,000 connects/s went as batches of ~4.
# A change that finds the flusher idle goes at once.
SURGE_WAIT_S = 0.005


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
        # Changes waiting for the flusher: the connection, +1 or -1, who waits for the outcome.
        self._pending: list[tuple[Conn, int, asyncio.Future[Counted | None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def connect(self, conn: Conn) -> OpenCase | None:
        """Count the connection; for a patient, returns where they stand (read with the count).
        Raises TooManyConnections over the user's limit, RedisError or OSError when the count
        could not be made."""
        counted = await self._submit(conn, 1)
        assert counted is not None
        if counted.refused:
            raise refusal(counted.refused, str(counted.live))
        return counted.case

    async def disconnect(self, conn: Conn) -> None:
        """Count the connection closed, if it was counted. Never raises: a count left behind
        is repaired by the next restatement."""
        await self._submit(conn, -1)

    def _submit(self, conn: Conn, delta: int) -> asyncio.Future[Counted | None]:
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Counted | None] = loop.create_future()
        self._pending.append((conn, delta, outcome))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name="presence-flush")
        return outcome

    async def _flush(self) -> None:
        """Count what waits, a batch at a time, until nothing does."""
        batch: list[tuple[Conn, int, asyncio.Future[Counted | None]]] = []
        surge = False
        try:
            while self._pending:
                if surge and len(self._pending) < BATCH_MAX:
                    await asyncio.sleep(SURGE_WAIT_S)
                surge = True  # whatever waits after this batch came while it was counted
                batch = self._next_batch()
                try:
                    async with self._lock:
                        await self._ensure_asserted()
                        await self._count(batch)
                except (RedisError, OSError, TriageError) as error:
                    _settle(batch, error)
                except Exception:  # a bug: these connections are refused, not hung
                    log.exception("presence_flush_crashed")
                    # As a failed count: each opening is told the desk is unreachable (1013,
                    # the client retries), not handed an exception its handler cannot place.
                    _settle(batch, ConnectionError("presence could not be counted"))
        except asyncio.CancelledError:  # nobody is left waiting for an answer
            _settle(batch + self._pending, ConnectionError("gateway stopping"))
            self._pending = []
            raise

    def _next_batch(self) -> list[tuple[Conn, int, asyncio.Future[Counted | None]]]:
        """The oldest changes, up to BATCH_MAX, stopping before the close of a connection whose
        opening is in the batch (whether that one counts is not known yet)."""
        opening: set[int] = set()
        taken = 0
        for conn, delta, _ in self._pending[:BATCH_MAX]:
            if delta < 0 and id(conn) in opening:
                break
            if delta > 0:
                opening.add(id(conn))
            taken += 1
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        return batch

    async def _count(self, batch: list[tuple[Conn, int, asyncio.Future[Counted | None]]]) -> None:
        """One presence_update run for the batch; the lock is held."""
        sent: list[tuple[Conn, int, asyncio.Future[Counted | None]]] = []
        changes: list[Change] = []
        for conn, delta, outcome in batch:
            if delta < 0:
                if not conn.counted:
                    _resolve(outcome, None)  # refused or never counted: nothing to take back
                    continue
                conn.counted = False  # a failed -1 is left to the next restatement
            sent.append((conn, delta, outcome))
            changes.append(Change(conn.user_id, conn.role.value, delta))
        if not changes:
            return
        try:
            results = await self._book.update(self.gateway_id, changes, self._max)
        except (RedisError, OSError, Refused):
            for _, delta, outcome in sent:
                if delta < 0:
                    _resolve(outcome, None)
            raise
        for (conn, delta, outcome), counted in zip(sent, results, strict=True):
            if delta > 0 and not counted.refused:
                conn.counted = True  # before the lock is released: a restatement includes it
            _resolve(outcome, counted)

    async def run(self) -> None:
        try:
            await self._renew_forever()
        finally:
            if self._flusher is not None:  # it is this task's: stop it with it
                self._flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flusher

    async def _renew_forever(self) -> None:
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
        holds, renew its doctors. The lock is held: no batch is counted meanwhile."""
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


def _resolve(outcome: asyncio.Future[Counted | None], counted: Counted | None) -> None:
    if not outcome.done():  # its connection's handler may have been cancelled meanwhile
        outcome.set_result(counted)


def _settle(
    batch: list[tuple[Conn, int, asyncio.Future[Counted | None]]], error: Exception
) -> None:
    """The batch could not be counted: openings get the error, closings are let go."""
    for _, delta, outcome in batch:
        if outcome.done():
            continue
        if delta > 0:
            outcome.set_exception(error)
        else:
            outcome.set_result(None)
