"""The gateway's link to the desk's Redis: connect with back-off, watch, and say if it is ready.

The service answers HTTP from the first second; this link connects in the background, retrying
with capped exponential back-off and one log line per failed attempt, and is "ready" only once
Redis answers, is a version chatsvc supports, has every triage script loaded and the desk is
stamped. A watch loop then pings on an interval and reloads scripts that a Redis restart
flushed, so readiness keeps telling the truth after start.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatsvc.gateway.cancellation import stop_if_cancelled
from triage.connection import connect
from triage.desk import DeskInfo
from triage.durability import Durability, check_server
from triage.engine import DeskRules, Engine
from triage.errors import TriageError
from triage.presence import Presence
from triage.scripts import Scripts
from triage.server import ServerInfo, read_server_info
from triage.transcripts import Transcripts

log = structlog.get_logger(__name__)

# First retry after half a second: a Redis that is just starting is usually up by then.
BACKOFF_BASE_S = 0.5
# How often a ready link pings Redis to notice a lost server between requests.
WATCH_INTERVAL_S = 2.0
# A ping slower than this counts as unreachable for readiness.
READY_PING_TIMEOUT_S = 1.0
# Connections for delivery reads (the fanout's pumps and position checks).
DELIVERY_CONNECTIONS = 16
# After an outage, timers and reaping wait this long for every gateway to restate presence:
# a lease period (chatsvc.gateway.presence.LEASE_TTL_S), in which each renews at least twice.
RECOVERY_HOLD_S = 10.0
# Evicting a key could drop a waiting patient or a message: never run on such a Redis.
SAFE_MAXMEMORY_POLICIES = frozenset({"noeviction"})


class LinkState(StrEnum):
    CONNECTING = "connecting"
    READY = "ready"
    UNREACHABLE = "redis_unreachable"
    # reachable, but too old, evicting, a newer schema, or short of the durability configured
    UNUSABLE = "redis_unusable"
    CLOSED = "closed"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    state: LinkState
    detail: str = ""


def redact_url(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def backoff_delay(attempt: int, cap_s: float) -> float:
    """Capped exponential back-off with full jitter in the upper half (attempt counts from 1)."""
    ceiling = min(cap_s, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return ceiling / 2 + random.random() * ceiling / 2


class RedisLink:
    """Owns the Redis client of one gateway process and its readiness."""

    def __init__(
        self,
        url: str,
        rules: DeskRules,
        connect_timeout_s: float,
        max_backoff_s: float,
        max_message_chars: int = 4000,
        durability: Durability | None = None,
    ) -> None:
        self.url = url
        self.durability = durability or Durability()
        self.rules = rules
        self.max_backoff_s = max_backoff_s
        self.client: Redis = connect(url, connect_timeout_s=connect_timeout_s)
        self.scripts = Scripts(self.client, self.durability)
        self.engine = Engine(self.client, self.scripts, rules)
        self.transcripts = Transcripts(self.client, self.scripts, max_body_chars=max_message_chars)
        # Delivery reads on a pool of their own: at surge, commands queueing for the main pool
        # must not hold back the reads that deliver what those commands stored.
        self.delivery_client: Redis = connect(
            url, max_connections=DELIVERY_CONNECTIONS, connect_timeout_s=connect_timeout_s
        )
        self.delivery_transcripts = Transcripts(
            self.delivery_client, self.scripts, max_body_chars=max_message_chars
        )
        self.state = LinkState.CONNECTING
        self.detail = ""
        self.server: ServerInfo | None = None
        self.desk: DeskInfo | None = None
        self._ready_event = asyncio.Event()
        self.generation = 0

    async def wait_ready(self) -> None:
        await self._ready_event.wait()

    async def run(self) -> None:
        """Connect, then watch; on any failure, back off and start again. Runs until cancelled."""
        attempt = 0
        while True:
            stop_if_cancelled()
            try:
                await self._connect()
                attempt = 0
                await self._watch()
            except (RedisError, OSError) as error:
                stop_if_cancelled()
                attempt += 1
                self._set_not_ready(LinkState.UNREACHABLE, _short(error))
            except TriageError as error:
                stop_if_cancelled()
                attempt += 1
                self._set_not_ready(LinkState.UNUSABLE, str(error))
            delay = backoff_delay(attempt, self.max_backoff_s)
            log.warning(
                self.state.value,
                url=redact_url(self.url),
                attempt=attempt,
                error=self.detail,
                retry_in_s=round(delay, 2),
            )
            await asyncio.sleep(delay)

    async def _connect(self) -> None:
        await self.client.ping()
        server = await read_server_info(self.client)
        if server.maxmemory_policy not in SAFE_MAXMEMORY_POLICIES:
            raise _EvictingServer(server.maxmemory_policy)
        await check_server(self.client, self.durability)
        await self.scripts.load_all()
        if self.generation > 0:
            # Back after an outage: nobody could renew presence meanwhile, so hold timers and
            # reaping (before this process's own sweeper runs) until gateways restate it.
            await Presence(self.client, self.scripts, self.rules).hold(RECOVERY_HOLD_S)
        self.desk = await self.engine.init()
        self.server = server
        self.state, self.detail = LinkState.READY, ""
        self.generation += 1  # each (re)connection: state held for this link may be stale
        self._ready_event.set()
        log.info(
            "redis_ready",
            url=redact_url(self.url),
            redis_version=server.version_text,
            scripts=len(self.scripts),
            schema_version=self.desk.schema_version,
        )

    async def _watch(self) -> None:
        while True:
            stop_if_cancelled()
            await asyncio.sleep(WATCH_INTERVAL_S)
            await self.client.ping()
            if not await self.scripts.all_loaded():
                # Redis restarted without its script cache (it never persists scripts).
                log.warning("redis_scripts_reloaded", scripts=len(self.scripts))
                await self.scripts.load_all()

    def _set_not_ready(self, state: LinkState, detail: str) -> None:
        self.state, self.detail = state, detail
        self._ready_event.clear()

    async def readiness(self) -> Readiness:
        if self.state is not LinkState.READY:
            return Readiness(False, self.state, self.detail)
        try:
            await asyncio.wait_for(self.client.ping(), READY_PING_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as error:
            return Readiness(False, LinkState.UNREACHABLE, _short(error))
        return Readiness(True, LinkState.READY)

    async def close(self) -> None:
        self.state = LinkState.CLOSED
        await self.client.aclose()
        await self.delivery_client.aclose()


class _EvictingServer(TriageError):
    def __init__(self, policy: str) -> None:
        super().__init__(
            f"Redis runs maxmemory-policy {policy}, which can evict waiting patients and "
            "messages: set maxmemory-policy noeviction"
        )


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]
