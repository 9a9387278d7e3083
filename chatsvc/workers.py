"""`chatsvc serve --workers N`: N gateway processes on one port, sharing nothing but Redis.

The parent holds what there is one of: the data directory's lock, the token secret and the
embedded Redis. It serves nothing itself. It starts N workers, each a `chatsvc serve` process
that binds the same port with SO_REUSEPORT (the kernel spreads new connections over them), and
restarts a worker that dies, after a back-off that grows while it keeps dying. On SIGTERM or
SIGINT it passes SIGTERM on (each worker closes its WebSockets with 1012, and clients resume on
the others or on the restarted service) and waits for them. A worker dies with its parent
(PR_SET_PDEATHSIG on Linux), so none keeps serving after the parent and its Redis are gone.

A worker is told what it is by the environment: `CHATSVC_WORKER` (its index), and the port and
Redis URL the parent resolved. It reads the token secret from the data directory, which the
parent created before starting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

import structlog

from chatsvc.config import LoadedConfig

log = structlog.get_logger("chatsvc.workers")

WORKER_VARIABLE = "CHATSVC_WORKER"
# A worker that dies is started again after this pause, doubled for each death in a row up to the
# cap; one that ran this long before dying counts as a first death again.
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
STABLE_AFTER_S = 30.0
# After the workers' own shutdown timeout, this much more before a worker is killed.
STOP_MARGIN_S = 5.0
_PR_SET_PDEATHSIG = 1


def worker_index() -> int | None:
    """This process's index when it runs as a worker of `--workers`, else None."""
    value = os.environ.get(WORKER_VARIABLE, "")
    return int(value) if value.isdigit() else None


def resolve_port(host: str, port: int) -> int:
    """Port 0 means any free port: choose one now, so that every worker binds the same."""
    if port:
        return port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    deaths_in_a_row: int = 0
    runs: int = 0


@dataclass
class WorkerGroup:
    """Starts, watches and stops the workers."""

    loaded: LoadedConfig
    count: int
    port: int
    redis_url: str
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when a worker could not start at all (a taken port, say): the service fails.
    failed: str = ""

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "chatsvc", "serve"]
        if self.loaded.source != "built-in defaults":
            command += ["--config", self.loaded.source]
        return command

    def _environment(self, index: int) -> dict[str, str]:
        return {
            **os.environ,
            WORKER_VARIABLE: str(index),
            "CHATSVC_SERVER_PORT": str(self.port),
            "CHATSVC_REDIS_URL": self.redis_url,
            "CHATSVC_DATA_DIR": str(self.loaded.data_dir),
        }

    async def _start(self, worker: Worker) -> None:
        worker.process = await asyncio.create_subprocess_exec(
            *self._command(),
            env=self._environment(worker.index),
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        worker.started_at = time.monotonic()
        worker.runs += 1
        log.info("worker_started", worker=worker.index, pid=worker.process.pid)

    async def _keep(self, worker: Worker) -> None:
        """Run one worker until the group stops, restarting it whenever it dies."""
        while not self.stopping.is_set():
            await self._start(worker)
            assert worker.process is not None
            if self.stopping.is_set():  # started while the group was being stopped
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
                await worker.process.wait()
                return
            status = await worker.process.wait()
            if self.stopping.is_set():
                return
            ran = time.monotonic() - worker.started_at
            if worker.runs == 1 and status > 0 and ran < STABLE_AFTER_S:
                # It stopped on its own with an error before serving for long: restarting a
                # worker that cannot listen or read its configuration would only loop.
                self.failed = f"worker {worker.index} stopped with status {status} on its start"
                self.stopping.set()
                return
            worker.deaths_in_a_row = 1 if ran >= STABLE_AFTER_S else worker.deaths_in_a_row + 1
            pause = min(RESTART_MAX_S, RESTART_FIRST_S * 2 ** (worker.deaths_in_a_row - 1))
            log.warning(
                "worker_exited",
                worker=worker.index,
                pid=worker.process.pid,
                status=status,
                restart_in_s=pause,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), pause)

    async def _stop(self, workers: list[Worker]) -> None:
        running = [
            w.process for w in workers if w.process is not None and w.process.returncode is None
        ]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = self.loaded.config.server.shutdown_timeout_s + STOP_MARGIN_S
        for process in running:
            try:
                await asyncio.wait_for(process.wait(), deadline)
            except TimeoutError:
                log.warning("worker_killed", pid=process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        received: list[str] = []

        def on_signal(signum: signal.Signals) -> None:
            received.append(signum.name)
            self.stopping.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        workers = [Worker(index) for index in range(self.count)]
        keepers = [asyncio.create_task(self._keep(w), name=f"worker-{w.index}") for w in workers]
        log.info("workers_running", workers=self.count, port=self.port)
        await self.stopping.wait()
        log.info("chatsvc_stopping", signal=received[0] if received else None)
        await self._stop(workers)
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
