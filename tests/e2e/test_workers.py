"""`chatsvc serve --workers N`: worker processes on one port, restarted when they die, stopped
with their parent, and each scraped on its own metrics port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatsvc import tokens
from chatsvc.client import ChatClient
from chatsvc.protocol import frames as f
from tests.conftest import write_config
from tests.support.process import GatewayProcess, pid_alive
from tests.support.waiting import eventually

pytestmark = pytest.mark.subprocess

WORKERS = 2
# Connections from distinct source ports: SO_REUSEPORT spreads them over the workers by hash.
PATIENTS = 12


def two_free_ports() -> int:
    """A base port P such that P and P + 1 are free on loopback now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise RuntimeError("no two consecutive free ports")


async def start_group(tmp_path: Path, metrics_base: int) -> GatewayProcess:
    config = write_config(tmp_path, f"[server]\nport = 0\nworker_metrics_port = {metrics_base}\n")
    group = await GatewayProcess(config).start(
        "serve", "--workers", str(WORKERS), "--config", str(config)
    )
    await group.wait_event("chatsvc_listening", count=WORKERS)
    return group


def worker_pids(group: GatewayProcess) -> dict[int, int]:
    """Worker index → pid of its latest start."""
    return {int(e["worker"]): int(e["pid"]) for e in group.named("worker_started")}


async def connections_by_worker(metrics_base: int, role: str) -> list[float]:
    counts = []
    async with aiohttp.ClientSession() as session:
        for index in range(WORKERS):
            url = f"http://127.0.0.1:{metrics_base + index}/metrics"
            async with session.get(url) as response:
                text = await response.text()
            samples = [
                sample
                for family in text_string_to_metric_families(text)
                if family.name == "chatsvc_connections"
                for sample in family.samples
                if sample.labels.get("role") == role
            ]
            counts.append(samples[0].value if samples else 0.0)
    return counts


def secret_of(tmp_path: Path) -> str:
    return (tmp_path / "data" / "token_secret").read_text().strip()


async def test_workers_share_one_port_serve_a_consultation_and_are_scraped_apart(
    tmp_path: Path,
) -> None:
    metrics_base = two_free_ports()
    group = await start_group(tmp_path, metrics_base)
    clients: list[ChatClient] = []
    try:
        listening = group.named("chatsvc_listening")
        assert len({e["port"] for e in listening}) == 1
        assert sorted(int(e["worker"]) for e in listening) == list(range(WORKERS))
        url = str(listening[0]["url"]).replace("http://", "ws://") + "/ws"
        secret = secret_of(tmp_path)

        def token(role: tokens.Role, user: str, departments: tuple[str, ...] = ()) -> str:
            return tokens.issue(
                secret, role, user, time.time(), 600, name="Dr Li", departments=departments
            )

        for index in range(PATIENTS):
            clients.append(ChatClient(url, token(tokens.Role.PATIENT, f"p{index}")))
        doctor = ChatClient(url, token(tokens.Role.DOCTOR, "d1", ("general",)))
        clients.append(doctor)
        await asyncio.gather(*(client.connect() for client in clients))

        async def every_patient_counted_once() -> bool:
            return sum(await connections_by_worker(metrics_base, "patient")) == PATIENTS

        await eventually(every_patient_counted_once)

        patient = clients[0]
        await doctor.set_status("available")
        await patient.join("general", "a cough", "18-39", "days")
        case = await doctor.take_next()
        await patient.next(f.Assigned)
        await patient.send(case.id, "hello")
        await doctor.send(case.id, "hello to you")
        assert [m.text for m in (await patient.wait_for_messages(case.id, 2)).in_order()] == [
            "hello",
            "hello to you",
        ]
    finally:
        await asyncio.gather(*(client.close() for client in clients))
        group.send_signal(signal.SIGTERM)
        assert await group.wait_exit() == 0
    for pid in worker_pids(group).values():
        assert not pid_alive(pid)


async def test_a_killed_worker_is_started_again_and_the_port_keeps_serving(
    tmp_path: Path,
) -> None:
    metrics_base = two_free_ports()
    group = await start_group(tmp_path, metrics_base)
    try:
        before = worker_pids(group)
        os.kill(before[0], signal.SIGKILL)
        exited = await group.wait_event("worker_exited")
        assert (int(exited["worker"]), int(exited["pid"])) == (0, before[0])
        assert exited["status"] == -signal.SIGKILL
        await group.wait_event("chatsvc_listening", count=WORKERS + 1)
        after = worker_pids(group)
        assert after[0] != before[0] and after[1] == before[1]
        assert pid_alive(after[0])
        url = str(group.named("chatsvc_listening")[0]["url"])
        async with aiohttp.ClientSession() as session:
            for _ in range(4):
                async with session.get(f"{url}/readyz") as response:
                    assert response.status == 200
    finally:
        group.send_signal(signal.SIGTERM)
        assert await group.wait_exit() == 0
    redis_pid = int((await group.wait_event("embedded_redis_started"))["pid"])
    assert not pid_alive(redis_pid)
    assert not any(pid_alive(pid) for pid in worker_pids(group).values())


async def test_a_worker_that_cannot_start_stops_the_service_with_a_reason(
    tmp_path: Path,
) -> None:
    metrics_base = two_free_ports()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", metrics_base + 1))
        taken.listen()
        config = write_config(
            tmp_path, f"[server]\nport = 0\nworker_metrics_port = {metrics_base}\n"
        )
        group = await GatewayProcess(config).start(
            "serve", "--workers", str(WORKERS), "--config", str(config)
        )
        try:
            assert await group.wait_exit(timeout=60) == 1
        finally:
            await group.kill()
    assert "worker 1 stopped with status 1 on its start" in group.output
    assert f"cannot listen on 127.0.0.1:{metrics_base + 1}" in group.output
    assert not any(pid_alive(pid) for pid in worker_pids(group).values())
