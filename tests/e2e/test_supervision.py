"""Supervisors' desk metrics: pushed every second, served at GET /api/metrics, the same on every
gateway process."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from chatsvc import tokens
from chatsvc.client import ChatClient
from chatsvc.protocol import frames as f
from tests.conftest import TEST_SECRET, write_config
from tests.e2e.conftest import Desk, token_for
from tests.e2e.test_processes import Spawn
from tests.support.waiting import eventually


def general(frame: f.DeskMetricsFrame) -> f.DepartmentFigures:
    (figures,) = [d for d in frame.departments if d.department == "general"]
    return figures


async def test_a_supervisor_watches_a_consultation_start_and_its_messages(desk: Desk) -> None:
    supervisor = await desk.supervisor("s1", ("general",))
    first = await supervisor.next(f.DeskMetricsFrame, timeout=10)
    assert [d.department for d in first.departments] == ["general"]  # their departments only
    assert general(first).waiting == 0

    doctor = await desk.doctor("d1", capacity=2)
    patient = await desk.patient("p1")
    await patient.join("general", "chest pain when I climb stairs")
    seen = await supervisor.next(f.DeskMetricsFrame, lambda m: general(m).waiting == 1, timeout=10)
    assert general(seen).red_flags_waiting == 1
    assert general(seen).doctors_available == 1 and general(seen).slots_total == 2

    case = await doctor.take_next()
    await patient.next(f.Assigned)
    for n in range(5):
        await patient.send(case.id, f"message {n}")
    seen = await supervisor.next(
        f.DeskMetricsFrame, lambda m: m.messages_per_s == 0.5, timeout=15
    )  # 5 messages in the last 10 whole seconds
    figures = general(seen)
    assert (figures.waiting, figures.active_consultations) == (0, 1)
    assert (figures.matched_in_window, figures.started_last_minute) == (1, 1)
    assert figures.slots_held == 1 and figures.utilisation == 0.5
    assert figures.eta_checks == 1  # the wait the patient was quoted on joining, checked
    assert figures.abandonment_rate == 0.0

    await doctor.end(case.id, "angina ruled out for now; see your GP")
    seen = await supervisor.next(
        f.DeskMetricsFrame, lambda m: general(m).ended_last_minute == 1, timeout=10
    )
    assert general(seen).active_consultations == 0


async def test_the_metrics_endpoint_is_for_supervisors_of_their_departments(desk: Desk) -> None:
    url = desk.gateway.make_url("/api/metrics")
    session = desk.gateway.session

    async def get(token: str | None) -> tuple[int, dict[str, object]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with session.get(url, headers=headers) as answer:
            return answer.status, await answer.json()

    status, body = await get(token_for(tokens.Role.SUPERVISOR, "s1", ("psych",)))
    assert status == 200
    assert [d["department"] for d in body["departments"]] == ["psych"]  # type: ignore[union-attr]
    assert body["window_s"] == 900 and body["red_flag_alert_s"] == 120
    status, body = await get(token_for(tokens.Role.DOCTOR, "d1", ("general",), 2))
    assert status == 403 and body["error"]["code"] == "forbidden"  # type: ignore[index]
    status, body = await get(None)
    assert status == 401 and body["error"]["code"] == "auth_failed"  # type: ignore[index]


async def test_two_gateway_processes_report_the_same_figures(
    tmp_path: Path, redis: Redis, redis_url: str, spawn_gateway: Spawn
) -> None:
    bases = []
    for name in ("east", "west"):
        directory = tmp_path / name
        directory.mkdir()
        config = write_config(
            directory,
            f'[server]\nport = 0\n[redis]\nurl = "{redis_url}"\n'
            f'[auth]\ntoken_secret = "{TEST_SECRET}"\n',
        )
        process = await spawn_gateway(config)
        bases.append(await process.listening_url())
        await process.wait_event("redis_ready")
    clients = []
    try:
        east, west = (base.replace("http://", "ws://") + "/ws" for base in bases)
        doctor = ChatClient(west, token_for(tokens.Role.DOCTOR, "d1", ("general",), 3))
        clients.append(doctor)
        await doctor.connect()
        await doctor.set_status("available")
        for n in range(3):
            patient = ChatClient(east if n % 2 else west, token_for(tokens.Role.PATIENT, f"p{n}"))
            clients.append(patient)
            await patient.connect()
            await patient.join("general", "a rash")
        await doctor.take_next()

        token = token_for(tokens.Role.SUPERVISOR, "s1")
        figures: list[dict[str, object]] = []

        async def both_show_the_desk_as_it_is() -> bool:
            # Figures are cached for up to a second: wait for those computed after the match.
            figures.clear()
            async with aiohttp.ClientSession() as session:
                for base in bases:
                    headers = {"Authorization": f"Bearer {token}"}
                    async with session.get(f"{base}/api/metrics", headers=headers) as answer:
                        assert answer.status == 200
                        figures.append(await answer.json())
            return all(general_row(body)["matched_in_window"] == 1 for body in figures)

        await eventually(both_show_the_desk_as_it_is)
    finally:
        for client in clients:
            await client.close()
    east_figures, west_figures = figures
    for body in figures:
        row = general_row(body)
        assert (row["waiting"], row["active_consultations"], row["matched_in_window"]) == (2, 1, 1)
        assert (row["doctors_available"], row["slots_held"], row["slots_total"]) == (1, 1, 3)
    # The same figures from both (when they were computed may differ by a cache period).
    for body in figures:
        body.pop("computed_ms")
    assert east_figures == west_figures


def general_row(body: dict[str, object]) -> dict[str, object]:
    """The general department's figures in a GET /api/metrics body."""
    departments = body["departments"]
    assert isinstance(departments, list)
    (row,) = [d for d in departments if d["department"] == "general"]
    return row
