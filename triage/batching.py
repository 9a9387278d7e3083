"""Script calls made in one event-loop turn go to Redis together, as one pipeline.

A gateway at surge stores a message for every `send` of thousands of sockets. One EVALSHA per
message through the connection pool costs a pool checkout (a lock, a timer and a liveness
probe of the socket), a task to time the write and a timer per read: more client CPU than the
script costs Redis. The batcher collects the calls made while the event loop runs one turn,
and at the end of the turn sends them as one pipeline on one connection (not a transaction:
each script is atomic on its own, and one call's refusal does not touch the others).

What it keeps:
- Order: calls are sent in the order they were made, and a pipeline runs its commands in
  order, so two calls from one caller (who awaits the first) are never reordered.
- Independence: each caller gets its own reply or its own error. A ResponseError stays with
  its call; a connection failure fails every call of that pipeline, as it would have failed
  each alone (redis-py first retries the pipeline on a fresh connection; scripts sent this
  way must be safe to run twice, as the transcript scripts are: a message is stored once per
  client_msg_id).
- NOSCRIPT after a Redis restart: the scripts it names are loaded and the calls it refused
  are sent again, together and in their order.
- `replica` durability (triage.durability): WAIT ends the pipeline, on its connection, so it
  covers every write of the batch; when too few replicas confirm, no call of the batch is
  acknowledged (each caller gets NotReplicated).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from triage.durability import NotReplicated, confirm
from triage.scripts import Scripts

# A turn rarely makes more than a few dozen calls; past this its calls go in several
# pipelines, one after the other, so one reply set stays small.
MAX_BATCH = 128

# One call waiting to be sent: script name, keys, args, and the future its caller awaits.
_Call = tuple[str, Sequence[str], Sequence[object], "asyncio.Future[object]"]


class ScriptBatcher:
    def __init__(self, client: Redis, scripts: Scripts) -> None:
        self._client = client
        self._scripts = scripts
        self._pending: list[_Call] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, name: str, keys: Sequence[str], args: Sequence[object]) -> object:
        """EVALSHA `name`, sent with the other calls of this event-loop turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((name, keys, args, future))
        started = time.perf_counter()
        try:
            return await future
        finally:
            if self._scripts.observer is not None:
                self._scripts.observer(name, time.perf_counter() - started)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send_in_order(pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_in_order(self, pending: list[_Call]) -> None:
        """A long turn's calls in pipelines of at most MAX_BATCH, one after the other: the
        calls keep their order across pipelines too."""
        for start in range(0, len(pending), MAX_BATCH):
            try:
                await self._send(pending[start : start + MAX_BATCH])
            except BaseException as error:  # cancelled: the calls not yet sent fail too
                _fail(pending[start + MAX_BATCH :], error)
                raise

    async def _send(self, batch: list[_Call], reloaded: bool = False) -> None:
        try:
            replies = await self._pipeline(batch)
        except BaseException as error:  # noqa: BLE001 (handed to every caller)
            _fail(batch, error)
            return
        unknown: list[_Call] = []
        for call, reply in zip(batch, replies, strict=True):
            future = call[3]
            if future.done():  # the caller gave up (cancelled): nobody to tell
                continue
            if isinstance(reply, NoScriptError) and not reloaded:
                unknown.append(call)
            elif isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        if unknown:
            # Redis lost its script cache (a restart): load what was missing and send those
            # calls again, together and in their order.
            try:
                for name in sorted({call[0] for call in unknown}):
                    await self._scripts.load(name)
            except BaseException as error:  # noqa: BLE001 (handed to every caller)
                _fail(unknown, error)
                return
            await self._send(unknown, reloaded=True)

    async def _pipeline(self, batch: list[_Call]) -> list[object]:
        durability = self._scripts.durability
        async with self._client.pipeline(transaction=False) as pipe:
            for name, keys, args, _ in batch:
                pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)
            if durability.waits:
                pipe.execute_command(*durability.wait_args())
            replies = list(await pipe.execute(raise_on_error=False))
        if durability.waits and replies:
            confirmed = replies.pop()
            try:
                confirm(durability, confirmed)
            except NotReplicated as unconfirmed:
                # Applied but not confirmed: nothing of this batch is acknowledged. A call that
                # Redis refused as NOSCRIPT stored nothing and is sent again as before.
                replies = [r if isinstance(r, NoScriptError) else unconfirmed for r in replies]
        if len(replies) != len(batch):  # never expected: fail the calls rather than hang them
            error = RuntimeError(f"pipeline of {len(batch)} calls gave {len(replies)} replies")
            return [error] * len(batch)
        return replies


def _fail(calls: list[_Call], error: BaseException) -> None:
    """Hand the error to every caller still waiting; a cancellation of the sender goes on."""
    for *_, future in calls:
        if not future.done():
            future.set_exception(error)
    if isinstance(error, asyncio.CancelledError):
        raise error
