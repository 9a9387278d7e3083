"""The desk's event stream: every state change, in the order the scripts committed them.

Scripts append (`XADD`, in the same step as the change they describe), so the stream is exact.
Readers are of two kinds:
- gateways follow it with `read` (no group): they only turn events into notifications, and a
  missed notification is repaired from state, so at-most-once is enough;
- work that must happen for every event and is safe to repeat (archiving, later) reads through a
  consumer group (`read_group`, `ack`), at least once.

The scripts never cap the stream: `trim` removes only entries every group has processed (and,
when no group exists, entries older than the retention), so a slow consumer delays trimming but
never loses an event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from triage import keys

# Without consumer groups, events older than this are trimmed: long enough for any gateway that
# was briefly away to catch up, short enough that the stream stays small.
DEFAULT_KEEP_S = 3600


@dataclass(frozen=True)
class Event:
    id: str  # stream entry id, "<ms>-<n>"
    type: str  # enqueued, offered, assigned, requeued, transferred, offer_expired, ...
    data: Mapping[str, str]

    @property
    def ms(self) -> int:
        return int(self.id.split("-", 1)[0])


def _event(entry_id: str, fields: dict[str, str]) -> Event:
    data = dict(fields)
    return Event(id=entry_id, type=data.pop("type", ""), data=data)


async def read(
    client: Redis, after: str = "$", count: int = 100, block_ms: int | None = None
) -> list[Event]:
    """Events after `after` ("$": only new ones), waiting up to `block_ms` if there are none."""
    reply = await client.xread({keys.events(): after}, count=count, block=block_ms)
    return [_event(entry_id, fields) for _, entries in reply for entry_id, fields in entries]


async def last_id(client: Redis) -> str:
    """The id of the newest event, or "0-0": where a follower starts to see only new events."""
    newest = await client.xrevrange(keys.events(), count=1)
    return str(newest[0][0]) if newest else "0-0"


async def ensure_group(client: Redis, group: str, start: str = "0") -> None:
    """Create a consumer group (and the stream) if absent; from `start` (default: everything)."""
    try:
        await client.xgroup_create(keys.events(), group, id=start, mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


async def read_group(
    client: Redis, group: str, consumer: str, count: int = 100, block_ms: int | None = None
) -> list[Event]:
    """New events for this group (each goes to one consumer until acknowledged)."""
    reply = await client.xreadgroup(
        group, consumer, {keys.events(): ">"}, count=count, block=block_ms
    )
    return [_event(entry_id, fields) for _, entries in reply for entry_id, fields in entries]


async def ack(client: Redis, group: str, *event_ids: str) -> int:
    return int(await client.xack(keys.events(), group, *event_ids))


async def reclaim(
    client: Redis, group: str, consumer: str, idle_ms: int, count: int = 100
) -> list[Event]:
    """Take over events another consumer read but never acknowledged (it crashed)."""
    reply = await client.xautoclaim(keys.events(), group, consumer, idle_ms, "0-0", count=count)
    return [_event(entry_id, fields) for entry_id, fields in reply[1] if fields is not None]


def _older(a: str, b: str) -> str:
    ams, aseq = (int(part) for part in a.split("-"))
    bms, bseq = (int(part) for part in b.split("-"))
    return a if (ams, aseq) <= (bms, bseq) else b


async def trim(client: Redis, now_ms: int, keep_s: int = DEFAULT_KEEP_S) -> int:
    """Remove events older than `keep_s` that every consumer group has processed.

    A group's boundary is its oldest unacknowledged event, or (none pending) the first event it
    has not been delivered yet. Returns how many entries were removed.
    """
    boundary = f"{max(0, now_ms - keep_s * 1000)}-0"
    try:
        groups = await client.xinfo_groups(keys.events())
    except ResponseError:
        return 0  # no stream yet
    for group in groups:
        name = group["name"]
        pending = await client.xpending(keys.events(), name)
        if pending["pending"]:
            boundary = _older(boundary, str(pending["min"]))
        else:
            delivered = str(group["last-delivered-id"])
            ms, seq = (int(part) for part in delivered.split("-"))
            boundary = _older(boundary, f"{ms}-{seq + 1}")
    return int(await client.xtrim(keys.events(), minid=boundary, approximate=False))
