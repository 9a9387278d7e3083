"""Reads the gateway needs to show a user where they stand: plain commands, no scripts.

A read here may race a script that changes the same record; callers use it to render state,
never to decide a transition (those are scripts, which check again).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from triage import keys


@dataclass(frozen=True)
class OpenCase:
    """A patient's open ticket and consultation ids ("" when none); the ticket's state and
    department when they were read with it (presence_update reads them), else ""."""

    ticket_id: str
    consultation_id: str
    ticket_state: str = ""
    ticket_department: str = ""


async def open_case(client: Redis, patient_id: str) -> OpenCase:
    ticket_id, consultation_id = await client.hmget(
        keys.patient(patient_id), "ticket", "consultation"
    )
    return OpenCase(ticket_id or "", consultation_id or "")


async def doctor_consultations(client: Redis, doctor_id: str) -> tuple[str, ...]:
    """The doctor's open consultations (offered and active), in id order."""
    return tuple(sorted(await client.smembers(keys.doctor_consultations(doctor_id))))


async def doctor_names(client: Redis, doctor_ids: list[str]) -> dict[str, str]:
    """Display names of doctors ("" for one without a profile)."""
    if not doctor_ids:
        return {}
    async with client.pipeline(transaction=False) as pipe:
        for doctor_id in doctor_ids:
            pipe.hget(keys.doctor(doctor_id), "name")
        names = await pipe.execute()
    return {d: (n or "") for d, n in zip(doctor_ids, names, strict=True)}


async def live_consultations(client: Redis, department: str) -> tuple[str, ...]:
    """Consultations held by the department's doctors on duty (offered or active) that belong
    to the department, in id order."""
    doctors = sorted(await client.smembers(keys.serving(department)))
    if not doctors:
        return ()
    async with client.pipeline(transaction=False) as pipe:
        for doctor_id in doctors:
            pipe.smembers(keys.doctor_consultations(doctor_id))
        held = await pipe.execute()
    ids = sorted({cid for members in held for cid in members})
    if not ids:
        return ()
    async with client.pipeline(transaction=False) as pipe:
        for cid in ids:
            pipe.hget(keys.consultation(cid), "dept")
        departments = await pipe.execute()
    return tuple(cid for cid, dept in zip(ids, departments, strict=True) if dept == department)


async def patient_consultations(client: Redis, patient_id: str, limit: int = 50) -> list[str]:
    """The patient's consultations, newest first."""
    return list(await client.zrevrange(keys.patient_consultations(patient_id), 0, limit - 1))
