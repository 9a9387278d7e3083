"""1,000 patients and 50 doctors at once, from asyncio tasks in this process and from two
other OS processes with their own connections: every patient matched exactly once, no doctor
ever over capacity, nothing left waiting, counters consistent."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter, defaultdict
from dataclasses import asdict

import pytest
from redis.asyncio import Redis

from tests.triage.desk_load import DEPARTMENTS, WorkSpec, doctor_profile, run_share
from triage import keys

PATIENTS = [f"p{i}" for i in range(1000)]
DOCTORS = [f"d{i}" for i in range(50)]
SHARES = 3  # this process and two workers


@pytest.mark.timeout(180)
async def test_a_thousand_patients_fifty_doctors_three_processes(
    redis: Redis, redis_url: str
) -> None:
    specs = [
        WorkSpec(patients=PATIENTS[i::SHARES], doctors=DOCTORS[i::SHARES], total_patients=1000)
        for i in range(SHARES)
    ]
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.triage.desk_worker",
            redis_url,
            json.dumps(asdict(spec)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ},
        )
        for spec in specs[1:]
    ]
    local = await run_share(redis_url, specs[0])
    summaries = [local]
    for worker in workers:
        out, err = await asyncio.wait_for(worker.communicate(), 150)
        assert worker.returncode == 0, err.decode()[-3000:]
        summaries.append(json.loads(out.decode().strip().splitlines()[-1]))

    # Nothing left waiting, every counter consistent.
    totals: Counter[str] = Counter()
    for dept in DEPARTMENTS:
        assert await redis.zcard(keys.queue(dept)) == 0
        totals.update({k: int(v) for k, v in (await redis.hgetall(keys.stats(dept))).items()})
    assert (totals["joined"], totals["matched"], totals["ended"]) == (1000, 1000, 1000)
    assert totals["abandoned"] == 0

    # Replay the event stream (written atomically by the scripts, in commit order).
    events = await redis.xrange(keys.events())
    assigned_per_ticket: Counter[str] = Counter()
    active: defaultdict[str, int] = defaultdict(int)
    peak: defaultdict[str, int] = defaultdict(int)
    holds: dict[str, str] = {}
    for _, fields in events:
        kind = fields["type"]
        if kind in ("offered", "assigned") and fields["consultation"] not in holds:
            holds[fields["consultation"]] = fields["doctor"]
            active[fields["doctor"]] += 1
            peak[fields["doctor"]] = max(peak[fields["doctor"]], active[fields["doctor"]])
        if kind == "assigned":
            assigned_per_ticket[fields["ticket"]] += 1
        if kind == "ended":
            active[holds.pop(fields["consultation"])] -= 1
    assert len(assigned_per_ticket) == 1000
    assert set(assigned_per_ticket.values()) == {1}, "a patient was matched twice"
    for doctor in DOCTORS:
        _, capacity = doctor_profile(doctor)
        assert peak[doctor] <= capacity, f"{doctor} held {peak[doctor]} > {capacity}"
        assert active[doctor] == 0
    patients_seen = {fields["patient"] for _, fields in events if fields["type"] == "assigned"}
    assert patients_seen == set(PATIENTS)
    ended = sum(d["ended"] for s in summaries for d in s["doctors"].values())  # type: ignore[union-attr]
    assert ended == 1000
