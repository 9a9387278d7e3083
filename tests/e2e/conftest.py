"""A live desk for end-to-end tests: a real gateway on a real socket, real Redis, and factories
for connected patients, doctors and supervisors speaking the protocol through chatsvc.client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp.test_utils import TestClient

from chatsvc import tokens
from chatsvc.client import ChatClient
from chatsvc.config import Config, LimitsConfig
from chatsvc.protocol.codec import Encoding
from tests.conftest import TEST_SECRET, GatewayFactory


def token_for(
    role: tokens.Role,
    user: str,
    departments: tuple[str, ...] = (),
    capacity: int = 0,
    ttl: int = 600,
    name: str = "",
    secret: str = TEST_SECRET,
) -> str:
    return tokens.issue(
        secret, role, user, time.time(), ttl, name=name, departments=departments, capacity=capacity
    )


@dataclass
class Desk:
    """One gateway and the clients a test connected to it (closed at teardown)."""

    gateway: TestClient
    clients: list[ChatClient] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return str(self.gateway.make_url("/ws")).replace("http://", "ws://", 1)

    async def connect(
        self, token: str, encoding: Encoding = Encoding.JSON, lang: str = ""
    ) -> ChatClient:
        client = ChatClient(self.ws_url, token, encoding=encoding, lang=lang)
        self.clients.append(client)
        await client.connect()
        return client

    async def patient(
        self, user: str, encoding: Encoding = Encoding.JSON, lang: str = ""
    ) -> ChatClient:
        return await self.connect(token_for(tokens.Role.PATIENT, user), encoding, lang)

    async def doctor(
        self,
        user: str,
        departments: tuple[str, ...] = ("general",),
        capacity: int = 3,
        encoding: Encoding = Encoding.JSON,
        available: bool = True,
    ) -> ChatClient:
        token = token_for(
            tokens.Role.DOCTOR, user, departments, capacity, name=f"Dr {user.upper()}"
        )
        client = await self.connect(token, encoding)
        if available:
            await client.set_status("available")
        return client

    async def supervisor(self, user: str, departments: tuple[str, ...]) -> ChatClient:
        return await self.connect(token_for(tokens.Role.SUPERVISOR, user, departments))


DeskFactory = Callable[..., Awaitable[Desk]]
# Tests send bursts no person types: room for them under the per-connection frame rate.
ROOMY_LIMITS = LimitsConfig(frames_per_second=1000, frame_burst=1000)


@pytest.fixture
async def make_desk(make_gateway: GatewayFactory) -> AsyncIterator[DeskFactory]:
    desks: list[Desk] = []

    async def make(config: Config | None = None, token_secret: str = TEST_SECRET) -> Desk:
        gateway = await make_gateway(
            config or Config(limits=ROOMY_LIMITS), token_secret=token_secret
        )
        desk = Desk(gateway)
        desks.append(desk)
        return desk

    yield make
    for desk in desks:
        for client in desk.clients:
            await client.close()


@pytest.fixture
async def desk(make_desk: DeskFactory) -> Desk:
    return await make_desk()
