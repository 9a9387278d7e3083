"""Triage engine throughput and latency against a throwaway Redis, with its ceiling.

What it measures, for each durability mode of the embedded Redis (first `appendfsync always`,
the default, then `appendfsync no`), each on a fresh `redis-server` started here on a unix
socket in a temp dir and stopped at the end (also on Ctrl-C or SIGTERM):

1. Preload (not timed in the figures): `--waiting` patients (100,000) join through the real
   `Engine.enqueue`, many calls in flight at once, spread evenly over the configured
   departments (chatsvc's defaults: general and paediatrics pull, psych push); doctors then
   sign on to the two pull departments. Nobody serves psych, so its share just waits.
2. Saturated: `--concurrency` asyncio tasks (50), each with its own doctor, loop over the mix
   for a fixed time. `--mix pair` (the default) is enqueue + take_next: every take_next
   succeeds and the number waiting stays where the preload left it, so doctors have a capacity
   no desk would give them. `--mix cycle` adds `end` (enqueue + take_next + end, capacity 4 as
   in chatsvc's config). Each script call counts as one op: `ops_per_s`.
3. Fixed rate: an open-loop generator offers `--rate` ops/s (2,000) of the same mix, op k due
   at start + k/rate whether or not earlier ops finished; latency runs from that due time to
   the reply, so a stall is charged to every op it delays (no coordinated omission):
   `p50_ms`, `p99_ms`. The loop's timers tick in whole ms, so ops leave in small batches up to
   2 ms early, and an op sent early is timed from its sending (spinning instead would take a
   core from Redis).
4. Ceilings on the same server: redis-benchmark's EVALSHA rate for a one-line script (INCR of
   one key, a write like the engine's) with 50 clients, and the same script from a bare
   redis-py loop of `--concurrency` tasks in this process (the client-side ceiling).

Every call passes a request id, as the gateway does, and real Redis TIME (no test clock). The
bench's redis-py pool has no per-command socket timeout unless `--socket-timeout` gives one
(chatsvc's own pool, triage.connection, uses 5 s, which costs redis-py a wait_for per send).
Doctors heartbeat every few seconds, as their clients would; heartbeats are not counted.
Progress goes to stderr; the last line on stdout is one JSON object, whose unsuffixed figures
come from the `appendfsync always` server and `*_fsync_off` ones from `appendfsync no`.

    .venv/bin/python bench/triage_bench.py            # full run, about 2 minutes
    .venv/bin/python bench/triage_bench.py --quick    # about 30 s
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog
from redis.asyncio import BlockingConnectionPool, Redis

from chatsvc.config import DEFAULT_DEPARTMENTS
from chatsvc.embedded_redis import EmbeddedRedis
from triage import keys
from triage.engine import DeskRules, Engine
from triage.errors import Refused
from triage.models import DepartmentRules, DoctorStatus, Routing
from triage.records import Intake
from triage.redflags import DEFAULT_RED_FLAGS
from triage.scripts import Scripts

# Preload calls in flight at once: enough to keep Redis busy, few enough to stay polite.
PRELOAD_IN_FLIGHT = 200
# Connections the fixed-rate phase may hold; an op waiting for one is still timed.
FIXED_RATE_CONNECTIONS = 64
# Every 50th patient mentions chest pain: red-flag matching and emergency places get exercised.
RED_FLAG_EVERY = 50
# Doctor clients heartbeat well inside chatsvc's 30 s presence expiry.
HEARTBEAT_EVERY_S = 5.0
# Capacity under `--mix pair`: nothing ever ends, so take_next must never meet at_capacity.
PAIR_CAPACITY = 1_000_000_000
# Capacity under `--mix cycle`: chatsvc's default doctor_capacity.
CYCLE_CAPACITY = 4
# The ceiling script: one small write, so `appendfsync always` costs it what it costs the engine.
CEILING_SCRIPT = "return redis.call('INCR', KEYS[1])"
CEILING_KEY = "bench:ceiling"
CEILING_CLIENTS = 50  # redis-benchmark's default, and the bench's default concurrency
# The bare redis-py loop settles within seconds; longer would only lengthen the run.
BARE_S = 5.0
# The script calls each lane makes in turn; each call is one op.
MIXES: dict[str, tuple[str, ...]] = {
    "pair": ("enqueue", "take_next"),
    "cycle": ("enqueue", "take_next", "end"),
}
# The disk probe: appends the size of one script's AOF record, as many times as it takes to see
# the disk's tail without making the run much longer.
FSYNC_PROBE_BYTES = 1024
FSYNC_PROBE_COUNT = 300
# Redis's latency monitor logs each stall of at least this many ms (fork, fsync, slow command):
# it says whether a latency tail came from Redis waiting on the disk.
LATENCY_MONITOR_MS = 2
# Other processes using more than this share of a core during the saturated phase skew it.
BUSY_MACHINE_PCT = 20
# The event loop's timer resolution (libuv, and so uvloop, counts in whole milliseconds).
TIMER_TICK_S = 0.001
SEND_HORIZON_S = 2 * TIMER_TICK_S
# Anything taking longer than these is broken, not slow: fail rather than hang.
REDIS_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 30.0
CANCEL_TIMEOUT_S = 10.0
# A whole run against one server: a full run takes about a minute per server.
SERVER_TIMEOUT_S = 900.0
SUBPROCESS_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Plan:
    waiting: int
    concurrency: int
    rate: int
    mix: str
    warmup_s: float
    duration_s: float
    ceiling_requests: int  # redis-benchmark -n
    socket_timeout_s: float  # redis-py's per-command timeout; 0: none
    binary: str  # redis-server; empty: found as chatsvc finds it
    benchmark_binary: str  # redis-benchmark


@dataclass
class Tally:
    ops: int = 0  # script calls that succeeded
    refused: Counter[str] = field(default_factory=Counter)  # by error code; expected: none
    skipped: int = 0  # `end` slots whose lane had no consultation open yet


def say(text: str) -> None:
    print(f"[triage-bench] {text}", file=sys.stderr, flush=True)


def desk_rules() -> DeskRules:
    """chatsvc's default departments, with the shipped red-flag phrases of each kind."""
    departments = tuple(
        DepartmentRules(
            d.id, d.name, Routing(d.routing), d.max_wait_s, dict(DEFAULT_RED_FLAGS.get(d.id, {}))
        )
        for d in DEFAULT_DEPARTMENTS
    )
    return DeskRules(departments=departments)


