"""`chatsvc serve` as a real child process: start, readiness, restarts, signals, failures."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chatsvc import tokens
from chatsvc.embedded_redis import EmbeddedRedis
from tests.conftest import REDIS_BINARY, write_config
from tests.support.process import GatewayProcess, pid_alive

pytestmark = pytest.mark.subprocess
Spawn = Callable[..., Awaitable[GatewayProcess]]


async def _get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def _run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatsvc",
        *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_embedded_redis_serves_keeps_data_across_a_restart_and_stops_cleanly(
    tmp_path: Path, spawn_gateway: Spawn
) -> None:
    config = write_config(tmp_path)
    first = await spawn_gateway(config)
    url = await first.listening_url()
    await first.wait_event("redis_ready")
    assert await _get(f"{url}/readyz") == (200, {"status": "ready"})
    started = await first.wait_event("embedded_redis_started")
    redis_pid, socket_path = int(started["pid"]), str(started["socket"])
    assert Path(socket_path).parent == tmp_path / "data" / "redis"

    client = Redis(unix_socket_path=socket_path, decode_responses=True)
    await client.set("chatsvc:test:kept", "across restarts")
    created = await client.hget("chatsvc:{desk}:meta", "created_ms")
    await client.aclose()

    first.send_signal(signal.SIGTERM)
    assert await first.wait_exit() == 0
    assert first.named("chatsvc_stopping")[0]["signal"] == "SIGTERM"
    assert first.named("chatsvc_stopped")
    assert not pid_alive(redis_pid), "the embedded redis-server outlived chatsvc"
    assert "Traceback" not in first.output

    second = await spawn_gateway(config)
    second_url = await second.listening_url()
    await second.wait_event("redis_ready")
    assert await _get(f"{second_url}/readyz") == (200, {"status": "ready"})
    socket_path = str((await second.wait_event("embedded_redis_started"))["socket"])
    client = Redis(unix_socket_path=socket_path, decode_responses=True)
    assert await client.get("chatsvc:test:kept") == "across restarts"
    assert await client.hget("chatsvc:{desk}:meta", "created_ms") == created
    await client.aclose()

    second.send_signal(signal.SIGINT)  # Ctrl-C stops as cleanly as SIGTERM
    assert await second.wait_exit() == 0
    assert not pid_alive(int((await second.wait_event("embedded_redis_started"))["pid"]))


async def test_websocket_clients_are_told_1012_on_sigterm(
    tmp_path: Path, spawn_gateway: Spawn
) -> None:
    config = write_config(tmp_path)
    gateway = await spawn_gateway(config)
    url = await gateway.listening_url()
    await gateway.wait_event("redis_ready")
    status, token, err = await _run_cli(
        "token", "--config", str(config), "--role", "doctor", "--user", "dr.li", "--name", "Dr Li"
    )
    assert status == 0, err
    ws_url = url.replace("http://", "ws://") + "/ws"
    async with connect(ws_url, subprotocols=["chatsvc.json"]) as ws:
        await ws.send(json.dumps({"type": "hello", "id": "1", "token": token.strip()}))
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (welcome["type"], welcome["user_id"], welcome["role"]) == (
            "welcome",
            "dr.li",
            "doctor",
        )
        restored = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (restored["type"], restored["status"]) == ("status", "offline")
        gateway.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1012
    assert await gateway.wait_exit() == 0


async def test_unreachable_redis_is_retried_quietly_and_the_service_becomes_ready_when_it_comes_up(
    tmp_path: Path, spawn_gateway: Spawn, free_port: int
) -> None:
    body = (
        f'[redis]\nurl = "redis://127.0.0.1:{free_port}"\n'
        "connect_timeout_s = 1.0\nretry_max_backoff_s = 0.5\n"
    )
    gateway = await spawn_gateway(write_config(tmp_path, body))
    url = await gateway.listening_url()
    await gateway.wait_event("redis_unreachable", count=3)
    attempts = [event["attempt"] for event in gateway.named("redis_unreachable")]
    assert attempts[:3] == [1, 2, 3]
    first = gateway.named("redis_unreachable")[0]
    assert first["url"] == f"redis://127.0.0.1:{free_port}"
    assert first["retry_in_s"] > 0 and first["error"]
    status, body_json = await _get(f"{url}/readyz")
    assert status == 503 and body_json["reason"] == "redis_unreachable"

    with EmbeddedRedis(tmp_path / "late-redis", binary=REDIS_BINARY, tcp_port=free_port):
        await gateway.wait_event("redis_ready")
        assert await _get(f"{url}/readyz") == (200, {"status": "ready"})
        gateway.send_signal(signal.SIGTERM)
        assert await gateway.wait_exit() == 0
    assert "Traceback" not in gateway.output
    # One line per attempt: every line of output is a structured event.
    assert len(gateway.raw_lines) == len(gateway.events)


@pytest.mark.parametrize("command", ["serve", "check-config"])
async def test_a_typo_in_the_config_refuses_to_start_and_names_the_key(
    tmp_path: Path, command: str
) -> None:
    config = write_config(tmp_path, "[server]\nport = 0\nprot = 8080\n")
    status, out, err = await _run_cli(command, "--config", str(config))
    assert status == 2
    assert f"{config}: server.prot: unknown key" in err
    assert "Traceback" not in err


async def test_check_config_prints_what_would_be_used(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    status, out, _ = await _run_cli("check-config", "--config", str(config))
    assert status == 0
    assert f"configuration OK: {config}" in out
    assert str(tmp_path / "data") in out
    assert "department psych (push): Psychological counselling" in out


async def test_a_bad_environment_value_refuses_to_start_and_names_the_variable(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    status, _, err = await _run_cli(
        "serve", "--config", str(config), env={"CHATSVC_SERVER_PORT": "http"}
    )
    assert status == 2
    assert "environment variable CHATSVC_SERVER_PORT" in err


async def test_environment_variables_reach_the_running_service(
    tmp_path: Path, spawn_gateway: Spawn, free_port: int
) -> None:
    config = write_config(tmp_path)
    other_dir = tmp_path / "elsewhere"
    gateway = await spawn_gateway(
        config, {"CHATSVC_SERVER_PORT": str(free_port), "CHATSVC_DATA_DIR": str(other_dir)}
    )
    listening = await gateway.wait_event("chatsvc_listening")
    assert listening["port"] == free_port
    assert listening["data_dir"] == str(other_dir)
    await gateway.wait_event("redis_ready")
    assert (other_dir / "token_secret").exists()
    assert (other_dir / "redis" / "redis.conf").exists()


async def test_a_second_service_on_the_same_data_directory_is_refused(
    tmp_path: Path, spawn_gateway: Spawn
) -> None:
    config = write_config(tmp_path)
    first = await spawn_gateway(config)
    await first.wait_event("redis_ready")
    status, _, err = await _run_cli("serve", "--config", str(config))
    assert status == 1
    assert "in use by pid" in err
    assert (await _get(f"{await first.listening_url()}/readyz"))[0] == 200


async def test_a_taken_port_is_reported_and_the_embedded_redis_is_stopped(
    tmp_path: Path, spawn_gateway: Spawn
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gateway = await spawn_gateway(write_config(tmp_path, f"[server]\nport = {port}\n"))
        assert await gateway.wait_exit() == 1
    assert f"cannot listen on 127.0.0.1:{port}" in gateway.output
    redis_pid = int((await gateway.wait_event("embedded_redis_started"))["pid"])
    assert not pid_alive(redis_pid)


async def test_a_missing_redis_binary_says_how_to_get_one(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[redis]\nserver_binary = "/nonexistent/redis-server"\n')
    status, _, err = await _run_cli("serve", "--config", str(config))
    assert status == 1
    assert "/nonexistent/redis-server" in err and "not an executable" in err


async def test_demo_prints_working_sign_in_links_and_plain_serve_prints_none(
    tmp_path: Path, spawn_gateway: Spawn
) -> None:
    config = write_config(tmp_path)
    demo = await GatewayProcess(config).start("serve", "--demo", "--config", str(config))
    try:
        url = await demo.listening_url()
        await demo.wait_event("redis_ready")
        demo.send_signal(signal.SIGTERM)
        assert await demo.wait_exit() == 0
        printed = await demo.stdout()
    finally:
        await demo.kill()
    assert f"{url}/demo" in printed.split()
    secret = (tmp_path / "data" / "token_secret").read_text().strip()
    staff = re.findall(rf"{re.escape(url)}/(doctor|supervisor)#token=(\S+)", printed)
    roles = sorted(tokens.verify(secret, token, time.time()).role.value for _, token in staff)
    assert roles == ["doctor", "doctor", "supervisor"]
    assert "token=" not in demo.output, "a token reached the log"

    plain = await spawn_gateway(config)
    await plain.listening_url()
    plain.send_signal(signal.SIGTERM)
    assert await plain.wait_exit() == 0
    assert "token=" not in await plain.stdout()
