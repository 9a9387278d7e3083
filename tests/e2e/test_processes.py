"""Two gateway processes on one desk, sharing nothing but Redis: delivery to every device,
a SIGKILLed gateway losing nothing, and its users' presence lapsing with its lease."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from chatsvc import tokens
from chatsvc.client import ChatClient
from chatsvc.protocol import frames as f
from tests.conftest import TEST_SECRET, write_config
from tests.e2e.conftest import token_for
from tests.support.process import GatewayProcess

Spawn = Callable[..., Awaitable[GatewayProcess]]


def gateway_config(directory: Path, redis_url: str) -> Path:
    directory.mkdir()
    return write_config(
        directory,
        f"""[server]
port = 0

[redis]
url = "{redis_url}"

[auth]
token_secret = "{TEST_SECRET}"

[limits]
frames_per_second = 5000
frame_burst = 5000

[triage]
presence_ttl_s = 2
patient_grace_s = 60
""",
    )


@pytest.fixture
async def gateways(
    tmp_path: Path, redis: Redis, redis_url: str, spawn_gateway: Spawn
) -> AsyncIterator[list[tuple[GatewayProcess, str]]]:
    started = []
    for name in ("east", "west"):
        process = await spawn_gateway(gateway_config(tmp_path / name, redis_url))
        url = (await process.listening_url()).replace("http://", "ws://") + "/ws"
        await process.wait_event("redis_ready")
        started.append((process, url))
    yield started


async def connect(url: str | list[str], token: str) -> ChatClient:
    client = ChatClient(url, token)
    await client.connect()
    return client


async def test_a_thousand_messages_each_way_reach_every_device_once_in_order(
    gateways: list[tuple[GatewayProcess, str]],
) -> None:
    (_, east), (_, west) = gateways
    phone = await connect(east, token_for(tokens.Role.PATIENT, "p1"))
    laptop = await connect(west, token_for(tokens.Role.PATIENT, "p1"))
    doctor = await connect(west, token_for(tokens.Role.DOCTOR, "d1", ("general",), 3))
    doctor_tab = await connect(east, token_for(tokens.Role.DOCTOR, "d1", ("general",), 3))
    await doctor.set_status("available")
    await phone.join("general", "a long conversation")
    case = await doctor.take_next()
    await phone.next(f.Assigned)
    await laptop.next(f.Assigned)
    await doctor_tab.next(f.Opened)

    async def talk(client: ChatClient, who: str) -> None:
        for n in range(1000):
            await client.send(case.id, f"{who} {n}")

    await asyncio.gather(talk(phone, "patient"), talk(doctor, "doctor"))
    devices = (phone, laptop, doctor, doctor_tab)
    threads = [await device.wait_for_messages(case.id, 2000, timeout=60) for device in devices]
    orders = [[m.text for m in thread.in_order()] for thread in threads]
    assert all(order == orders[0] for order in orders)
    assert [t for t in orders[0] if t.startswith("patient")] == [
        f"patient {n}" for n in range(1000)
    ]
    assert [t for t in orders[0] if t.startswith("doctor")] == [f"doctor {n}" for n in range(1000)]
    assert [device.duplicates for device in devices] == [0, 0, 0, 0]
    for device in devices:
        await device.close()


async def test_sigkill_of_the_patients_gateway_loses_nothing(
    gateways: list[tuple[GatewayProcess, str]],
) -> None:
    (east_process, east), (_, west) = gateways
    patient = await connect([east, west], token_for(tokens.Role.PATIENT, "p1"))
    doctor = await connect(west, token_for(tokens.Role.DOCTOR, "d1", ("general",), 3))
    await doctor.set_status("available")
    await patient.join("general", "a question")
    case = await doctor.take_next()
    await patient.next(f.Assigned)

    async def keep_sending() -> None:
        for n in range(300):
            await doctor.send(case.id, f"m{n}")

    sending = asyncio.create_task(keep_sending())
    await patient.wait_for_messages(case.id, 50)
    east_process.send_signal(signal.SIGKILL)
    await sending
    thread = await patient.wait_for_messages(case.id, 300, timeout=60)
    assert [m.text for m in thread.in_order()] == [f"m{n}" for n in range(300)]
    assert patient.duplicates == 0 and patient.resumes == 1
    assert patient.url == west
    await patient.close()
    await doctor.close()


async def test_a_killed_gateways_doctor_lapses_and_their_patient_is_requeued(
    gateways: list[tuple[GatewayProcess, str]],
) -> None:
    (east_process, east), (_, west) = gateways
    doctor = await connect(east, token_for(tokens.Role.DOCTOR, "d1", ("general",), 3))
    patient = await connect(west, token_for(tokens.Role.PATIENT, "p1"))
    await doctor.set_status("available")
    await patient.join("general", "a question")
    case = await doctor.take_next()
    await patient.next(f.Assigned)
    doctor.auto_resume = False

    east_process.send_signal(signal.SIGKILL)
    # Nobody renews the doctor's presence any more: it runs out after the 2 s grace.
    requeued = await patient.next(f.Queued, timeout=30)
    assert (requeued.department, requeued.position) == ("general", 1)
    later = await connect(west, token_for(tokens.Role.DOCTOR, "d2", ("general",), 3))
    await later.set_status("available")
    assert (await later.take_next()).id == case.id  # the same consultation, resumed
    await patient.close()
    await later.close()
    await doctor.close()


async def test_a_graceful_restart_sends_clients_elsewhere_with_nothing_lost(
    gateways: list[tuple[GatewayProcess, str]],
) -> None:
    (east_process, east), (_, west) = gateways
    patient = await connect([east, west], token_for(tokens.Role.PATIENT, "p1"))
    doctor = await connect([west, east], token_for(tokens.Role.DOCTOR, "d1", ("general",), 3))
    await doctor.set_status("available")
    await patient.join("general", "a question")
    case = await doctor.take_next()
    await patient.next(f.Assigned)

    async def keep_sending(client: ChatClient, who: str) -> None:
        for n in range(200):
            await client.send(case.id, f"{who} {n}")

    talking = asyncio.gather(keep_sending(doctor, "doctor"), keep_sending(patient, "patient"))
    await patient.wait_for_messages(case.id, 40)
    east_process.send_signal(signal.SIGTERM)
    assert await east_process.wait_exit() == 0
    await talking
    for client in (patient, doctor):
        thread = await client.wait_for_messages(case.id, 400, timeout=60)
        texts = [m.text for m in thread.in_order()]
        assert [t for t in texts if t.startswith("doctor")] == [f"doctor {n}" for n in range(200)]
        assert [t for t in texts if t.startswith("patient")] == [f"patient {n}" for n in range(200)]
        assert client.duplicates == 0
    assert patient.close_codes == [1012] and patient.url == west
    await patient.close()
    await doctor.close()
