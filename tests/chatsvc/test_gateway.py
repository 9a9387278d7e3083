"""The gateway in-process over real sockets: health, readiness, request ids, /ws and shutdown."""

from __future__ import annotations

import json
import time

import msgpack
from aiohttp import WSMsgType
from redis.asyncio import Redis

from chatsvc import tokens
from chatsvc.config import DEFAULT_NOTICE, Config, LimitsConfig, RedisConfig, TriageConfig
from chatsvc.gateway.keys import CONNECTIONS, REDIS_LINK
from chatsvc.gateway.redis_link import LinkState
from chatsvc.protocol.errors import CloseCode
from tests.conftest import TEST_SECRET, GatewayFactory
from tests.support.waiting import eventually
from triage import events
from triage.models import DoctorStatus, Urgency
from triage.records import Intake


def _token(
    role: tokens.Role = tokens.Role.DOCTOR,
    user: str = "d1",
    ttl: int = 600,
    departments: tuple[str, ...] = (),
) -> str:
    name = "" if role is tokens.Role.PATIENT else "Dr One"
    return tokens.issue(
        TEST_SECRET, role, user, time.time(), ttl, name=name, departments=departments
    )


def _notice(lang: str) -> str:
    return DEFAULT_NOTICE[lang].replace("{number}", "120")


async def test_healthz_answers_ok(make_gateway: GatewayFactory) -> None:
    client = await make_gateway()
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_is_ready_once_redis_answers_and_scripts_are_loaded(
    make_gateway: GatewayFactory, redis: Redis
) -> None:
    client = await make_gateway()
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready"}
    link = client.app[REDIS_LINK]
    assert await link.scripts.all_loaded()
    assert await redis.hget("chatsvc:{desk}:meta", "schema_version") == "1"


async def test_readyz_says_not_ready_while_redis_is_unreachable(
    make_gateway: GatewayFactory, free_port: int
) -> None:
    config = Config(redis=RedisConfig(connect_timeout_s=0.5, retry_max_backoff_s=0.5))
    client = await make_gateway(config, url=f"redis://127.0.0.1:{free_port}", wait_ready=False)
    link = client.app[REDIS_LINK]
    await eventually(lambda: link.state is LinkState.UNREACHABLE)
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "not_ready"
    assert body["reason"] == "redis_unreachable"
    assert "refused" in body["detail"].lower() or "connect" in body["detail"].lower()
    health = await client.get("/healthz")
    assert health.status == 200


async def test_scripts_flushed_by_a_redis_restart_are_loaded_again(
    make_gateway: GatewayFactory, redis: Redis, monkeypatch: object
) -> None:
    import chatsvc.gateway.redis_link as redis_link

    monkeypatch.setattr(redis_link, "WATCH_INTERVAL_S", 0.05)  # type: ignore[attr-defined]
    client = await make_gateway()
    link = client.app[REDIS_LINK]
    await redis.script_flush()
    assert not await link.scripts.all_loaded()
    await eventually(link.scripts.all_loaded)
    assert (await client.get("/readyz")).status == 200


async def test_an_evicting_redis_is_refused(make_gateway: GatewayFactory, redis: Redis) -> None:
    await redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        client = await make_gateway(wait_ready=False)
        link = client.app[REDIS_LINK]
        await eventually(lambda: link.state is LinkState.UNUSABLE)
        body = await (await client.get("/readyz")).json()
        assert body["reason"] == "redis_unusable"
        assert "noeviction" in body["detail"]
    finally:
        await redis.config_set("maxmemory-policy", "noeviction")


async def test_a_newer_schema_in_redis_is_refused(
    make_gateway: GatewayFactory, redis: Redis
) -> None:
    await redis.hset("chatsvc:{desk}:meta", mapping={"schema_version": 99, "created_ms": 1})
    client = await make_gateway(wait_ready=False)
    link = client.app[REDIS_LINK]
    await eventually(lambda: link.state is LinkState.UNUSABLE)
    assert "schema version 99" in link.detail


async def test_every_response_carries_a_request_id(make_gateway: GatewayFactory) -> None:
    client = await make_gateway()
    generated = await client.get("/healthz")
    assert len(generated.headers["X-Request-Id"]) == 32
    kept = await client.get("/healthz", headers={"X-Request-Id": "lb-1234"})
    assert kept.headers["X-Request-Id"] == "lb-1234"
    missing = await client.get("/no-such-page")
    assert missing.status == 404
    assert missing.headers["X-Request-Id"]


