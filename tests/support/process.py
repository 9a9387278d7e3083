"""Run `chatsvc` as a real child process and follow its structured log events."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Generous: a cold start on a loaded 2-core CI machine replays an AOF and imports aiohttp.
EVENT_TIMEOUT_S = 20.0


class GatewayProcess:
    """`python -m chatsvc serve --config PATH` with JSON logs on stderr, read line by line."""

    def __init__(self, config_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.config_path = config_path
        self.env = {**os.environ, "CHATSVC_LOG_FORMAT": "json", **(env or {})}
        self.events: list[dict[str, Any]] = []
        self.raw_lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, *args: str) -> GatewayProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chatsvc",
            *(args or ("serve", "--config", str(self.config_path))),
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read(self.process.stderr))
        return self

    async def _read(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            async with self._changed:
                self.raw_lines.append(text)
                try:
                    event = json.loads(text)
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    self.events.append(event)
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_event(
        self, name: str, count: int = 1, timeout: float = EVENT_TIMEOUT_S
    ) -> dict[str, Any]:
        """The `count`-th event called `name`, waiting for it if it has not come yet."""

        def found() -> bool:
            return len(self.named(name)) >= count or (
                self._reader is not None and self._reader.done()
            )

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(found), timeout)
        matches = self.named(name)
        if len(matches) < count:
            raise AssertionError(f"process ended before event {name!r}; output:\n{self.output}")
        return matches[count - 1]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event.get("event") == name]

    @property
    def output(self) -> str:
        return "\n".join(self.raw_lines)

    async def listening_url(self) -> str:
        return str((await self.wait_event("chatsvc_listening"))["url"])

    def send_signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait_exit(self, timeout: float = EVENT_TIMEOUT_S) -> int:
        assert self.process is not None
        status = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout)
        return status

    async def stdout(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        return (await self.process.stdout.read()).decode()

    async def kill(self) -> None:
        """Teardown: whatever state the test left it in, the process is gone afterwards."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()


def pid_alive(pid: int) -> bool:
    """Whether a process is still running (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] != "Z"
