"""Message relay across two gateway processes, beside a minimal relay measured in the same run.

For each relay, first `baseline` (`bench/baseline_relay.py`: aiohttp + XADD + PUBLISH, nothing
else) and then `chatsvc` (`chatsvc serve`), the bench starts a fresh redis-server with chatsvc's
embedded settings (`chatsvc.embedded_redis`: AOF, `appendfsync always`, or `no` with
`--fsync off`) on a unix socket in a temp dir, two server processes on free loopback ports
sharing it (A and B), and `--clients` load-generator processes (`bench/relay_load.py`). Then:

1. Setup (not timed): `--pairs` patient–doctor pairs (100), the patient's socket on A, the
   doctor's on B. With chatsvc through the protocol: both `hello` with a token signed with the
   gateways' `[auth] token_secret`; the doctor (capacity 2, department general) goes
   `available`; the patient `join`s general, the doctor `take_next`s that patient (one pair at a
   time over all load processes, so the doctor finds this patient) and the patient gets
   `assigned`. The gateways' per-connection rate limit (`[limits] frames_per_second`, default
   20/s) is raised in their config so the saturated phase measures the relay, not the limiter.
2. Saturated: every side of every pair keeps `--window` (2) messages unacknowledged and sends
   the next as each ack comes (so 4 in flight per pair), both directions at once, for
   `--duration` s after a warm-up.
   `msgs_per_s` counts messages that reached the other side inside that window. Each message
   carries `client_msg_id` `<phase><n>`; the receiver checks that each arrives once and in
   order (`duplicates`, `gaps`), and after the phase every message sent must have arrived
   (`lost`). With chatsvc all three must be 0; the baseline promises nothing.
3. Fixed rate: `--rate` (2,000) msgs/s over all the pairs, open loop: message k is due at
   t0 + k/rate (pair k mod P, directions alternating) whatever happened to earlier ones, and its
   latency runs from that due time to its arrival on the other side, so a stall is charged to
   every message it delays (no coordinated omission): `p50_ms`, `p99_ms`.

CPU: each server's, Redis's and the load processes' share of a core over each measured window
(`client_cpu_pct`, and `client_cpu_pct_max` for the busiest single load process: near 100 it is
the client, not the relay, that is saturated). Redis's own `INFO commandstats` gives the calls
and µs each relay spends in Redis per message. Progress goes to stderr; the last line on stdout
is one JSON object whose unprefixed figures are chatsvc's and `baseline_*` the baseline's.

    .venv/bin/python bench/relay_bench.py            # full run, under 2 minutes
    .venv/bin/python bench/relay_bench.py --quick    # under a minute
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import benchkit
import relay_load
from benchkit import Child, CpuWatch, percentile, rounded, say
from redis import Redis

TAG = "relay-bench"
BASELINE = Path(__file__).with_name("baseline_relay.py")
# Far above what the saturated phase sends per connection: the relay is measured, not the limit.
RELAXED_LIMITS = {"frames_per_second": 1_000_000.0, "frame_burst": 1_000_000}
# How long a phase may take beyond its own length before the bench gives up on a load process.
PHASE_SLACK_S = 60.0
SETUP_TIMEOUT_S = 300.0
# Every message of a phase must have arrived this long after the phase's last send.
DRAIN_S = 10.0
# The first measured instant is this far after the command, so every process starts together.
START_DELAY_S = 0.5


@dataclass(frozen=True)
class Plan:
    pairs: int
    window: int
    rate: int
    clients: int
    warmup_s: float
    duration_s: float
    appendfsync: str
    only_chatsvc: bool = False
    workdir: str | None = None  # keep the servers' logs here instead of a temp dir


@dataclass
class Phase:
    figures: dict[str, object]
    latencies_ms: list[float]


class Loaders:
    """The load-generator processes of one relay, each with its share of the pairs."""

    def __init__(self, plan: Plan, spec: dict[str, object]) -> None:
        context = multiprocessing.get_context("spawn")
        # Kept on self: a spawned child unpickles it after start(), from the parent's copy.
        self.lock = lock = context.Lock()
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for index in range(plan.clients):
            mine = [pair for pair in range(plan.pairs) if pair % plan.clients == index]
            parent, child = context.Pipe()
            process = context.Process(
                target=relay_load.run,
                args=(child, {**spec, "pairs": mine}, lock),
                name=f"relay-load-{index}",
                daemon=True,
            )
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    def gather(self, timeout: float) -> list[object]:
        results = []
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            results.append(benchkit.receive(pipe, max(0.0, deadline - time.monotonic())))
        return results

    def command(self, *args: object) -> None:
        for pipe in self.pipes:
            pipe.send(args)

    def stop(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("close",))
            except OSError:
                pass
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)
            if process.is_alive():
                process.kill()
                process.join()


def redis_stats(client: Redis) -> dict[str, tuple[int, int]]:
    """Calls and µs Redis has spent so far, per command."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(row["calls"]), int(row["usec"]))
        for name, row in stats.items()
    }