async def test_ws_hello_with_a_valid_token_is_welcomed(make_gateway: GatewayFactory) -> None:
    client = await make_gateway()
    async with client.ws_connect("/ws", protocols=["chatsvc.json"]) as ws:
        assert ws.protocol == "chatsvc.json"
        token = _token(departments=("psych",))
        await ws.send_str(json.dumps({"type": "hello", "id": "h1", "token": token}))
        welcome = json.loads(await ws.receive_str(timeout=5))
        assert welcome == {
            "type": "welcome",
            "protocol": 1,
            "role": "doctor",
            "user_id": "d1",
            "name": "Dr One",
            "expires_at": welcome["expires_at"],
            # Staff see their own departments, and no emergency notice.
            "departments": [
                {"id": "psych", "name": "Psychological counselling", "routing": "push"}
            ],
            "emergency": None,
            "ref": "h1",
        }
        assert welcome["expires_at"] > time.time()


async def test_ws_msgpack_connection_speaks_binary_frames(make_gateway: GatewayFactory) -> None:
    client = await make_gateway()
    async with client.ws_connect("/ws", protocols=["chatsvc.msgpack"]) as ws:
        assert ws.protocol == "chatsvc.msgpack"
        token = _token(tokens.Role.PATIENT, "p1")
        await ws.send_bytes(msgpack.packb({"type": "hello", "token": token}))
        welcome = msgpack.unpackb(await ws.receive_bytes(timeout=5))
        assert (welcome["type"], welcome["role"], welcome["user_id"], welcome["name"]) == (
            "welcome",
            "patient",
            "p1",
            "",
        )
        # Patients see every department of the desk and the not-for-emergencies notice.
        assert [d["id"] for d in welcome["departments"]] == ["general", "paediatrics", "psych"]
        assert welcome["emergency"] == {"number": "120", "text": _notice("en")}
        assert welcome["ref"] is None
        await ws.send_bytes(msgpack.packb({"type": "ping", "id": "p"}))
        assert msgpack.unpackb(await ws.receive_bytes(timeout=5)) == {"type": "pong", "ref": "p"}


async def test_ws_patient_is_told_the_notice_in_their_language(
    make_gateway: GatewayFactory,
) -> None:
    client = await make_gateway()
    for lang, expected in (("zh-CN", _notice("zh")), ("fr", _notice("en"))):
        async with client.ws_connect("/ws") as ws:
            hello = {"type": "hello", "token": _token(tokens.Role.PATIENT, "p1"), "lang": lang}
            await ws.send_str(json.dumps(hello))
            welcome = json.loads(await ws.receive_str(timeout=5))
            assert welcome["emergency"] == {"number": "120", "text": expected}, lang


async def test_ws_frame_before_hello_gets_an_error_and_the_socket_closes(
    make_gateway: GatewayFactory,
) -> None:
    client = await make_gateway()
    async with client.ws_connect("/ws") as ws:
        await ws.send_str(json.dumps({"type": "ping", "id": "x"}))
        error = json.loads(await ws.receive_str(timeout=5))
        assert error["type"] == "error"
        assert (error["code"], error["ref"]) == ("not_authenticated", "x")
        closing = await ws.receive(timeout=5)
        assert closing.type is WSMsgType.CLOSE
        assert ws.close_code == CloseCode.AUTH_FAILED


async def test_ws_hello_with_a_forged_token_is_refused(make_gateway: GatewayFactory) -> None:
    client = await make_gateway()
    forged = tokens.issue(
        "another-secret-" + "y" * 32, tokens.Role.SUPERVISOR, "s1", time.time(), 60
    )
    async with client.ws_connect("/ws") as ws:
        await ws.send_str(json.dumps({"type": "hello", "id": "h", "token": forged}))
        error = json.loads(await ws.receive_str(timeout=5))
        assert (error["code"], error["ref"]) == ("auth_failed", "h")
        await ws.receive(timeout=5)
        assert ws.close_code == CloseCode.AUTH_FAILED


