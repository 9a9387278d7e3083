"""Idle authenticated connections on one gateway process: memory each, and connects per second.

The bench starts a fresh redis-server with chatsvc's embedded settings (`appendfsync always`)
on a unix socket in a temp dir and one `chatsvc serve` on a free loopback port using it, with
`[limits] max_connections` above `--connections`. It raises RLIMIT_NOFILE (the gateway inherits
it). Load processes (`--clients`, 2) each open their share of the connections, `--concurrency`
(64) handshakes in flight per process, with a raw aiohttp client: open `/ws` (subprotocol
`chatsvc.json`), send `hello` with a patient token signed with the gateway's secret (issued
before the clock starts), wait for `welcome`, then keep reading so WebSocket pings are answered.

- `connects_per_s`: connections / the time from the common start to the last `welcome`.
  `connect_p50_ms`, `connect_p99_ms`: one connection's TCP connect + upgrade + hello→welcome.
- `kib_per_connection`: the gateway's VmRSS (/proc/<pid>/status) after every connection is
  open and 2 s of quiet, less its VmRSS before (after 50 warm-up connections came and went, so
  first-use allocations are not charged to the idle ones), over the connections.

Progress goes to stderr; the last line on stdout is one JSON object.

    .venv/bin/python bench/idle_bench.py            # 10,000 connections, about a minute
    .venv/bin/python bench/idle_bench.py --quick    # 2,000 connections
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import benchkit
from benchkit import CpuWatch, percentile, rounded, say

from chatsvc import tokens

TAG = "idle-bench"
WARMUP_CONNECTIONS = 50
# Quiet time before the "after" reading: the gateway's restore tasks and logs settle.
SETTLE_S = 2.0
# One handshake that takes longer than this is a failure, not a slow connect.
CONNECT_TIMEOUT_S = 30.0
TOKEN_TTL_S = 3600
# File descriptors beyond the sockets: Redis links, logs, the interpreter's own.
SPARE_FDS = 200
START_DELAY_S = 0.3


@dataclass(frozen=True)
class Plan:
    connections: int
    clients: int
    concurrency: int


@dataclass
class Report:
    opened: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    finished_at: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0


# -- the load process ----------------------------------------------------------------------------


async def hold(
    session: aiohttp.ClientSession, url: str, token: str, report: Report
) -> tuple[aiohttp.ClientWebSocketResponse, asyncio.Task[None]] | None:
    """Open one connection and say hello; None (and counted) if it was refused."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            ws = await session.ws_connect(url, protocols=("chatsvc.json",))
            await ws.send_str(json.dumps({"type": "hello", "token": token}))
            while True:
                message = await ws.receive()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"closed before welcome: {ws.close_code}")
                kind = json.loads(message.data).get("type")
                if kind == "welcome":
                    break
                if kind == "error":
                    raise ConnectionError(f"error before welcome: {message.data[:200]}")
    except (aiohttp.ClientError, ConnectionError, TimeoutError, OSError) as error:
        name = type(error).__name__
        report.failed[name] = report.failed.get(name, 0) + 1
        return None
    report.latencies_ms.append((time.monotonic() - started) * 1000)
    report.opened += 1

    async def drain() -> None:  # reading answers the server's pings
        async for _ in ws:
            pass

    return ws, asyncio.get_running_loop().create_task(drain())


async def open_all(spec: dict[str, object], pipe: Connection) -> None:
    port, count = int(spec["port"]), int(spec["count"])  # type: ignore[call-overload]
    secret, index = str(spec["secret"]), int(spec["index"])  # type: ignore[call-overload]
    url = f"http://127.0.0.1:{port}/ws"
    now = time.time()
    tokens_ = [
        tokens.issue(secret, tokens.Role.PATIENT, f"idle{index}x{n}", now, TOKEN_TTL_S)
        for n in range(count)
    ]
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    held: list[tuple[aiohttp.ClientWebSocketResponse, asyncio.Task[None]]] = []
    report = Report()
    pipe.send(("ready", None))
    loop = asyncio.get_running_loop()
    _, t0 = await loop.run_in_executor(None, pipe.recv)
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    pending = iter(tokens_)

    async def connector() -> None:
        for token in pending:
            result = await hold(session, url, token, report)
            if result is not None:
                held.append(result)

    await asyncio.gather(*(connector() for _ in range(int(spec["concurrency"]))))  # type: ignore[call-overload]
    report.finished_at = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    report.cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    pipe.send(("done", report))
    await loop.run_in_executor(None, pipe.recv)  # "close": the parent has read the gateway
    for _, reader in held:
        reader.cancel()
    await session.close()  # drops every socket at once; a graceful close of each is slow