def calls_per_msg(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], sent: int
) -> dict[str, float]:
    """Each command's calls per message sent in a phase, the busiest first."""
    if not sent:
        return {}
    rates = {
        name: round((calls - before.get(name, (0, 0))[0]) / sent, 2)
        for name, (calls, _) in after.items()
    }
    return dict(sorted(((n, r) for n, r in rates.items() if r > 0), key=lambda x: -x[1]))


def run_phase(loaders: Loaders, watch: CpuWatch, redis: Redis, plan: Plan, command: str) -> Phase:
    t0 = time.monotonic() + START_DELAY_S
    if command == "saturated":
        loaders.command(command, t0, plan.warmup_s, plan.duration_s, DRAIN_S)
    else:
        share = plan.rate / len(loaders.pipes)
        loaders.command(command, t0, share, plan.warmup_s, plan.duration_s, DRAIN_S)
    stats0 = redis_stats(redis)
    time.sleep(max(0.0, t0 + plan.warmup_s - time.monotonic()))
    watch.start()
    time.sleep(max(0.0, t0 + plan.warmup_s + plan.duration_s - time.monotonic()))
    watch.stop()
    tallies: list[relay_load.Tally] = loaders.gather(  # type: ignore[assignment]
        DRAIN_S + PHASE_SLACK_S
    )
    usage = watch.shares(sum(t.cpu_s for t in tallies))
    stats1 = redis_stats(redis)
    calls0, usec0 = (sum(v[i] for v in stats0.values()) for i in (0, 1))
    calls1, usec1 = (sum(v[i] for v in stats1.values()) for i in (0, 1))
    sent = sum(t.sent for t in tallies)
    errors: dict[str, int] = {}
    for tally in tallies:
        for code, count in tally.errors.items():
            errors[code] = errors.get(code, 0) + count
    closed: dict[str, int] = {}
    for tally in tallies:
        for code, count in tally.closed.items():
            closed[code] = closed.get(code, 0) + count
    figures: dict[str, object] = {
        "sent": sent,
        "delivered": sum(t.delivered for t in tallies),
        "in_window": sum(t.in_window for t in tallies),
        "duplicates": sum(t.duplicates for t in tallies),
        "gaps": sum(t.gaps for t in tallies),
        "refused": sum(t.refused for t in tallies),
        "lost": sum(t.lost for t in tallies),
        "stray": sum(t.stray for t in tallies),
        "errors": errors,
        "closed_sockets": closed,
        **usage,
        "client_cpu_pct_max": max(round(100 * t.cpu_s / plan.duration_s) for t in tallies),
        "redis_calls_per_msg": round((calls1 - calls0) / sent, 2) if sent else None,
        "redis_us_per_msg": round((usec1 - usec0) / sent, 1) if sent else None,
        "redis_calls_by_command": calls_per_msg(stats0, stats1, sent),
    }
    latencies = sorted(ms for t in tallies for ms in t.latencies_ms)
    return Phase(figures, latencies)


def log_warnings(kids: list[Child]) -> dict[str, int]:
    """The servers' warning and error log events, by name (JSON logs; text lines count whole)."""
    counts: dict[str, int] = {}
    for kid in kids:
        for line in kid.lines():
            try:
                event = json.loads(line)
            except ValueError:
                event = {"level": "error", "event": line[:80]} if "Error" in line else {}
            if isinstance(event, dict) and event.get("level") in ("warning", "error", "critical"):
                name = str(event.get("event", "?"))
                counts[name] = counts.get(name, 0) + 1
    return counts


