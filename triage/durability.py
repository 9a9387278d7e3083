"""What an acknowledgement promises: after which point a stored message or a match is confirmed.

`ack_after` is one of:
- `write`: Redis has applied the script (in memory). A Redis crash may lose the last second or
  more, as its persistence allows.
- `fsync`: as `write`, on a Redis whose append-only file is fsynced before every reply
  (`appendonly yes`, `appendfsync always`): acknowledged writes survive a crash of Redis or its
  machine, not the loss of its disk.
- `replica`: as `write`, and then `WAIT <replicas> <timeout>` in the same pipeline, on the same
  connection, to the same server, confirmed that many replicas received it. Replication is
  asynchronous: a failover can still lose acknowledged writes in rare cases; WAIT narrows the
  window, it does not close it.

`check_server` refuses a Redis that cannot keep the promise; `wait_command` and `confirm` are what
the script runners add to each call in `replica` mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from triage.errors import TriageError


class AckAfter(StrEnum):
    WRITE = "write"  # applied in Redis's memory
    FSYNC = "fsync"  # and on disk before Redis replied (appendfsync always)
    REPLICA = "replica"  # and received by `replicas` replicas (WAIT)


@dataclass(frozen=True)
class Durability:
    ack_after: AckAfter = AckAfter.FSYNC
    replicas: int = 1
    wait_timeout_ms: int = 1000

    @property
    def waits(self) -> bool:
        return self.ack_after is AckAfter.REPLICA

    def wait_args(self) -> tuple[str, int, int]:
        return ("WAIT", self.replicas, self.wait_timeout_ms)


class UnsafeDurability(TriageError):
    """The Redis cannot keep the configured promise (no fsync on every write, no replica)."""


class NotReplicated(TriageError, RedisError):
    """`replica` mode: a write was applied but too few replicas confirmed it in time, so it is
    not acknowledged. It is a RedisError too: to its caller the desk's durable store is
    unavailable (clients get `unavailable` and retry with the same id; the write is idempotent,
    so the retry stores nothing twice and waits for the confirmation again)."""

    def __init__(self, confirmed: int, wanted: int) -> None:
        super().__init__(
            f"only {confirmed} of {wanted} replicas confirmed the write in time; not acknowledged"
        )
        self.confirmed = confirmed
        self.wanted = wanted


def confirm(durability: Durability, confirmed: object) -> None:
    """Raise NotReplicated unless WAIT's reply reaches the wanted number of replicas."""
    count = int(confirmed) if isinstance(confirmed, int | str) else 0
    if count < durability.replicas:
        raise NotReplicated(count, durability.replicas)


async def check_server(client: Redis, durability: Durability) -> None:
    """Raise UnsafeDurability when this Redis cannot keep `durability`'s promise."""
    if durability.ack_after is AckAfter.FSYNC:
        try:
            # One parameter per CONFIG GET: Redis 6.2 takes no more.
            settings = {
                **await client.config_get("appendonly"),
                **await client.config_get("appendfsync"),
            }
        except ResponseError as error:  # CONFIG renamed or refused, as some providers do
            raise UnsafeDurability(
                f"[redis] ack_after = 'fsync' needs CONFIG GET appendfsync to check the server"
                f" ({error}); if your provider fsyncs every write, set ack_after = 'write'"
            ) from None
        appendonly, appendfsync = settings.get("appendonly"), settings.get("appendfsync")
        if appendonly != "yes" or appendfsync != "always":
            raise UnsafeDurability(
                f"[redis] ack_after = 'fsync' needs appendonly yes and appendfsync always; this"
                f" Redis runs appendonly {appendonly} and appendfsync {appendfsync}: change them"
                f" (CONFIG SET, and in its redis.conf) or set ack_after = 'write'"
            )
    elif durability.ack_after is AckAfter.REPLICA:
        replication = await client.info("replication")
        if replication.get("role") != "master":
            raise UnsafeDurability("[redis] ack_after = 'replica' needs the master's URL")
        connected = int(replication.get("connected_slaves", 0))
        if connected < durability.replicas:
            raise UnsafeDurability(
                f"[redis] ack_after = 'replica' needs {durability.replicas} connected"
                f" replica(s); this Redis has {connected}"
            )
