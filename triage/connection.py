"""How the engine's Redis clients are built: one pool per process, waiting (not failing) when
every connection is busy.

redis-py's default pool raises "Too many connections" past 100 concurrent commands; a gateway
at surge runs thousands of sockets, so callers wait for a free connection instead (bounded by
`pool_timeout_s`). Replies are decoded as UTF-8 text.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

# Enough to keep one Redis core busy from one process; more only adds context switches.
DEFAULT_MAX_CONNECTIONS = 64
# A command waits this long for a free connection before failing.
DEFAULT_POOL_TIMEOUT_S = 5.0
# Per-command socket timeout; blocking reads (XREAD BLOCK) must stay below it.
DEFAULT_COMMAND_TIMEOUT_S = 5.0


def connect(
    url: str,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout_s: float = DEFAULT_POOL_TIMEOUT_S,
    connect_timeout_s: float = 5.0,
    command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=command_timeout_s,
        # A command whose connection broke is retried on a fresh one; engine mutations are
        # idempotent by request id, so a retried write cannot apply twice.
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=2),
        health_check_interval=30,
        decode_responses=True,
    )
    return Redis(connection_pool=pool)
