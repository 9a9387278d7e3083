"""What the Redis server is and can do, read once per connection.

chatsvc supports Redis 6.2 and newer and uses newer features only where the server has them;
callers ask `ServerInfo` rather than comparing version numbers themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from triage.errors import TriageError

MIN_VERSION = (6, 2, 0)


class UnsupportedServer(TriageError):
    """The Redis server is older than chatsvc supports, or evicts keys."""


@dataclass(frozen=True)
class ServerInfo:
    version: tuple[int, int, int]
    maxmemory_policy: str

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)

    @property
    def has_sharded_pubsub(self) -> bool:
        """SPUBLISH/SSUBSCRIBE arrived in Redis 7.0."""
        return self.version >= (7, 0, 0)


async def read_server_info(client: Redis) -> ServerInfo:
    server = await client.info("server")
    memory = await client.info("memory")
    version = tuple(int(part) for part in str(server["redis_version"]).split(".")[:3])
    info = ServerInfo(
        version=(version[0], version[1], version[2]),
        maxmemory_policy=str(memory.get("maxmemory_policy", "noeviction")),
    )
    if info.version < MIN_VERSION:
        raise UnsupportedServer(f"Redis {info.version_text} is too old: chatsvc needs 6.2 or newer")
    return info
