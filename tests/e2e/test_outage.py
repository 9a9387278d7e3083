"""A Redis outage longer than every grace period requeues nobody: after it, the gateway holds the
desk's timers until it has restated who is connected, and consultations go on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from chatsvc.config import Config, TriageConfig
from chatsvc.embedded_redis import EmbeddedRedis
from chatsvc.gateway.keys import CONTEXT, REDIS_LINK
from chatsvc.gateway.redis_link import LinkState
from chatsvc.protocol import frames as f
from tests.conftest import REDIS_BINARY, GatewayFactory
from tests.e2e.conftest import ROOMY_LIMITS, Desk
from tests.support.waiting import eventually
from triage import keys

PRESENCE_TTL_S = 2
PATIENT_GRACE_S = 2
# Redis stays away longer than both grace periods: without the hold, every timer would be due.
OUTAGE_S = PRESENCE_TTL_S + PATIENT_GRACE_S + 2


async def test_an_outage_longer_than_the_grace_periods_requeues_nobody(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", binary=REDIS_BINARY)
    server.start()
    try:
        config = Config(
            limits=ROOMY_LIMITS,
            triage=TriageConfig(presence_ttl_s=PRESENCE_TTL_S, patient_grace_s=PATIENT_GRACE_S),
        )
        desk = Desk(await make_gateway(config, url=server.url))
        try:
            await _outage(desk, server)
        finally:
            for client in desk.clients:
                await client.close()
    finally:
        server.stop()


async def _outage(desk: Desk, server: EmbeddedRedis) -> None:
    doctor = await desk.doctor("d1", capacity=2)
    patient = await desk.patient("p1")
    await patient.join("general", "a headache")
    case = await doctor.take_next()
    await patient.next(f.Assigned)
    await patient.send(case.id, "before")
    await doctor.wait_for_messages(case.id, 1)
    link = desk.gateway.app[REDIS_LINK]

    server.stop()
    await eventually(lambda: link.state is LinkState.UNREACHABLE, timeout=15)
    await asyncio.sleep(OUTAGE_S)  # the outage itself: longer than every grace period
    server.start()  # the same data directory: the AOF brings the desk back as it was
    await eventually(lambda: link.state is LinkState.READY, timeout=15)

    client = Redis.from_url(server.url, decode_responses=True)
    try:
        # The hold: set on reconnecting, before any sweep; then it lapses, and due timers fire.
        assert await client.exists(keys.presence_hold()) == 1
        await eventually(lambda: _gone(client, keys.presence_hold()), timeout=30)
        engine = desk.gateway.app[CONTEXT].link.engine
        await engine.fire_timers()  # whatever is still due now would fire
        record = await engine.consultation(case.id)
        assert (record.state.value, record.doctor_id) == ("active", "d1")
    finally:
        await client.aclose()
    await doctor.send(case.id, "after")
    await patient.send(case.id, "still here")
    for side in (patient, doctor):
        thread = await side.wait_for_messages(case.id, 3)
        assert [m.text for m in thread.in_order()] == ["before", "after", "still here"]
    assert not [frame for frame in patient.inbox if isinstance(frame, f.Released)]


async def _gone(client: Redis, key: str) -> bool:
    return await client.exists(key) == 0
