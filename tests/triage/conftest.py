"""Engine fixtures: a desk on the suite's private Redis with a controllable clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from triage.engine import DeskRules, Engine, ManualClock
from triage.models import DepartmentRules, DoctorStatus, HeadStarts, Routing, Urgency
from triage.records import Intake
from triage.scripts import Scripts

# 2026-01-01T00:00:00Z: a fixed, realistic epoch-ms so places look like production ones.
START_MS = 1_767_225_600_000

DEPARTMENTS = (
    DepartmentRules(
        "general",
        "General medicine",
        Routing.PULL,
        max_wait_s=1800,
        red_flags={
            "chest pain": Urgency.EMERGENCY,
            "胸痛": Urgency.EMERGENCY,
            "high fever": Urgency.URGENT,
        },
    ),
    DepartmentRules("paeds", "Paediatrics", Routing.PULL, max_wait_s=1200),
    DepartmentRules(
        "psych",
        "Psychological counselling",
        Routing.PUSH,
        max_wait_s=900,
        red_flags={"suicidal": Urgency.EMERGENCY},
    ),
)
RULES = DeskRules(
    departments=DEPARTMENTS,
    head_starts=HeadStarts(priority_s=600, urgent_s=1800),
    accept_timeout_s=30,
    presence_ttl_s=20,
    patient_grace_s=60,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_MS)


@pytest.fixture
async def engine(redis: Redis, clock: ManualClock) -> Engine:
    desk = Engine(redis, Scripts(redis), RULES, clock)
    await desk.init()
    return desk


def intake(symptoms: str = "cough for a week") -> Intake:
    return Intake(symptoms=symptoms, age_band="30-39", duration="1w")


Join = Callable[..., Awaitable[str]]


@pytest.fixture
def join(engine: Engine, clock: ManualClock) -> Join:
    """Enqueue a patient with consent; returns the ticket id."""

    async def run(
        patient: str, dept: str = "general", symptoms: str = "cough", **kw: object
    ) -> str:
        result = await engine.enqueue(patient, dept, intake(symptoms), clock.now_ms, **kw)  # type: ignore[arg-type]
        return result.ticket_id

    return run


OnDuty = Callable[..., Awaitable[None]]


@pytest.fixture
def on_duty(engine: Engine) -> OnDuty:
    async def run(
        doctor: str,
        depts: tuple[str, ...] = ("general",),
        capacity: int = 2,
        status: DoctorStatus = DoctorStatus.AVAILABLE,
    ) -> None:
        await engine.set_status(doctor, status, f"Dr {doctor}", depts, capacity)

    return run
