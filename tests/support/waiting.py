"""Await a condition that no event announces (state in Redis, a process gone), bounded in time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

# Checks are cheap (a Redis read, a /proc lookup); 20 ms keeps tests quick without spinning.
CHECK_INTERVAL_S = 0.02


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 10.0
) -> None:
    """Return as soon as `check()` is true; fail the test if it is not within `timeout`."""

    async def loop() -> None:
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(CHECK_INTERVAL_S)

    await asyncio.wait_for(loop(), timeout)