def load_process(pipe: Connection, spec: dict[str, object]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it stops us
    benchkit.raise_nofile(int(spec["count"]) + SPARE_FDS)  # type: ignore[call-overload]
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(open_all(spec, pipe))
    except EOFError:
        pass
    except BaseException as error:
        with contextlib.suppress(OSError):
            pipe.send(("failed", f"{type(error).__name__}: {error}"))
        raise


# -- the parent ----------------------------------------------------------------------------------


def warm_up(port: int, secret: str) -> None:
    """A few connections come and go, so the gateway's first-use allocations happen now."""

    async def run() -> None:
        now = time.time()
        async with aiohttp.ClientSession() as session:
            for n in range(WARMUP_CONNECTIONS):
                token = tokens.issue(secret, tokens.Role.PATIENT, f"warm{n}", now, TOKEN_TTL_S)
                report = Report()
                held = await hold(session, f"http://127.0.0.1:{port}/ws", token, report)
                if held is None:
                    raise RuntimeError(f"warm-up connection refused: {report.failed}")
                await held[0].close()
                held[1].cancel()

    asyncio.run(run())


def bench(plan: Plan) -> dict[str, object]:
    load_start = round(os.getloadavg()[0], 2)
    if load_start > 1.0:
        say(TAG, f"warning: 1-minute load average {load_start}: other work will skew figures")
    nofile = benchkit.raise_nofile(plan.connections + SPARE_FDS)
    if nofile < plan.connections + SPARE_FDS:
        raise RuntimeError(f"RLIMIT_NOFILE hard limit {nofile} is too low for the gateway")
    secret = secrets.token_hex(24)
    context = multiprocessing.get_context("spawn")
    processes: list[multiprocessing.process.BaseProcess] = []
    pipes: list[Connection] = []
    with tempfile.TemporaryDirectory(prefix="idle-bench-") as tmp:
        server = benchkit.start_redis(Path(tmp) / "redis", "always")
        try:
            with benchkit.children() as kids:
                limits = {"max_connections": plan.connections + 100}
                gateway, port = benchkit.start_gateway(
                    "gateway", Path(tmp) / "gateway", server.url, secret, limits
                )
                kids.append(gateway)
                say(TAG, f"gateway pid {gateway.pid} on port {port}; redis pid {server.pid}")
                warm_up(port, secret)
                time.sleep(1.0)
                rss_empty = benchkit.rss_kib(gateway.pid)
                for index in range(plan.clients):
                    count = plan.connections // plan.clients + (
                        1 if index < plan.connections % plan.clients else 0
                    )
                    spec = {
                        "port": port,
                        "secret": secret,
                        "index": index,
                        "count": count,
                        "concurrency": plan.concurrency,
                    }
                    parent, child = context.Pipe()
                    process = context.Process(target=load_process, args=(child, spec), daemon=True)
                    process.start()
                    child.close()
                    processes.append(process)
                    pipes.append(parent)
                for pipe in pipes:
                    benchkit.receive(pipe, 60)
                watch = CpuWatch({"gateway": gateway.pid, "redis": server.pid or 0})
                t0 = time.monotonic() + START_DELAY_S
                say(TAG, f"opening {plan.connections:,} connections from {plan.clients} processes")
                for pipe in pipes:
                    pipe.send(("go", t0))
                time.sleep(START_DELAY_S)
                watch.start()
                reports: list[Report] = [benchkit.receive(pipe, 600) for pipe in pipes]  # type: ignore[misc]
                watch.stop()
                usage = watch.shares(sum(r.cpu_s for r in reports))
                opened = sum(r.opened for r in reports)
                elapsed = max(r.finished_at for r in reports) - t0
                time.sleep(SETTLE_S)
                rss_full = benchkit.rss_kib(gateway.pid)
                say(TAG, f"{opened:,} open in {elapsed:.1f} s; RSS {rss_empty} → {rss_full} KiB")
                for pipe in pipes:
                    pipe.send(("close", None))
        finally:
            for pipe in pipes:
                pipe.close()  # a load process still waiting for a command ends
            for process in processes:
                process.join(10)
                if process.is_alive():
                    process.kill()
                    process.join()
            server.stop()
    failed: dict[str, int] = {}
    for report in reports:
        for name, n in report.failed.items():
            failed[name] = failed.get(name, 0) + n
    latencies = sorted(ms for r in reports for ms in r.latencies_ms)
    return {
        "bench": "idle",
        "connections": opened,
        "kib_per_connection": round((rss_full - rss_empty) / opened, 1) if opened else None,
        "connects_per_s": round(opened / elapsed) if elapsed > 0 else None,
        "requested": plan.connections,
        "failed": failed,
        "rss_before_kib": rss_empty,
        "rss_after_kib": rss_full,
        "connect_p50_ms": rounded(percentile(latencies, 0.5)),
        "connect_p99_ms": rounded(percentile(latencies, 0.99)),
        "clients": plan.clients,
        "concurrency": plan.concurrency,
        "connect_s": round(elapsed, 2),
        **usage,
        "client_cpu_pct_max": max(round(100 * r.cpu_s / elapsed) for r in reports),
        "machine": benchkit.machine(load_start, benchkit.redis_version()),
    }


def parse(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2,000 connections")
    parser.add_argument("--connections", type=int, help="idle connections (10,000; quick 2,000)")
    parser.add_argument("--clients", type=int, default=2, help="load processes (2)")
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes in flight (64)")
    args = parser.parse_args(argv)
    count = args.connections or (2_000 if args.quick else 10_000)
    if not (1 <= count <= 50_000 and 1 <= args.clients <= 16 and 1 <= args.concurrency <= 1000):
        parser.error("--connections 1..50000, --clients 1..16, --concurrency 1..1000")
    return Plan(connections=count, clients=args.clients, concurrency=args.concurrency)


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse(argv)
    return benchkit.run_to_json_line(TAG, lambda: bench(plan))


if __name__ == "__main__":
    sys.exit(main())