def one_relay(system: str, plan: Plan, tmp: Path) -> dict[str, object]:
    """Fresh Redis, two servers, the load processes; both phases; everything stopped."""
    home = tmp / system
    secret = secrets.token_hex(24)
    server = benchkit.start_redis(home / "redis", plan.appendfsync)
    loaders: Loaders | None = None
    redis = Redis(unix_socket_path=str(server.socket_path), decode_responses=True)
    try:
        with benchkit.children() as kids, contextlib.ExitStack() as before_servers_stop:
            # Load processes go first: a server stopping under open sockets waits for them.
            before_servers_stop.callback(lambda: loaders.stop() if loaders is not None else None)
            ports = []
            for name in ("a", "b"):
                if system == "chatsvc":
                    child, port = benchkit.start_gateway(
                        f"gateway-{name}", home / name, server.url, secret, RELAXED_LIMITS
                    )
                else:
                    (home / name).mkdir(parents=True)
                    argv = [sys.executable, str(BASELINE), "--redis", server.url, "--port", "0"]
                    env = benchkit.child_env()
                    child = Child(f"baseline-{name}", argv, home / name / "relay.log", env)
                    port = int(child.wait_for_line("listening").split()[-1])
                kids.append(child)
                ports.append(port)
            say(TAG, f"{system}: redis pid {server.pid}, servers on ports {ports}")
            spec: dict[str, object] = {
                "system": system,
                "port_a": ports[0],
                "port_b": ports[1],
                "secret": secret,
                "window": plan.window,
            }
            started = time.monotonic()
            loaders = Loaders(plan, spec)
            placed = sum(loaders.gather(SETUP_TIMEOUT_S))  # type: ignore[misc]
            setup_s = time.monotonic() - started
            say(TAG, f"{system}: {placed} pairs placed in {setup_s:.1f} s")
            pids = {"server_a": kids[0].pid, "server_b": kids[1].pid, "redis": server.pid or 0}
            watch = CpuWatch(pids)

            say(TAG, f"{system}: saturated, window {plan.window} per side, {plan.duration_s} s")
            sat = run_phase(loaders, watch, redis, plan, "saturated")
            msgs_per_s = int(sat.figures["in_window"]) / plan.duration_s  # type: ignore[call-overload]
            say(TAG, f"{system}: saturated {msgs_per_s:,.0f} msgs/s {sat.figures}")

            say(TAG, f"{system}: fixed rate {plan.rate:,} msgs/s over {plan.pairs} pairs")
            fixed = run_phase(loaders, watch, redis, plan, "fixed")
            lat = fixed.latencies_ms
            unfinished = int(fixed.figures["lost"])  # type: ignore[call-overload]
            p99 = percentile(lat, 0.99) if unfinished * 100 < len(lat) + 1 else float("inf")
            say(
                TAG,
                f"{system}: fixed p50 {percentile(lat, 0.5):.2f} ms, p99 {p99:.2f} ms, "
                f"max {lat[-1] if lat else float('nan'):.1f} ms {fixed.figures}",
            )
            warnings = log_warnings(kids)
            if warnings:
                say(TAG, f"{system}: server warnings and errors by event: {warnings}")
    finally:
        redis.close()
        server.stop()
    return {
        "msgs_per_s": round(msgs_per_s),
        "p50_ms": rounded(percentile(lat, 0.5)),
        "p99_ms": rounded(p99),
        "p999_ms": rounded(percentile(lat, 0.999)),
        "max_ms": rounded(lat[-1] if lat else float("nan")),
        "setup_s": round(setup_s, 1),
        "saturated": sat.figures,
        "fixed": fixed.figures,
        "server_log_warnings": warnings,
    }


