"""The desk's identity in Redis: its schema version and creation time.

Run once per connection at start: it stamps a new Redis, and refuses data written by a newer
schema so an old gateway never misreads a newer desk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from triage import keys
from triage.errors import SchemaMismatch
from triage.models import DepartmentRules
from triage.scripts import Scripts

# Bumped whenever the key layout or a stored record's fields change incompatibly.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DeskInfo:
    schema_version: int
    created_ms: int


async def init_desk(
    client: Redis, scripts: Scripts, departments: Sequence[DepartmentRules] = ()
) -> DeskInfo:
    """Stamp the desk and record each department's routing (scripts read it from Redis)."""
    routing = [value for d in departments for value in (d.id, d.routing.value)]
    stored, created_ms = await scripts["desk_init"](
        keys=[keys.desk_meta()], args=[SCHEMA_VERSION, *routing], client=client
    )
    if int(stored) > SCHEMA_VERSION:
        raise SchemaMismatch(stored=int(stored), supported=SCHEMA_VERSION)
    return DeskInfo(schema_version=int(stored), created_ms=int(created_ms))
