"""Keep background loops cancellable when a library swallows a cancellation.

A redis-py command cancelled mid-flight can end in a connection error instead of
CancelledError; a loop that catches connection errors to retry would then run on after its
owner cancelled it, and shutdown would hang. Loops call `stop_if_cancelled()` after catching an
error and at the top of each iteration.
"""

from __future__ import annotations

import asyncio


def stop_if_cancelled() -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
