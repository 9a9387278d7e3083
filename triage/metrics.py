"""The desk's live figures for supervisors, the same on every gateway.

Everything comes from Redis, from indexes the desk scripts keep exactly (the queue, the
waiting-since and red-flag indexes, the windowed sets of first matches, abandons and ends, the
ETA checks, the doctors' records) and is read by one script (`desk_metrics.lua`), so the numbers
agree with each other and with every other gateway's. The script caches its result for up to a
second, so the desk is computed once a second however many gateways ask. This module turns the
script's JSON into typed records and derives the ratios; it never reads a clock itself.

Definitions (also in docs/operations.md):
- window: the last `window_s` seconds (config `[metrics] window_s`).
- wait p50/p90: nearest rank over the waits of patients first matched in the window.
- abandonment rate: abandoned / (abandoned + first matched), both in the window.
- started / ended / abandoned per minute: in the last 60 s.
- utilisation: slots held / slots, over doctors on duty and not away.
- ETA accuracy: over patients first matched in the window whose first quote was recorded: the
  mean absolute error, and the share quoted within a quarter of their real wait (or a minute).
- messages per second: messages stored in the last 10 whole seconds, / 10.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis.asyncio import Redis

from triage import keys
from triage.scripts import Scripts

# How many alerts of each kind are listed per department (all are counted).
ALERT_LIMIT = 20
# A result this fresh is reused: metrics are pushed once a second.
CACHE_MS = 900


@dataclass(frozen=True)
class Overdue:
    """A red-flagged patient still waiting past the alert threshold."""

    ticket: str
    waited_ms: int


@dataclass(frozen=True)
class FlaggedAbandon:
    """An urgent, emergency or red-flagged patient who left the queue unserved."""

    ticket: str
    at_ms: int


@dataclass(frozen=True)
class DepartmentMetrics:
    name: str
    waiting: int
    longest_wait_ms: int
    red_flags_waiting: int
    red_flags_overdue: int
    red_flags_overdue_list: tuple[Overdue, ...]
    matched_in_window: int
    wait_p50_ms: int | None
    wait_p90_ms: int | None
    started_last_minute: int
    ended_last_minute: int
    abandoned_in_window: int
    abandoned_last_minute: int
    flagged_abandoned_in_window: int
    flagged_abandoned_list: tuple[FlaggedAbandon, ...]
    doctors_available: int
    doctors_busy: int
    doctors_away: int
    slots_held: int
    slots_total: int
    active_consultations: int
    eta_checks: int
    eta_mean_abs_error_s: float | None
    eta_within_share: float | None
    surge_since_ms: int | None

    @property
    def abandonment_rate(self) -> float | None:
        decided = self.abandoned_in_window + self.matched_in_window
        return None if decided == 0 else self.abandoned_in_window / decided

    @property
    def utilisation(self) -> float | None:
        return None if self.slots_total == 0 else self.slots_held / self.slots_total

    @property
    def surge(self) -> bool:
        return self.surge_since_ms is not None


@dataclass(frozen=True)
class DeskMetrics:
    computed_ms: int
    window_ms: int
    alert_after_ms: int
    messages_per_s: float
    departments: tuple[DepartmentMetrics, ...]

    def department(self, name: str) -> DepartmentMetrics:
        for figures in self.departments:
            if figures.name == name:
                return figures
        raise KeyError(name)


async def desk_metrics(
    client: Redis,
    scripts: Scripts,
    *,
    window_s: int,
    alert_after_s: int,
    now_ms: int | None = None,
    cache_ms: int = CACHE_MS,
) -> DeskMetrics:
    """The desk's figures now (`now_ms` is for tests: it overrides Redis TIME)."""
    reply = await scripts.run(
        "desk_metrics",
        (keys.desk_meta(),),
        (
            "" if now_ms is None else now_ms,
            window_s * 1000,
            alert_after_s * 1000,
            cache_ms,
            ALERT_LIMIT,
        ),
        client,
    )
    return parse_metrics(str(reply))


async def record_messages(client: Redis, count: int, now_ms: int) -> None:
    """Add `count` messages stored in the second of `now_ms` (a gateway's count, flushed once a
    second)."""
    if count > 0:
        await client.hincrby(keys.messages(), str(now_ms // 1000), count)


def parse_metrics(text: str) -> DeskMetrics:
    raw = json.loads(text)
    return DeskMetrics(
        computed_ms=int(raw["computed_ms"]),
        window_ms=int(raw["window_ms"]),
        alert_after_ms=int(raw["alert_after_ms"]),
        messages_per_s=int(raw["messages_last_10s"]) / 10,
        departments=tuple(_department(d) for d in _list(raw["departments"])),
    )


def _department(d: dict[str, object]) -> DepartmentMetrics:
    checks = _int(d["eta_checks"])
    return DepartmentMetrics(
        name=str(d["name"]),
        waiting=_int(d["waiting"]),
        longest_wait_ms=_int(d["longest_wait_ms"]),
        red_flags_waiting=_int(d["red_flags_waiting"]),
        red_flags_overdue=_int(d["red_flags_overdue"]),
        red_flags_overdue_list=tuple(
            Overdue(str(o["ticket"]), _int(o["waited_ms"]))
            for o in _list(d["red_flags_overdue_list"])
        ),
        matched_in_window=_int(d["matched_in_window"]),
        wait_p50_ms=_optional_int(d["wait_p50_ms"]),
        wait_p90_ms=_optional_int(d["wait_p90_ms"]),
        started_last_minute=_int(d["started_last_minute"]),
        ended_last_minute=_int(d["ended_last_minute"]),
        abandoned_in_window=_int(d["abandoned_in_window"]),
        abandoned_last_minute=_int(d["abandoned_last_minute"]),
        flagged_abandoned_in_window=_int(d["flagged_abandoned_in_window"]),
        flagged_abandoned_list=tuple(
            FlaggedAbandon(str(a["ticket"]), _int(a["at_ms"]))
            for a in _list(d["flagged_abandoned_list"])
        ),
        doctors_available=_int(d["doctors_available"]),
        doctors_busy=_int(d["doctors_busy"]),
        doctors_away=_int(d["doctors_away"]),
        slots_held=_int(d["slots_held"]),
        slots_total=_int(d["slots_total"]),
        active_consultations=_int(d["active_consultations"]),
        eta_checks=checks,
        eta_mean_abs_error_s=(
            None if checks == 0 else _int(d["eta_abs_error_ms_sum"]) / checks / 1000
        ),
        eta_within_share=None if checks == 0 else _int(d["eta_within"]) / checks,
        surge_since_ms=_optional_int(d.get("surge_since_ms")),
    )


def _list(value: object) -> list[dict[str, object]]:
    """cjson writes an empty Lua table as {}: that is an empty list here."""
    if isinstance(value, list):
        return value
    return []


def _int(value: object) -> int:
    return int(value)  # type: ignore[call-overload]


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