async def test_ws_bad_frames_after_hello_get_errors_and_the_connection_keeps_serving(
    make_gateway: GatewayFactory,
) -> None:
    config = Config(limits=LimitsConfig(max_frame_bytes=1024))
    client = await make_gateway(config)
    async with client.ws_connect("/ws") as ws:
        await ws.send_str(json.dumps({"type": "hello", "token": _token()}))
        assert json.loads(await ws.receive_str(timeout=5))["type"] == "welcome"
        assert json.loads(await ws.receive_str(timeout=5))["type"] == "status"  # the restore
        bad_frames = [
            ("{not json", "bad_frame", None),
            (json.dumps({"type": "teleport", "id": "t1"}), "bad_frame", "t1"),
            (json.dumps({"type": "ping", "id": "p1", "extra": 1}), "bad_frame", "p1"),
            (json.dumps({"type": "ping", "id": "z", "pad": "x" * 2000}), "frame_too_large", None),
        ]
        for raw, code, ref in bad_frames:
            await ws.send_str(raw)
            error = json.loads(await ws.receive_str(timeout=5))
            assert (error["type"], error["code"], error["ref"]) == ("error", code, ref), raw
        await ws.send_bytes(b"\x81\xa4type\xa4ping")
        wrong_kind = json.loads(await ws.receive_str(timeout=5))
        assert wrong_kind["code"] == "bad_frame"
        await ws.send_str(json.dumps({"type": "ping", "id": "still-here"}))
        assert json.loads(await ws.receive_str(timeout=5)) == {"type": "pong", "ref": "still-here"}


async def test_ws_silent_client_is_closed_after_the_hello_timeout(
    make_gateway: GatewayFactory, monkeypatch: object
) -> None:
    import chatsvc.gateway.ws as ws_module

    monkeypatch.setattr(ws_module, "HELLO_TIMEOUT_S", 0.2)  # type: ignore[attr-defined]
    client = await make_gateway()
    async with client.ws_connect("/ws") as ws:
        message = await ws.receive(timeout=5)
        assert message.type is WSMsgType.CLOSE
        assert ws.close_code == CloseCode.AUTH_TIMEOUT


async def test_shutdown_closes_every_websocket_with_service_restart(
    make_gateway: GatewayFactory,
) -> None:
    client = await make_gateway()
    sockets = [await client.ws_connect("/ws") for _ in range(3)]
    for ws in sockets[:2]:
        await ws.send_str(json.dumps({"type": "hello", "token": _token()}))
        await ws.receive_str(timeout=5)  # welcome
        await ws.receive_str(timeout=5)  # the restore's status
    await eventually(lambda: len(client.app[CONNECTIONS]) == 3)
    await client.server.close()  # runs on_shutdown, as SIGTERM does in `chatsvc serve`
    for ws in sockets:
        message = await ws.receive(timeout=5)
        assert message.type is WSMsgType.CLOSE
        assert message.data == CloseCode.SERVICE_RESTART  # the code the server sent
    assert len(client.app[CONNECTIONS]) == 0


async def test_the_gateway_fires_due_timers_by_itself(
    make_gateway: GatewayFactory, redis: Redis
) -> None:
    config = Config(triage=TriageConfig(presence_ttl_s=1))
    client = await make_gateway(config)
    engine = client.app[REDIS_LINK].engine
    start = await events.last_id(redis)
    await engine.set_status("d1", DoctorStatus.AVAILABLE, "Dr One", ["general"], 2)
    # No heartbeat follows: the sweeper must notice the lapse without anyone asking.
    lapsed = None
    after = start
    while lapsed is None:
        batch = await events.read(redis, after=after, block_ms=5000)
        assert batch, "no presence lapse within 5 s of the deadline"
        after = batch[-1].id
        lapsed = next((e for e in batch if e.data.get("reason") == "presence_lapsed"), None)
    assert lapsed.data["doctor"] == "d1"
    doctor = await engine.doctor("d1")
    assert doctor is not None and doctor.status is DoctorStatus.OFFLINE


async def test_the_desk_gets_the_configured_departments_and_red_flags(
    make_gateway: GatewayFactory, redis: Redis
) -> None:
    client = await make_gateway()
    engine = client.app[REDIS_LINK].engine
    assert await redis.hgetall("chatsvc:{desk}:departments") == {
        "general": "pull",
        "paediatrics": "pull",
        "psych": "push",
    }
    urgency, flags = engine.triage("general", Intake(symptoms="我胸痛两天了"))
    assert urgency is Urgency.EMERGENCY and flags[0].phrase == "胸痛"
