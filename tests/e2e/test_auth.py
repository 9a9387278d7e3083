"""Who may connect: tokens, their expiry and renewal, the Origin check, guest sessions."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import WSServerHandshakeError

from chatsvc import tokens
from chatsvc.client import ChatClient, ChatError
from chatsvc.config import AuthConfig, Config, ServerConfig
from chatsvc.protocol import frames as f
from chatsvc.protocol.session import EXPIRY_WARNING_S
from tests.e2e.conftest import Desk, DeskFactory, token_for

# A token this short is inside the expiry warning window from the start: warned at once.
SHORT_TTL_S = 3
assert SHORT_TTL_S < EXPIRY_WARNING_S


async def refused_hello(desk: Desk, token: str) -> tuple[str, int | None]:
    client = ChatClient(desk.ws_url, token)
    desk.clients.append(client)
    with pytest.raises(ChatError) as refused:
        await client.connect()
    with pytest.raises(ConnectionError):
        await client.next(f.Pong)
    return refused.value.code, client.close_code


async def test_an_expired_token_is_refused(desk: Desk) -> None:
    expired = tokens.issue(desk_secret(), tokens.Role.PATIENT, "p1", time.time() - 3600, ttl_s=60)
    assert await refused_hello(desk, expired) == ("auth_failed", 4001)


async def test_a_forged_token_is_refused(desk: Desk) -> None:
    forged = token_for(tokens.Role.DOCTOR, "d1", ("general",), secret="forger-" + "z" * 40)
    assert await refused_hello(desk, forged) == ("auth_failed", 4001)


async def test_after_a_secret_rollover_old_tokens_connect_until_the_old_secret_is_dropped(
    make_desk: DeskFactory,
) -> None:
    from tests.conftest import TEST_SECRET

    new_secret = "rolled-over-secret-" + "n" * 40
    old_token = token_for(tokens.Role.DOCTOR, "d1", ("general",))  # signed with TEST_SECRET
    rolled = Config(auth=AuthConfig(previous_token_secrets=(TEST_SECRET,)))
    desk = await make_desk(rolled, token_secret=new_secret)
    doctor = await desk.connect(old_token)
    assert (await doctor.ping()).ref is not None
    new_token = token_for(tokens.Role.PATIENT, "p1", secret=new_secret)
    patient = await desk.connect(new_token)
    assert patient.welcome is not None and patient.welcome.user_id == "p1"

    after = await make_desk(token_secret=new_secret)
    assert await refused_hello(after, old_token) == ("auth_failed", 4001)


def desk_secret() -> str:
    from tests.conftest import TEST_SECRET

    return TEST_SECRET


async def test_a_handshake_from_a_disallowed_origin_is_refused(make_desk: DeskFactory) -> None:
    desk = await make_desk(
        Config(server=ServerConfig(allowed_origins=("https://hospital.example",)))
    )
    with pytest.raises(WSServerHandshakeError) as refused:
        await desk.gateway.ws_connect("/ws", headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403

    for origin in ("https://hospital.example", f"http://{desk.gateway.host}:{desk.gateway.port}"):
        ws = await desk.gateway.ws_connect("/ws", headers={"Origin": origin})
        await ws.close()
    ws = await desk.gateway.ws_connect("/ws")  # not a browser: no Origin
    await ws.close()


async def test_the_socket_is_warned_then_closed_when_its_token_expires(desk: Desk) -> None:
    client = await desk.connect(token_for(tokens.Role.PATIENT, "p1", ttl=SHORT_TTL_S))
    warning = await client.next(f.TokenExpiring)
    assert warning.expires_at == client.welcome.expires_at  # type: ignore[union-attr]
    with pytest.raises(ConnectionError):
        await client.next(f.Pong, timeout=10)
    assert client.close_code == 4003


async def test_a_renewed_token_keeps_the_socket_open_past_the_old_expiry(desk: Desk) -> None:
    client = await desk.connect(token_for(tokens.Role.PATIENT, "p1", ttl=SHORT_TTL_S))
    old_expiry = (await client.next(f.TokenExpiring)).expires_at
    renewed = await client.renew(token_for(tokens.Role.PATIENT, "p1", ttl=600))
    assert renewed.expires_at > old_expiry
    await asyncio.sleep(max(0.0, old_expiry - time.time()) + 0.5)  # let the old expiry pass
    assert isinstance(await client.ping(), f.Pong)


async def test_a_renewal_for_another_user_is_refused_and_changes_nothing(desk: Desk) -> None:
    client = await desk.patient("p1")
    with pytest.raises(ChatError) as refused:
        await client.renew(token_for(tokens.Role.PATIENT, "p2"))
    assert refused.value.code == "renew_mismatch"
    with pytest.raises(ChatError) as refused:
        await client.renew(token_for(tokens.Role.DOCTOR, "p1", ("general",)))
    assert refused.value.code == "renew_mismatch"
    assert isinstance(await client.ping(), f.Pong)


async def test_a_guest_session_token_connects_as_a_patient(desk: Desk) -> None:
    response = await desk.gateway.post("/api/session")
    assert response.status == 201
    body = await response.json()
    assert body["role"] == "patient" and body["user_id"].startswith("g-")
    welcome = await desk.connect(body["token"])
    assert welcome.welcome is not None and welcome.welcome.user_id == body["user_id"]


async def test_guest_sessions_are_rate_limited_per_client_address(make_desk: DeskFactory) -> None:
    desk = await make_desk(Config(auth=AuthConfig(guest_sessions_per_minute=2)))
    statuses = [(await desk.gateway.post("/api/session")).status for _ in range(3)]
    assert statuses == [201, 201, 429]
    limited = await desk.gateway.post("/api/session")
    assert int(limited.headers["Retry-After"]) > 0
    # Without a configured proxy header, a client cannot claim another address.
    spoofed = await desk.gateway.post("/api/session", headers={"X-Forwarded-For": "10.9.9.9"})
    assert spoofed.status == 429


async def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_limit(
    make_desk: DeskFactory,
) -> None:
    config = Config(
        server=ServerConfig(trusted_proxy_header="X-Forwarded-For"),
        auth=AuthConfig(guest_sessions_per_minute=1),
    )
    desk = await make_desk(config)

    async def post(chain: str) -> int:
        response = await desk.gateway.post("/api/session", headers={"X-Forwarded-For": chain})
        return response.status

    assert await post("1.1.1.1, 10.0.0.1") == 201
    assert await post("2.2.2.2, 10.0.0.1") == 429  # the rightmost hop is what the proxy saw
    assert await post("1.1.1.1, 10.0.0.2") == 201
