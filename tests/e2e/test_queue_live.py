"""Live queue state: doctors see their departments' queues change without asking, within about
a second and coalesced; waiting patients are told when their place changes."""

from __future__ import annotations

import time

from chatsvc.gateway.queue_watch import INTERVAL_S
from chatsvc.protocol import frames as f
from tests.e2e.conftest import Desk


def load(summary: f.QueueSummary, department: str) -> f.DepartmentLoad:
    return next(d for d in summary.departments if d.id == department)


async def test_a_new_patient_shows_on_the_doctors_console_without_a_reload(desk: Desk) -> None:
    doctor = await desk.doctor("d1", departments=("general", "paediatrics"))
    first = await doctor.next(f.QueueSummary)
    assert {d.id for d in first.departments} == {"general", "paediatrics"}
    assert load(first, "general").waiting == 0

    patient = await desk.patient("p1")
    await patient.join("general", "chest pain when climbing stairs")
    seen = await doctor.next(f.QueueSummary, lambda s: load(s, "general").waiting == 1)
    assert load(seen, "general").red_flags_waiting == 1

    other = await desk.doctor("d2", departments=("paediatrics",))
    mine = await other.next(f.QueueSummary)
    assert [d.id for d in mine.departments] == ["paediatrics"]  # only their departments


async def test_a_busy_queue_costs_one_summary_a_second_not_one_per_patient(desk: Desk) -> None:
    doctor = await desk.doctor("d1")
    await doctor.next(f.QueueSummary)
    patients = [await desk.patient(f"p{i}") for i in range(12)]
    started = time.monotonic()
    for i, patient in enumerate(patients):
        await patient.join("general", f"question {i}")
    await doctor.next(f.QueueSummary, lambda s: load(s, "general").waiting == 12)
    elapsed = time.monotonic() - started
    summaries = 1 + sum(isinstance(frame, f.QueueSummary) for frame in doctor.inbox)
    # At most one round per coalescing interval (plus the rounds at either edge), however many
    # joins came meanwhile; on a slow machine the joins take longer, and more rounds are fair.
    assert summaries <= elapsed / INTERVAL_S + 2


async def test_waiting_patients_are_told_when_someone_ahead_leaves(desk: Desk) -> None:
    patients = [await desk.patient(f"p{i}") for i in range(3)]
    for i, patient in enumerate(patients):
        joined = await patient.join("general", f"question {i}")
        assert joined.position == i + 1

    await patients[0].leave()
    moved = await patients[1].next(f.Queued, lambda q: q.position == 1)
    assert moved.department == "general"
    assert (await patients[2].next(f.Queued, lambda q: q.position == 2)).position == 2


async def test_a_reconnecting_patient_is_told_where_they_stand(desk: Desk) -> None:
    patient = await desk.patient("p1")
    await patient.join("general", "a question")
    await patient.reconnect()
    queued = await patient.next(f.Queued)
    assert queued.position == 1
