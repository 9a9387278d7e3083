"""Supervisors' live view: the desk's metrics pushed every second, and this gateway's message
count added to the desk's.

The figures come from Redis (`triage.metrics`: one script, cached for up to a second), so
every gateway pushes the same numbers. A supervisor sees the departments their token names (all
of them when it names none). The gateway adds the messages it stored each second to the desk's
per-second counts, from which the desk's messages per second are read.
"""

from __future__ import annotations

import asyncio

import structlog
from redis.exceptions import RedisError

from chatsvc.gateway.cancellation import stop_if_cancelled
from chatsvc.gateway.hub import Hub
from chatsvc.gateway.redis_link import RedisLink
from chatsvc.protocol import frames as f
from chatsvc.tokens import Claims, Role
from triage.errors import TriageError
from triage.metrics import DepartmentMetrics, DeskMetrics, record_messages
from triage.summary import redis_now_ms

log = structlog.get_logger(__name__)

# Supervisors' screens update this often.
PUSH_EVERY_S = 1.0


def figures_frame(
    desk: DeskMetrics, claims: Claims | None, window_s: int, red_flag_alert_s: int
) -> f.DeskMetricsFrame:
    """The desk's figures as `claims` may see them (None: every department)."""
    allowed = set(claims.departments) if claims is not None and claims.departments else None
    return f.DeskMetricsFrame(
        computed_ms=desk.computed_ms,
        window_s=window_s,
        red_flag_alert_s=red_flag_alert_s,
        messages_per_s=desk.messages_per_s,
        departments=[
            _department(d) for d in desk.departments if allowed is None or d.name in allowed
        ],
    )


def _department(d: DepartmentMetrics) -> f.DepartmentFigures:
    return f.DepartmentFigures(
        department=d.name,
        waiting=d.waiting,
        longest_wait_ms=d.longest_wait_ms,
        wait_p50_ms=d.wait_p50_ms,
        wait_p90_ms=d.wait_p90_ms,
        matched_in_window=d.matched_in_window,
        abandoned_in_window=d.abandoned_in_window,
        abandonment_rate=d.abandonment_rate,
        started_last_minute=d.started_last_minute,
        ended_last_minute=d.ended_last_minute,
        abandoned_last_minute=d.abandoned_last_minute,
        doctors_available=d.doctors_available,
        doctors_busy=d.doctors_busy,
        doctors_away=d.doctors_away,
        slots_held=d.slots_held,
        slots_total=d.slots_total,
        utilisation=d.utilisation,
        active_consultations=d.active_consultations,
        eta_checks=d.eta_checks,
        eta_mean_abs_error_s=d.eta_mean_abs_error_s,
        eta_within_share=d.eta_within_share,
        surge=d.surge,
        red_flags_waiting=d.red_flags_waiting,
        red_flags_overdue=d.red_flags_overdue,
        overdue_alerts=[f.OverdueAlert(o.ticket, o.waited_ms) for o in d.red_flags_overdue_list],
        flagged_abandoned_in_window=d.flagged_abandoned_in_window,
        abandon_alerts=[f.AbandonAlert(a.ticket, a.at_ms) for a in d.flagged_abandoned_list],
    )


class Supervision:
    def __init__(self, hub: Hub, link: RedisLink, window_s: int, red_flag_alert_s: int) -> None:
        self._hub = hub
        self._link = link
        self.window_s = window_s
        self.red_flag_alert_s = red_flag_alert_s
        self._stored = 0  # messages stored here since the last flush

    def message_stored(self) -> None:
        self._stored += 1

    async def metrics(self) -> DeskMetrics:
        return await self._link.engine.metrics(self.window_s, self.red_flag_alert_s)

    async def run(self) -> None:
        while True:
            stop_if_cancelled()
            await asyncio.sleep(PUSH_EVERY_S)
            await self._link.wait_ready()
            try:
                await self._flush_messages()
                await self._push()
            except (RedisError, OSError, TriageError) as error:
                stop_if_cancelled()
                log.warning("metrics_failed", error=str(error)[:200])
            except Exception:  # a bug: log it, keep pushing
                log.exception("metrics_crashed")

    async def _flush_messages(self) -> None:
        count, self._stored = self._stored, 0
        try:
            if count:
                # Keyed by Redis's clock, the one desk_metrics reads them by.
                now_ms = await redis_now_ms(self._link.client)
                await record_messages(self._link.client, count, now_ms)
        except BaseException:
            self._stored += count  # counted again at the next flush
            raise

    async def _push(self) -> None:
        # Read even with no supervisor here: the read also trims the windowed indexes the desk
        # scripts write (cached in Redis, so the desk is computed once a second in all).
        desk = await self.metrics()
        for conn in self._hub.all_conns():
            if conn.role is not Role.SUPERVISOR:
                continue
            conn.send(figures_frame(desk, conn.claims, self.window_s, self.red_flag_alert_s))
