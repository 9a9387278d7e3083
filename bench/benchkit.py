"""What the gateway benches share: child servers on loopback, their CPU and memory, the machine.

`relay_bench.py` and `idle_bench.py` import this (they run as scripts, so `bench/` is on
sys.path). It starts and stops processes and reads /proc; it never speaks the chat protocol.
Every child it starts gets its own session (Ctrl-C reaches only the bench, which stops them in
order) and PR_SET_PDEATHSIG (a bench killed outright takes them with it).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType

from chatsvc.embedded_redis import EmbeddedRedis, redis_server_version

# A cold `chatsvc serve` imports aiohttp, redis-py and the triage scripts: seconds on a busy VM.
START_TIMEOUT_S = 30.0
# Servers close their sockets and exit on SIGTERM well within this; past it they are killed.
STOP_TIMEOUT_S = 10.0
POLL_S = 0.05
# Other work above this share of a core while a phase ran skews it: the bench says so.
BUSY_MACHINE_PCT = 20
_PR_SET_PDEATHSIG = 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def say(tag: str, text: str) -> None:
    print(f"[{tag}] {text}", file=sys.stderr, flush=True)


def die_with_parent() -> None:
    """Runs in a child before exec: if the bench is killed outright, the child goes too."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Stopped(Exception):
    """SIGTERM (or SIGHUP) reached the bench: unwind and clean up, as for Ctrl-C."""


def raise_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def run_to_json_line(tag: str, bench: Callable[[], dict[str, object]]) -> int:
    """Run a bench; its result is the one JSON line on stdout. Ctrl-C or SIGTERM: exit 130,
    after every `finally` on the way has stopped what it started."""
    raise_on_sigterm()
    try:
        result = bench()
    except (KeyboardInterrupt, Stopped):
        say(tag, "interrupted: every process it started has been stopped")
        return 130
    print(json.dumps(result), flush=True)
    return 0


def receive(pipe: Connection, timeout: float) -> object:
    """A load process's next report, sent as (kind, value); its failure is raised here."""
    if not pipe.poll(timeout):
        raise RuntimeError("a load process did not answer in time")
    try:
        kind, value = pipe.recv()
    except EOFError:
        raise RuntimeError("a load process exited without a report") from None
    if kind == "failed":
        raise RuntimeError(f"a load process failed: {value}")
    return value


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it) toward `wanted`; the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * fraction // 1))
    return sorted_values[int(rank) - 1]


def rounded(value: float, digits: int = 3) -> float | None:
    """A figure for the JSON line: None for nan or infinity."""
    return round(value, digits) if value == value and abs(value) != float("inf") else None


# -- processes ---------------------------------------------------------------------------------


class Child:
    """A server child process whose stderr goes to a file (never a pipe that could fill)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def wait_for_line(self, needle: str, timeout: float = START_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if needle in line:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(POLL_S)
        tail = "\n".join(self.lines()[-20:])
        raise RuntimeError(f"{self.name} never logged {needle!r}; its last lines:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def child_env() -> dict[str, str]:
    return {**os.environ, "CHATSVC_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}


def start_gateway(
    name: str, directory: Path, redis_url: str, secret: str, limits: dict[str, float]
) -> tuple[Child, int]:
    """`chatsvc serve` on a free loopback port with its own data dir; returns it and its port."""
    directory.mkdir(parents=True)
    limit_lines = "\n".join(f"{key} = {value!r}" for key, value in limits.items())
    config = "\n".join(
        [
            'data_dir = "data"',
            '[server]\nhost = "127.0.0.1"\nport = 0',
            f"[redis]\nurl = {json.dumps(redis_url)}",
            f"[auth]\ntoken_secret = {json.dumps(secret)}\ntoken_ttl_s = 7200",
            f"[limits]\n{limit_lines}" if limits else "",
            "",
        ]
    )
    path = directory / "config.toml"
    path.write_text(config, encoding="utf-8")
    argv = [sys.executable, "-m", "chatsvc", "serve", "--config", str(path)]
    child = Child(name, argv, directory / "gateway.log", child_env())
    line = child.wait_for_line('"chatsvc_listening"')
    port = int(json.loads(line)["port"])
    wait_ready(f"http://127.0.0.1:{port}/readyz")
    return child, port


def wait_ready(url: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (loopback)
                if answer.status == 200:
                    return
        time.sleep(POLL_S)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """Every child appended to the list is stopped on the way out, newest first."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            child.stop()


def start_redis(directory: Path, appendfsync: str) -> EmbeddedRedis:
    """A fresh redis-server with chatsvc's embedded settings (AOF, `appendfsync` as given)."""
    server = EmbeddedRedis(directory, appendfsync=appendfsync)
    server.start()
    return server


def redis_version() -> str:
    with contextlib.suppress(Exception):
        from chatsvc.embedded_redis import find_redis_server

        return ".".join(str(part) for part in redis_server_version(find_redis_server()))
    return "unknown"


# -- /proc ---------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy since boot."""
    try:
        fields = [int(part) for part in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def own_cpu_s() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class CpuWatch:
    """CPU % of one core used by named processes between `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._before: dict[str, float] = {}
        self._wall = 0.0
        self._busy = 0.0
        self._used: dict[str, float] = {}

    def start(self) -> None:
        self._wall = time.monotonic()
        self._busy = machine_busy_s()
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self._wall = time.monotonic() - self._wall
        self._busy = machine_busy_s() - self._busy
        self._used = {
            name: cpu_seconds(pid) - self._before[name] for name, pid in self.pids.items()
        }

    def shares(self, client_cpu_s: float) -> dict[str, int]:
        """Shares of one core between start and stop; `client_cpu_s` is the load's own."""
        wall, used = self._wall, self._used
        shares = {f"{name}_cpu_pct": round(100 * spent / wall) for name, spent in used.items()}
        shares["client_cpu_pct"] = round(100 * client_cpu_s / wall)
        other = self._busy - sum(used.values()) - client_cpu_s
        shares["other_cpu_pct"] = max(0, round(100 * other / wall))
        return shares


def machine(load_start: float, redis: str) -> dict[str, object]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        import uvloop  # noqa: F401

        uvloop_used = True
    except ImportError:
        uvloop_used = False
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "redis": redis,
        "uvloop": uvloop_used,
        # Other work on the machine skews every figure: a load above ~0.5 here says so.
        "loadavg_1m_start": load_start,
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
    }
