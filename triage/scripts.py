"""Loads the engine's Lua scripts (`triage/lua/*.lua`) and runs them by SHA.

Each script is read once and registered with redis-py. `Scripts.run` sends EVALSHA and, after a
Redis restart has emptied the script cache (NOSCRIPT), loads the script and sends it again.
`load_all` also loads them up front so that readiness means "every script is in Redis".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from triage.durability import Durability, confirm

SCRIPT_DIR = resources.files("triage") / "lua"


def script_names() -> list[str]:
    return sorted(
        entry.name.removesuffix(".lua")
        for entry in SCRIPT_DIR.iterdir()
        if entry.name.endswith(".lua")
    )


def script_source(name: str) -> str:
    """The script as written in its file."""
    return SCRIPT_DIR.joinpath(f"{name}.lua").read_text(encoding="utf-8")


def library_source() -> str:
    """`lua/lib/*.lua`: shared local functions, in name order."""
    parts = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in (SCRIPT_DIR / "lib").iterdir()
        if entry.name.endswith(".lua")
    )
    return "\n".join(text for _, text in parts)


def loadable_source(name: str) -> str:
    """What Redis runs: the shared library, then the script."""
    return f"{library_source()}\n{script_source(name)}"


class Scripts:
    """Every script of the engine, registered on one client."""

    def __init__(self, client: Redis, durability: Durability | None = None) -> None:
        self._client = client
        # `replica` mode: every call is followed by WAIT on its connection (triage.durability).
        self.durability = durability or Durability()
        # Told each call's script name and how long its caller waited (seconds): the gateway
        # feeds its latency histogram with it. Never raises into the call.
        self.observer: Callable[[str, float], None] | None = None
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(loadable_source(name)) for name in script_names()
        }

    def __getitem__(self, name: str) -> AsyncScript:
        return self._scripts[name]

    def __len__(self) -> int:
        return len(self._scripts)

    async def run(
        self, name: str, keys: Sequence[str], args: Sequence[object], client: Redis | None = None
    ) -> object:
        """EVALSHA `name` on `client` (default: the one the scripts were registered on).

        What AsyncScript.__call__ does without its per-call import and pipeline check, which
        cost ~6 % of the engine's client-side CPU per call: the engine's calls are never
        pipelined.
        """
        script = self._scripts[name]
        target = self._client if client is None else client
        started = time.perf_counter()
        try:
            if self.durability.waits:
                return await self._run_confirmed(target, script, keys, args)
            try:
                return await target.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                # Redis restarted (or SCRIPT FLUSH): its cache is empty; load and send it again.
                script.sha = await target.script_load(script.script)
                return await target.evalsha(script.sha, len(keys), *keys, *args)
        finally:
            if self.observer is not None:
                self.observer(name, time.perf_counter() - started)

    async def _run_confirmed(
        self, target: Redis, script: AsyncScript, keys: Sequence[str], args: Sequence[object]
    ) -> object:
        """EVALSHA then WAIT in one pipeline: one connection, so WAIT covers this very write."""
        for attempt in range(2):
            async with target.pipeline(transaction=False) as pipe:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
                pipe.execute_command(*self.durability.wait_args())
                reply, confirmed = await pipe.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError) and attempt == 0:
                script.sha = await target.script_load(script.script)
                continue
            if isinstance(reply, Exception):
                raise reply
            confirm(self.durability, confirmed)
            return reply
        raise AssertionError("unreachable")  # the loop returns or raises

    async def load(self, name: str) -> None:
        """SCRIPT LOAD one script (after Redis lost its cache)."""
        script = self._scripts[name]
        script.sha = await self._client.script_load(script.script)

    async def load_all(self) -> None:
        """SCRIPT LOAD each script (idempotent), so none is missing when the first call comes."""
        for script in self._scripts.values():
            await self._client.script_load(script.script)

    async def all_loaded(self) -> bool:
        shas = [script.sha for script in self._scripts.values()]
        present = await self._client.script_exists(*shas)
        return all(present)
