"""A gateway never serves the desk from a Redis that cannot keep `[redis] ack_after`'s promise."""

from __future__ import annotations

from chatsvc.config import Config, RedisConfig
from chatsvc.embedded_redis import EmbeddedRedis
from tests.conftest import GatewayFactory
from tests.support.waiting import eventually


async def test_fsync_acks_are_refused_on_a_redis_that_fsyncs_every_second(
    make_gateway: GatewayFactory, everysec_redis: EmbeddedRedis
) -> None:
    gateway = await make_gateway(url=everysec_redis.url, wait_ready=False)
    seen: dict[str, object] = {}

    async def refused() -> bool:
        response = await gateway.get("/readyz")
        seen.update(await response.json(), status_code=response.status)
        return seen.get("reason") == "redis_unusable"

    await eventually(refused)
    assert seen["status_code"] == 503
    assert "appendfsync everysec" in str(seen["detail"])
    assert "ack_after" in str(seen["detail"])


async def test_write_acks_are_served_by_a_redis_that_fsyncs_every_second(
    make_gateway: GatewayFactory, everysec_redis: EmbeddedRedis
) -> None:
    config = Config(redis=RedisConfig(ack_after="write"))
    gateway = await make_gateway(config, url=everysec_redis.url)
    response = await gateway.get("/readyz")
    assert (response.status, await response.json()) == (200, {"status": "ready"})
