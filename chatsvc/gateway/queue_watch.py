"""Live queue updates, coalesced: at most one round per department per second.

The desk feed marks a department dirty on every event that changes its queue. Once a second
the watch takes the dirty set and, for each department, sends its load (`queue_summary`) to
this gateway's doctors and supervisors of it, and each of this gateway's waiting patients in it
their position and ETA (`queued`) when it changed. A queue that changes a hundred times a
second costs one round a second, not a hundred. Every gateway does this for its own users, so
a new patient shows up on every doctor's console within about a second, wherever they are.
"""

from __future__ import annotations

import asyncio

import structlog
from redis.exceptions import RedisError

from chatsvc.gateway.cancellation import stop_if_cancelled
from chatsvc.gateway.context import GatewayContext
from chatsvc.gateway.hub import Conn
from chatsvc.protocol import frames as f
from chatsvc.tokens import Role
from triage.errors import Refused
from triage.summary import department_load, redis_now_ms

log = structlog.get_logger(__name__)

# The coalescing interval: "within a second of a change".
INTERVAL_S = 1.0
# Waits grow while nothing happens: summaries are re-sent this often even without events.
REFRESH_S = 15.0


class QueueWatch:
    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx
        self._dirty: set[str] = set()

    def mark(self, department: str) -> None:
        self._dirty.add(department)

    def mark_all(self) -> None:
        self._dirty.update(d.id for d in self._ctx.config.departments)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_refresh = loop.time()
        while True:
            stop_if_cancelled()
            await asyncio.sleep(INTERVAL_S)
            await self._ctx.link.wait_ready()
            stop_if_cancelled()
            if loop.time() - last_refresh >= REFRESH_S:
                last_refresh = loop.time()
                self.mark_all()
            dirty, self._dirty = self._dirty, set()
            try:
                for department in sorted(dirty):
                    await self.refresh(department)
            except (RedisError, OSError) as error:
                stop_if_cancelled()
                self._dirty |= dirty
                log.warning("queue_watch_failed", error=str(error)[:200])

    async def refresh(self, department: str) -> None:
        staff = [
            conn
            for conn in self._ctx.hub.all_conns()
            if conn.role is not Role.PATIENT and department in conn.claims.departments
        ]
        if staff:
            frame = await self.summary([department])
            for conn in staff:
                conn.send(frame)
        for conn in list(self._ctx.hub.all_conns()):
            if conn.role is Role.PATIENT and conn.ticket and conn.ticket_department == department:
                await self.tell_position(conn)

    async def summary(self, departments: list[str]) -> f.QueueSummary:
        client = self._ctx.link.client
        now_ms = await redis_now_ms(client)
        loads = [await department_load(client, d, now_ms) for d in departments]
        return f.QueueSummary(
            departments=[
                f.DepartmentLoad(
                    id=load.department,
                    waiting=load.waiting,
                    longest_wait_s=load.longest_wait_ms // 1000,
                    red_flags_waiting=load.red_flags_waiting,
                )
                for load in loads
            ]
        )

    async def tell_position(self, conn: Conn) -> None:
        """Send a waiting patient their position if it changed since they were last told."""
        ticket = conn.ticket
        try:
            quote = await self._ctx.link.engine.position(ticket)
        except Refused:
            return
        if conn.ticket != ticket:
            return  # assigned (or left) while this was read: the position is stale
        if quote.state != "waiting":
            return
        told = (quote.estimate.position, quote.estimate.eta_s, quote.surge)
        if told == conn.last_queued:
            return
        conn.last_queued = told
        conn.send(
            f.Queued(
                ticket=conn.ticket,
                department=quote.department,
                position=quote.estimate.position,
                eta_s=quote.estimate.eta_s,
                surge=quote.surge,
            )
        )