def percentile(sorted_ms: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_ms:
        return float("nan")
    rank = max(1, -(-len(sorted_ms) * fraction // 1))
    return sorted_ms[int(rank) - 1]


def milliseconds(value: float) -> float | None:
    """A latency for the JSON line: None when there is none (or too many ops never finished)."""
    return round(value, 3) if math.isfinite(value) else None


class Load:
    """The desk's traffic: new patients join, each lane's doctor takes the next (and ends)."""

    def __init__(self, engine: Engine, plan: Plan) -> None:
        self.engine = engine
        self.plan = plan
        self.roles = MIXES[plan.mix]
        rules = engine.rules.departments
        self.all_departments = tuple(d.id for d in rules)
        self.pull_departments = tuple(d.id for d in rules if d.routing is Routing.PULL)
        self.doctors = tuple(f"d{i}" for i in range(plan.concurrency))
        self.open: list[deque[tuple[str, str]]] = [deque() for _ in self.doctors]
        self._serial = itertools.count()

    async def sign_on(self) -> None:
        capacity = CYCLE_CAPACITY if self.plan.mix == "cycle" else PAIR_CAPACITY
        for doctor in self.doctors:
            await self.engine.set_status(
                doctor, DoctorStatus.AVAILABLE, f"Dr {doctor}", self.pull_departments, capacity
            )

    async def heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_S)
            for doctor in self.doctors:
                await self.engine.heartbeat(doctor)

    async def enqueue(self, tally: Tally, departments: Sequence[str]) -> None:
        n = next(self._serial)
        symptoms = "chest pain since this morning" if n % RED_FLAG_EVERY == 0 else "dry cough"
        intake = Intake(symptoms=symptoms, age_band="30-39", duration="3d")
        try:
            await self.engine.enqueue(
                f"p{n}",
                departments[n % len(departments)],
                intake,
                int(time.time() * 1000),
                request_id=f"enqueue-{n}",
            )
            tally.ops += 1
        except Refused as refused:
            tally.refused[refused.code] += 1

    async def take_next(self, tally: Tally, lane: int) -> None:
        doctor = self.doctors[lane]
        try:
            match = await self.engine.take_next(doctor, request_id=f"take-{next(self._serial)}")
            tally.ops += 1
        except Refused as refused:
            tally.refused[refused.code] += 1
            return
        if self.plan.mix == "cycle":
            self.open[lane].append((doctor, match.consultation_id))

    async def end(self, tally: Tally, lane: int) -> None:
        if not self.open[lane]:
            tally.skipped += 1  # the lane's first take_next has not answered yet
            return
        doctor, consultation = self.open[lane].popleft()
        try:
            await self.engine.end(doctor, consultation, "ok", request_id=f"end-{consultation}")
            tally.ops += 1
        except Refused as refused:
            tally.refused[refused.code] += 1

    async def op(self, tally: Tally, role: str, lane: int) -> None:
        if role == "enqueue":
            await self.enqueue(tally, self.pull_departments)
        elif role == "take_next":
            await self.take_next(tally, lane)
        else:
            await self.end(tally, lane)


async def preload(load: Load, count: int) -> float:
    started = time.perf_counter()
    tally = Tally()
    remaining = iter(range(count))
    stop = asyncio.Event()

    async def worker() -> None:
        for _ in remaining:
            if stop.is_set():
                return
            await load.enqueue(tally, load.all_departments)

    workers = [asyncio.create_task(worker()) for _ in range(PRELOAD_IN_FLIGHT)]
    try:
        await asyncio.gather(*workers)
    finally:
        stop.set()
        await cancel_all(workers)
    if tally.refused:
        raise RuntimeError(f"preload refused: {dict(tally.refused)}")
    return time.perf_counter() - started


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel tasks and wait until they are gone, so none still talks to a stopped Redis.

    Cancels again until each is done: on Python 3.11 `asyncio.wait_for`, which redis-py uses
    for some awaits, can swallow a cancellation that lands as the awaited call completes.
    """
    pending = {task for task in tasks if not task.done()}
    deadline = time.monotonic() + CANCEL_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


async def closed_loop(
    step: Callable[[Tally, int], Awaitable[None]], plan: Plan
) -> tuple[float, Tally]:
    """`plan.concurrency` tasks run `step` back to back; ops/s over the window after warm-up."""
    tally = Tally()
    stop = asyncio.Event()

    async def worker(lane: int) -> None:
        while not stop.is_set():
            await step(tally, lane)

    workers = [asyncio.create_task(worker(lane)) for lane in range(plan.concurrency)]
    try:
        await asyncio.sleep(plan.warmup_s)
        ops0, t0 = tally.ops, time.perf_counter()
        await asyncio.sleep(plan.duration_s)
        ops1, t1 = tally.ops, time.perf_counter()
        stop.set()
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            await asyncio.gather(*workers)
    finally:
        stop.set()
        await cancel_all(workers)
    return (ops1 - ops0) / (t1 - t0), tally


async def redis_stalls(client: Redis) -> dict[str, int]:
    """Redis's latency monitor: the worst stall of each kind (ms) since the last reset."""
    latest = await client.execute_command("LATENCY", "LATEST")
    return {str(event): int(worst) for event, _, _, worst in latest}


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (0 where /proc/stat is absent)."""
    try:
        fields = [int(part) for part in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def cpu_counters(client: Redis) -> tuple[float, ...]:
    """Wall s; CPU s of Redis, of its AOF-rewrite children, of this process, of the machine;
    EVALSHA calls and their µs inside Redis."""
    cpu = await client.info("cpu")
    script = (await client.info("commandstats")).get("cmdstat_evalsha", {})
    own = resource.getrusage(resource.RUSAGE_SELF)
    return (
        time.perf_counter(),
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        float(cpu["used_cpu_user_children"]) + float(cpu["used_cpu_sys_children"]),
        own.ru_utime + own.ru_stime,
        machine_busy_s(),
        float(script.get("calls", 0)),
        float(script.get("usec", 0)),
    )


async def saturated(load: Load, client: Redis) -> tuple[float, Tally, dict[str, float]]:
    """The closed loop, with where the time went: CPU shares and Redis's time per script."""

    async def step(tally: Tally, lane: int) -> None:
        for role in load.roles:
            await load.op(tally, role, lane)

    before = await cpu_counters(client)
    ops_per_s, tally = await closed_loop(step, load.plan)
    return ops_per_s, tally, usage_since(before, await cpu_counters(client))


def usage_since(before: tuple[float, ...], after: tuple[float, ...]) -> dict[str, float]:
    """CPU shares (% of one core) between two `cpu_counters`, and Redis's µs per script."""
    wall, redis_cpu, children_cpu, own_cpu, busy, calls, usec = (
        b - a for a, b in zip(before, after, strict=True)
    )
    return {
        "redis_cpu_pct": round(100 * redis_cpu / wall),
        "redis_children_cpu_pct": round(100 * children_cpu / wall),
        "client_cpu_pct": round(100 * own_cpu / wall),
        # Everything else busy on the machine meanwhile (kernel threads, other users' work);
        # approximate: a rewrite child's CPU is counted when it exits, not while it runs.
        "other_cpu_pct": max(0, round(100 * (busy - redis_cpu - children_cpu - own_cpu) / wall)),
        "script_us_per_call": round(usec / calls, 1) if calls else 0.0,
    }


def fsync_latency(directory: Path, count: int) -> tuple[float, float]:
    """p50 and p99 ms of a small append + fsync where the AOF lives: the floor under `always`."""
    directory.mkdir(parents=True, exist_ok=True)
    samples: list[float] = []
    fd = os.open(directory / "fsync-probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, b"x" * FSYNC_PROBE_BYTES)
            os.fsync(fd)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
    samples.sort()
    return percentile(samples, 0.50), percentile(samples, 0.99)


async def fixed_rate(load: Load) -> tuple[dict[str, float], Tally]:
    """Op k is due at t0 + k/rate; its latency runs from then (not from a late launch)."""
    plan = load.plan
    total = int(plan.rate * (plan.warmup_s + plan.duration_s))
    first_measured = int(plan.rate * plan.warmup_s)
    latencies: list[float] = []
    tally = Tally()
    in_flight: set[asyncio.Task[None]] = set()
    errors: list[BaseException] = []

    def finished(task: asyncio.Task[None]) -> None:
        in_flight.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            errors.append(error)

    async def run(k: int, start: float) -> None:
        width = len(load.roles)
        await load.op(tally, load.roles[k % width], (k // width) % len(load.doctors))
        if k >= first_measured:
            latencies.append((time.perf_counter() - start) * 1000)

    t0 = time.perf_counter() + 0.01
    k = 0
    try:
        while k < total:
            # The loop's timers tick in whole ms and a sleep can run a tick over: send what falls
            # due within the send horizon (an op sent early is timed from its sending, one sent
            # late from its due time), then sleep at least a tick rather than spin a core that
            # Redis needs.
            now = time.perf_counter()
            while k < total and t0 + k / plan.rate <= now + SEND_HORIZON_S:
                task = asyncio.create_task(run(k, min(t0 + k / plan.rate, now)))
                in_flight.add(task)
                task.add_done_callback(finished)
                k += 1
            if k < total:
                wake = t0 + k / plan.rate - SEND_HORIZON_S
                await asyncio.sleep(max(wake - time.perf_counter(), TIMER_TICK_S))
        elapsed = time.perf_counter() - t0
        unfinished = 0
        if in_flight:
            _, pending = await asyncio.wait(set(in_flight), timeout=DRAIN_TIMEOUT_S)
            unfinished = len(pending)
    finally:
        await cancel_all(set(in_flight))
    if errors:
        raise errors[0]  # a connection error or timeout is a failed run, not a latency
    latencies.sort()
    measured = len(latencies) + unfinished
    figures = {
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99) if unfinished * 100 < measured else float("inf"),
        "p999_ms": percentile(latencies, 0.999),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "offered_per_s": total / elapsed,
        "unfinished": float(unfinished),
    }
    return figures, tally


async def bare_redis_py(client: Redis, plan: Plan) -> float:
    """The same small script from `plan.concurrency` tasks: what redis-py itself can do here."""
    sha = await client.script_load(CEILING_SCRIPT)

    async def step(tally: Tally, lane: int) -> None:
        await client.evalsha(sha, 1, CEILING_KEY)  # type: ignore[misc]
        tally.ops += 1

    rate, _ = await closed_loop(step, replace(plan, duration_s=min(plan.duration_s, BARE_S)))
    return rate


async def redis_benchmark(binary: str, client: Redis, socket_path: Path, requests: int) -> float:
    sha = await client.script_load(CEILING_SCRIPT)
    argv = [
        binary, "-s", str(socket_path), "-c", str(CEILING_CLIENTS), "-n",
        str(requests), "-q", "evalsha", sha, "1", CEILING_KEY,
    ]  # fmt: skip
    say(" ".join(argv))
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(SUBPROCESS_TIMEOUT_S):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    found = re.findall(r"([\d.]+) requests per second", out.decode(errors="replace"))
    if process.returncode != 0 or not found:
        raise RuntimeError(f"redis-benchmark failed: {err.decode(errors='replace')[-500:]}")
    return float(found[-1])


async def one_server(plan: Plan, appendfsync: str, directory: Path) -> dict[str, object]:
    """Start a fresh redis-server, run every phase against it, stop it."""
    # Started from the main thread on purpose: the child dies with the thread that forked it.
    with EmbeddedRedis(directory, binary=plan.binary, appendfsync=appendfsync) as server:
        say(f"appendfsync {appendfsync}: redis-server pid {server.pid} on {server.socket_path}")
        connections = max(plan.concurrency, PRELOAD_IN_FLIGHT, FIXED_RATE_CONNECTIONS) + 8
        pool = BlockingConnectionPool.from_url(
            server.url,
            decode_responses=True,
            max_connections=connections,
            timeout=REDIS_TIMEOUT_S,
            # No socket timeout by default: with one, redis-py wraps every send in wait_for (a
            # task per command: a third of its client-side rate here) and Python 3.11's wait_for
            # can swallow a cancellation (Ctrl-C); SERVER_TIMEOUT_S bounds the run instead. Said
            # explicitly: redis-py 8 applies 5 s when the argument is left out.
            socket_timeout=plan.socket_timeout_s or None,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        client = Redis(connection_pool=pool)
        try:
            async with asyncio.timeout(SERVER_TIMEOUT_S):
                return await phases(plan, client, server.socket_path)
        finally:
            await client.aclose()
            await pool.disconnect()


async def phases(plan: Plan, client: Redis, socket_path: Path) -> dict[str, object]:
    scripts = Scripts(client)
    await scripts.load_all()
    engine = Engine(client, scripts, desk_rules())
    await engine.init()
    load = Load(engine, plan)
    say(f"preloading {plan.waiting:,} patients over {', '.join(load.all_departments)}")
    preload_s = await preload(load, plan.waiting)
    say(f"preloaded in {preload_s:.1f} s ({plan.waiting / preload_s:,.0f} enqueues/s)")
    await load.sign_on()
    heartbeats = asyncio.create_task(load.heartbeats())
    try:
        say(f"saturated: {plan.concurrency} tasks, mix {'+'.join(load.roles)}")
        ops_per_s, sat, usage = await saturated(load, client)
        say(f"saturated: {ops_per_s:,.0f} ops/s, {usage}, refused {dict(sat.refused)}")
        if usage["other_cpu_pct"] > BUSY_MACHINE_PCT:
            say(f"warning: other work used {usage['other_cpu_pct']}% of a core: figures skewed")

        say(f"fixed rate: {plan.rate:,} ops/s for {plan.warmup_s + plan.duration_s:.0f} s")
        await client.config_set("latency-monitor-threshold", LATENCY_MONITOR_MS)
        await client.execute_command("LATENCY", "RESET")
        before = await cpu_counters(client)
        latency, fixed = await fixed_rate(load)
        fixed_usage = usage_since(before, await cpu_counters(client))
        stalls = await redis_stalls(client)
        say(
            f"fixed rate: p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms, "
            f"max {latency['max_ms']:.1f} ms, refused {dict(fixed.refused)}, "
            f"unfinished {latency['unfinished']:.0f}"
        )
        say(f"fixed rate: Redis's own stalls over {LATENCY_MONITOR_MS} ms (worst ms): {stalls}")
        say(f"fixed rate: {fixed_usage}")
        if fixed_usage["other_cpu_pct"] > BUSY_MACHINE_PCT:
            say(f"warning: other work used {fixed_usage['other_cpu_pct']}% of a core: skewed")
        if heartbeats.done():
            heartbeats.result()  # a doctor dropped offline: the figures would be wrong
    finally:
        await cancel_all([heartbeats])

    bare = await bare_redis_py(client, plan)
    say(f"bare redis-py EVALSHA loop: {bare:,.0f}/s")
    ceiling = await redis_benchmark(
        plan.benchmark_binary, client, socket_path, plan.ceiling_requests
    )
    say(f"redis-benchmark EVALSHA: {ceiling:,.0f}/s")

    waiting = sum([await client.zcard(keys.queue(d)) for d in load.all_departments])
    info = await client.info()
    return {
        "waiting_end": waiting,
        "preload_s": round(preload_s, 1),
        "ops_per_s": round(ops_per_s),
        "p50_ms": milliseconds(latency["p50_ms"]),
        "p99_ms": milliseconds(latency["p99_ms"]),
        "p999_ms": milliseconds(latency["p999_ms"]),
        "max_ms": milliseconds(latency["max_ms"]),
        "offered_per_s": round(latency["offered_per_s"]),
        "unfinished": int(latency["unfinished"]),
        "refused": sum(sat.refused.values()) + sum(fixed.refused.values()),
        "skipped": sat.skipped + fixed.skipped,
        "redispy_evalsha_per_s": round(bare),
        "evalsha_ceiling_per_s": round(ceiling),
        "ratio_to_ceiling": round(ops_per_s / ceiling, 3),
        **usage,
        "redis_stalls_ms": stalls,
        "other_cpu_pct_fixed": fixed_usage["other_cpu_pct"],
        "script_us_per_call_fixed": fixed_usage["script_us_per_call"],
        "aof_rewrites": int(info.get("aof_rewrites", -1)),
        "used_memory_mb": round(int(info["used_memory"]) / 2**20),
        "redis": str(info["redis_version"]),
    }


# Figures of the `appendfsync always` run reported beside the required ones.
EXTRA_KEYS = (
    "p999_ms",
    "max_ms",
    "offered_per_s",
    "unfinished",
    "refused",
    "skipped",
    "waiting_end",
    "redispy_evalsha_per_s",
    "preload_s",
    "aof_rewrites",
    "used_memory_mb",
    "redis_cpu_pct",
    "client_cpu_pct",
    "redis_children_cpu_pct",
    "other_cpu_pct",
    "script_us_per_call",
    "redis_stalls_ms",
    "other_cpu_pct_fixed",
    "script_us_per_call_fixed",
)
# Figures of the `appendfsync no` run, reported with a `_fsync_off` suffix.
FSYNC_OFF_KEYS = (
    "ops_per_s",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "refused",
    "evalsha_ceiling_per_s",
    "ratio_to_ceiling",
    "redispy_evalsha_per_s",
    "redis_cpu_pct",
    "client_cpu_pct",
    "redis_children_cpu_pct",
    "other_cpu_pct",
    "script_us_per_call",
    "redis_stalls_ms",
    "other_cpu_pct_fixed",
    "script_us_per_call_fixed",
    "aof_rewrites",
)


def machine(redis_version: str, uvloop_used: bool, load_start: float) -> dict[str, object]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": cores,
        "cpu": cpu,
        "python": platform.python_version(),
        "redis": redis_version,
        "uvloop": uvloop_used,
        # Other work on the machine skews every figure: a load above ~0.5 here says so.
        "loadavg_1m_start": load_start,
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
    }


async def bench(plan: Plan, uvloop_used: bool) -> dict[str, object]:
    load_start = round(os.getloadavg()[0], 2)
    main = asyncio.current_task()
    if main is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    runs: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
        fsync_p50, fsync_p99 = fsync_latency(Path(tmp) / "probe", FSYNC_PROBE_COUNT)
        say(f"disk: append + fsync p50 {fsync_p50:.2f} ms, p99 {fsync_p99:.2f} ms")
        for appendfsync in ("always", "no"):
            runs[appendfsync] = await one_server(plan, appendfsync, Path(tmp) / appendfsync)
    on, off = runs["always"], runs["no"]
    result: dict[str, object] = {
        "bench": "triage",
        "waiting": plan.waiting,
        "concurrency": plan.concurrency,
        "ops_per_s": on["ops_per_s"],
        "p50_ms": on["p50_ms"],
        "p99_ms": on["p99_ms"],
        "rate": plan.rate,
        "mix": "+".join(MIXES[plan.mix]),
        "socket_timeout_s": plan.socket_timeout_s,
        "evalsha_ceiling_per_s": on["evalsha_ceiling_per_s"],
        "ratio_to_ceiling": on["ratio_to_ceiling"],
    }
    for key in EXTRA_KEYS:
        result[key] = on[key]
    for key in FSYNC_OFF_KEYS:
        result[f"{key}_fsync_off"] = off[key]
    result["fsync_p50_ms"] = milliseconds(fsync_p50)
    result["fsync_p99_ms"] = milliseconds(fsync_p99)
    result["seconds"] = {"warmup": plan.warmup_s, "measured": plan.duration_s}
    result["machine"] = machine(str(on["redis"]), uvloop_used, load_start)
    return result


def parse(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10,000 waiting, 3 s phases")
    parser.add_argument("--concurrency", type=int, default=50, help="saturated tasks (50)")
    parser.add_argument("--rate", type=int, default=2000, help="fixed-rate ops/s (2000)")
    parser.add_argument("--waiting", type=int, help="patients preloaded (100,000; quick 10,000)")
    parser.add_argument("--duration", type=float, help="measured seconds per phase (15; quick 3)")
    parser.add_argument(
        "--mix",
        choices=tuple(MIXES),
        default="pair",
        help="pair: enqueue+take_next (default); cycle: enqueue+take_next+end",
    )
    parser.add_argument("--redis-server", default="", help="redis-server binary (found if empty)")
    parser.add_argument(
        "--socket-timeout",
        type=float,
        default=0.0,
        help="redis-py socket_timeout in s for the bench's pool (0: none, the default; "
        "chatsvc's own pool uses 5)",
    )
    args = parser.parse_args(argv)
    benchmark = shutil.which("redis-benchmark")
    if benchmark is None:
        parser.error("redis-benchmark not found on PATH (Debian: apt-get install redis-tools)")
    waiting = args.waiting if args.waiting is not None else (10_000 if args.quick else 100_000)
    duration = args.duration if args.duration is not None else (3.0 if args.quick else 15.0)
    if not (1 <= args.concurrency <= 1000 and 1 <= args.rate <= 50_000):
        parser.error("--concurrency must be 1..1000 and --rate 1..50000")
    if not 0 <= args.socket_timeout <= 60:
        parser.error("--socket-timeout must be 0..60 s")
    if not (0 <= waiting <= 1_000_000 and 0.5 <= duration <= 120):
        parser.error("--waiting must be 0..1,000,000 and --duration 0.5..120 s")
    return Plan(
        waiting=waiting,
        concurrency=args.concurrency,
        rate=args.rate,
        mix=args.mix,
        warmup_s=1.0 if args.quick else 2.0,
        duration_s=duration,
        ceiling_requests=100_000 if args.quick else 300_000,
        binary=args.redis_server,
        benchmark_binary=benchmark,
        socket_timeout_s=args.socket_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse(argv)
    # Progress and chatsvc's own log lines go to stderr; stdout carries only the JSON line.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        say("uvloop not installed: running on the stock asyncio loop")
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(bench(plan, loop_factory is not None))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: every redis-server it started has been stopped")
        return 130
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
