"""Durability modes against real servers: what each refuses, and `replica` mode's WAIT.

A master and a replica are two private redis-servers; a replica that stops answering is a
SIGSTOPped process, so WAIT really times out.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from chatsvc.embedded_redis import EmbeddedRedis
from tests.conftest import REDIS_BINARY
from tests.support.waiting import eventually
from triage import keys
from triage.durability import (
    AckAfter,
    Durability,
    NotReplicated,
    UnsafeDurability,
    check_server,
)
from triage.scripts import Scripts
from triage.transcripts import Transcripts, transcript_keys

# Generous: a replica on a busy two-core machine may take a while to send its ACK.
REPLICA = Durability(AckAfter.REPLICA, replicas=1, wait_timeout_ms=2000)
CONSULTATION = "c-durable"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Pair:
    master: EmbeddedRedis
    replica: EmbeddedRedis
    client: Redis  # on the master
    replica_client: Redis

    @contextmanager
    def replica_stopped(self) -> Iterator[None]:
        """The replica process frozen: connected, but acknowledging nothing."""
        assert self.replica.pid is not None
        os.kill(self.replica.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.replica.pid, signal.SIGCONT)

    async def in_sync(self) -> bool:
        replication = await self.replica_client.info("replication")
        return replication.get("master_link_status") == "up"


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    master = EmbeddedRedis(tmp_path / "master", binary=REDIS_BINARY, tcp_port=free_port())
    replica = EmbeddedRedis(tmp_path / "replica", binary=REDIS_BINARY)
    master.start()
    replica.start()
    client = Redis.from_url(master.url, decode_responses=True)
    replica_client = Redis.from_url(replica.url, decode_responses=True)
    try:
        # Start the first sync at once (Redis 7 waits 5 s for more replicas by default), and
        # let the master stop without waiting for its replica (Redis 7 waits up to 10 s).
        await client.config_set("repl-diskless-sync-delay", 0)
        with suppress(ResponseError):  # no such setting before Redis 7
            await client.config_set("shutdown-timeout", 0)
        await replica_client.replicaof("127.0.0.1", master.tcp_port)
        pair = Pair(master, replica, client, replica_client)
        await eventually(pair.in_sync)
        yield pair
    finally:
        if replica.pid is not None:
            # A throwaway: a replica that just synced takes its time to stop (seen: 10 s).
            os.kill(replica.pid, signal.SIGKILL)
        await client.aclose()
        await replica_client.aclose()
        replica.stop()
        master.stop()


async def test_fsync_mode_refuses_a_redis_that_does_not_fsync_every_write(
    everysec_redis: EmbeddedRedis,
) -> None:
    client = Redis.from_url(everysec_redis.url, decode_responses=True)
    try:
        with pytest.raises(UnsafeDurability, match="appendfsync everysec"):
            await check_server(client, Durability(AckAfter.FSYNC))
        await check_server(client, Durability(AckAfter.WRITE))  # promises no fsync: fine
        await client.config_set("appendfsync", "always")
        await check_server(client, Durability(AckAfter.FSYNC))
    finally:
        await client.aclose()


async def test_replica_mode_refuses_a_redis_without_enough_replicas(pair: Pair) -> None:
    await check_server(pair.client, REPLICA)
    with pytest.raises(UnsafeDurability, match="needs 2 connected replica"):
        await check_server(pair.client, Durability(AckAfter.REPLICA, replicas=2))
    with pytest.raises(UnsafeDurability, match="master's URL"):
        await check_server(pair.replica_client, REPLICA)


async def open_transcript(client: Redis) -> Transcripts:
    transcripts = Transcripts(client, Scripts(client, REPLICA), max_body_chars=1000)
    await transcripts.open(CONSULTATION, {"p1": "patient", "d1": "doctor"})
    return transcripts


async def test_an_acknowledged_message_is_already_on_the_replica(pair: Pair) -> None:
    transcripts = await open_transcript(pair.client)
    stored = await transcripts.append(CONSULTATION, "p1", "m-1", "text", "hello")
    # No waiting here: WAIT returned only once the replica had the write.
    on_replica = await pair.replica_client.xlen(keys.transcript_stream(CONSULTATION))
    assert (stored.seq, on_replica) == (1, 1)


async def test_a_message_no_replica_confirms_is_not_acknowledged_and_its_retry_is_stored_once(
    pair: Pair,
) -> None:
    transcripts = await open_transcript(pair.client)
    with pair.replica_stopped():
        with pytest.raises(NotReplicated) as refused:
            await transcripts.append(CONSULTATION, "p1", "m-1", "text", "hello")
        assert (refused.value.confirmed, refused.value.wanted) == (0, 1)
    retried = await transcripts.append(CONSULTATION, "p1", "m-1", "text", "hello")
    assert (retried.seq, retried.duplicate) == (1, True)
    assert await pair.client.xlen(keys.transcript_stream(CONSULTATION)) == 1


async def test_a_batch_of_messages_is_confirmed_or_refused_as_a_whole(pair: Pair) -> None:
    transcripts = await open_transcript(pair.client)
    with pair.replica_stopped():
        sends = [
            transcripts.append(CONSULTATION, "p1", f"m-{n}", "text", f"message {n}")
            for n in range(5)
        ]
        results = await asyncio.gather(*sends, return_exceptions=True)
        assert all(isinstance(result, NotReplicated) for result in results)
    confirmed = await asyncio.gather(
        *(
            transcripts.append(CONSULTATION, "p1", f"m-{n}", "text", f"message {n}")
            for n in range(5)
        )
    )
    assert [result.seq for result in confirmed] == [1, 2, 3, 4, 5]
    assert all(result.duplicate for result in confirmed)


async def test_an_unbatched_script_call_waits_for_its_replica_too(pair: Pair) -> None:
    scripts = Scripts(pair.client, REPLICA)
    participants = json.dumps({"p1": "patient"})
    call = ("transcript_open", transcript_keys(CONSULTATION), ["", participants])
    with pair.replica_stopped(), pytest.raises(NotReplicated):
        await scripts.run(*call)
    assert (await scripts.run(*call))[0] == "ok"  # type: ignore[index]
    assert await pair.replica_client.hget(keys.transcript_meta(CONSULTATION), "p:p1") == "patient"
