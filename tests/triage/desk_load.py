"""Concurrent patients and doctors against one desk, shared by the test's own tasks and the
worker processes. Real clock, real Redis, real scripts; no sleeps: a doctor with nothing to do
waits on the desk's event stream for the next change."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field

from redis.asyncio import Redis

from triage import errors, keys
from triage.connection import connect
from triage.engine import DeskRules, Engine
from triage.models import DepartmentRules, DoctorStatus, Routing
from triage.records import Intake
from triage.scripts import Scripts

LOAD_RULES = DeskRules(
    departments=(
        DepartmentRules("general", "General", Routing.PULL),
        DepartmentRules("paeds", "Paediatrics", Routing.PULL),
        DepartmentRules("psych", "Psych", Routing.PUSH),
    ),
    # Generous: the test runs on a loaded 2-core machine and must not see lapses it did not cause.
    presence_ttl_s=600,
    accept_timeout_s=600,
)
DEPARTMENTS = ("general", "paeds", "psych")
# A doctor with nothing to do blocks on the event stream at most this long before looking again.
IDLE_BLOCK_MS = 200


@dataclass
class WorkSpec:
    patients: list[str] = field(default_factory=list)
    doctors: list[str] = field(default_factory=list)
    total_patients: int = 0
    deadline_s: float = 60.0


def doctor_profile(doctor_id: str) -> tuple[tuple[str, ...], int]:
    """Mixed departments and capacities, fixed by the id so every process agrees."""
    n = int(doctor_id.removeprefix("d"))
    departments = (DEPARTMENTS[n % 3],) if n % 4 else (DEPARTMENTS[n % 3], DEPARTMENTS[(n + 1) % 3])
    return departments, 1 + n % 4


def patient_department(patient_id: str) -> str:
    return DEPARTMENTS[int(patient_id.removeprefix("p")) % 3]


async def _patient(engine: Engine, patient_id: str) -> None:
    await engine.enqueue(
        patient_id,
        patient_department(patient_id),
        Intake(symptoms="cough"),
        int(time.time() * 1000),
    )


async def _all_matched(client: Redis, total: int) -> bool:
    matched = 0
    for dept in DEPARTMENTS:
        matched += int(await client.hget(keys.stats(dept), "matched") or 0)
    return matched >= total


async def _doctor(engine: Engine, client: Redis, doctor_id: str, spec: WorkSpec) -> dict[str, int]:
    departments, capacity = doctor_profile(doctor_id)
    await engine.set_status(doctor_id, DoctorStatus.AVAILABLE, doctor_id, departments, capacity)
    done = {"taken": 0, "accepted": 0, "ended": 0, "max_active": 0}
    deadline = time.monotonic() + spec.deadline_s
    last_event = "$"
    while time.monotonic() < deadline:
        progressed = False
        for cid in sorted(await client.smembers(keys.doctor_consultations(doctor_id))):
            state = await client.hget(keys.consultation(cid), "state")
            if state == "offered":
                await engine.accept(doctor_id, cid)
                done["accepted"] += 1
            await engine.end(doctor_id, cid, "done")
            done["ended"] += 1
            progressed = True
        try:
            await engine.take_next(doctor_id)
            done["taken"] += 1
            progressed = True
        except (errors.QueueEmpty, errors.AtCapacity):
            pass
        doctor = await engine.doctor(doctor_id)
        assert doctor is not None
        done["max_active"] = max(done["max_active"], doctor.active)
        if not progressed:
            if await _all_matched(client, spec.total_patients) and not await client.scard(
                keys.doctor_consultations(doctor_id)
            ):
                return done
            reply = await client.xread({keys.events(): last_event}, count=100, block=IDLE_BLOCK_MS)
            if reply:
                last_event = reply[0][1][-1][0]
    raise AssertionError(f"doctor {doctor_id} still busy at the deadline: {done}")


async def run_share(url: str, spec: WorkSpec) -> dict[str, object]:
    client = connect(url)
    engine = Engine(client, Scripts(client), LOAD_RULES)
    await engine.init()
    try:
        doctors = [asyncio.create_task(_doctor(engine, client, d, spec)) for d in spec.doctors]
        await asyncio.gather(*(_patient(engine, p) for p in spec.patients))
        results = await asyncio.gather(*doctors)
    finally:
        await client.aclose()
    return {"spec": asdict(spec), "doctors": dict(zip(spec.doctors, results, strict=True))}