def bench(plan: Plan) -> dict[str, object]:
    load_start = round(os.getloadavg()[0], 2)
    if load_start > 1.0:
        say(TAG, f"warning: 1-minute load average {load_start}: other work will skew figures")
    with (
        contextlib.nullcontext(plan.workdir)
        if plan.workdir
        else tempfile.TemporaryDirectory(prefix="relay-bench-")
    ) as tmp:
        base = None if plan.only_chatsvc else one_relay("baseline", plan, Path(tmp))
        ours = one_relay("chatsvc", plan, Path(tmp))
        base = base or ours
    sat, fixed = ours["saturated"], ours["fixed"]
    assert isinstance(sat, dict) and isinstance(fixed, dict)
    base_sat, base_fixed = base["saturated"], base["fixed"]
    assert isinstance(base_sat, dict) and isinstance(base_fixed, dict)
    ratio = int(ours["msgs_per_s"]) / int(base["msgs_per_s"]) if base["msgs_per_s"] else None  # type: ignore[call-overload]
    if plan.only_chatsvc:
        ratio = None  # no baseline was run: its figures below are chatsvc's own
    return {
        "bench": "relay",
        "pairs": plan.pairs,
        "msgs_per_s": ours["msgs_per_s"],
        "p50_ms": ours["p50_ms"],
        "p99_ms": ours["p99_ms"],
        "baseline_msgs_per_s": base["msgs_per_s"],
        "ratio_to_baseline": rounded(ratio) if ratio is not None else None,
        "baseline_p50_ms": base["p50_ms"],
        "baseline_p99_ms": base["p99_ms"],
        "rate": plan.rate,
        "window": plan.window,
        "fsync": plan.appendfsync,
        "clients": plan.clients,
        "client_cpu_pct": sat["client_cpu_pct"],
        "client_cpu_pct_max": sat["client_cpu_pct_max"],
        "duplicates": sat["duplicates"] + fixed["duplicates"],
        "gaps": sat["gaps"] + fixed["gaps"],
        "lost": sat["lost"] + fixed["lost"],
        "refused": sat["refused"] + fixed["refused"],
        "errors": {**sat["errors"], **fixed["errors"]},
        "closed_sockets": {**sat["closed_sockets"], **fixed["closed_sockets"]},
        "p999_ms": ours["p999_ms"],
        "max_ms": ours["max_ms"],
        "baseline_p999_ms": base["p999_ms"],
        "baseline_max_ms": base["max_ms"],
        "baseline_duplicates": base_sat["duplicates"] + base_fixed["duplicates"],
        "baseline_gaps": base_sat["gaps"] + base_fixed["gaps"],
        "baseline_lost": base_sat["lost"] + base_fixed["lost"],
        "cpu_pct": {k: v for k, v in sat.items() if k.endswith("cpu_pct")},
        "cpu_pct_fixed": {k: v for k, v in fixed.items() if k.endswith("cpu_pct")},
        "baseline_cpu_pct": {k: v for k, v in base_sat.items() if k.endswith("cpu_pct")},
        "redis_calls_per_msg": sat["redis_calls_per_msg"],
        "redis_calls_by_command": sat["redis_calls_by_command"],
        "redis_us_per_msg": sat["redis_us_per_msg"],
        "baseline_redis_calls_per_msg": base_sat["redis_calls_per_msg"],
        "baseline_redis_us_per_msg": base_sat["redis_us_per_msg"],
        "server_log_warnings": ours["server_log_warnings"],
        "setup_s": ours["setup_s"],
        "seconds": {"warmup": plan.warmup_s, "measured": plan.duration_s},
        "machine": benchkit.machine(load_start, benchkit.redis_version()),
    }


def parse(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1 s + 5 s phases")
    parser.add_argument("--pairs", type=int, default=100, help="patient-doctor pairs (100)")
    parser.add_argument("--window", type=int, default=2, help="unacked sends per side (2)")
    parser.add_argument("--rate", type=int, default=2000, help="fixed-rate msgs/s (2000)")
    parser.add_argument("--clients", type=int, default=2, help="load processes (2)")
    parser.add_argument("--duration", type=float, help="measured s per phase (15; quick 5)")
    parser.add_argument("--fsync", choices=("always", "off"), default="always")
    parser.add_argument(
        "--only-chatsvc",
        action="store_true",
        help="skip the baseline (for profiling a gateway; no ratio is reported)",
    )
    parser.add_argument(
        "--workdir", help="an empty directory to keep Redis's and the servers' logs in"
    )
    args = parser.parse_args(argv)
    duration = args.duration if args.duration is not None else (5.0 if args.quick else 15.0)
    if not (1 <= args.pairs <= 2000 and 1 <= args.window <= 64 and 1 <= args.rate <= 50_000):
        parser.error("--pairs must be 1..2000, --window 1..64, --rate 1..50000")
    if not (1 <= args.clients <= min(16, args.pairs) and 1 <= duration <= 120):
        parser.error("--clients must be 1..16 (and at most --pairs), --duration 1..120 s")
    return Plan(
        pairs=args.pairs,
        window=args.window,
        rate=args.rate,
        clients=args.clients,
        warmup_s=1.0 if args.quick else 2.0,
        duration_s=duration,
        appendfsync="always" if args.fsync == "always" else "no",
        only_chatsvc=args.only_chatsvc,
        workdir=args.workdir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse(argv)
    return benchkit.run_to_json_line(TAG, lambda: bench(plan))


if __name__ == "__main__":
    sys.exit(main())
