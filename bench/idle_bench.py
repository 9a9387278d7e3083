"""Idle authenticated connections on one gateway process: memory each, and connects per second.

The bench starts a fresh redis-server with chatsvc's embedded settings (`appendfsync always`)
on a unix socket in a temp dir and one `chatsvc serve` on a free loopback port using it, with
`[limits] max_connections` above `--connections`. It raises RLIMIT_NOFILE (the gateway inherits
it). Load processes (`--clients`, 2) each open their share of the connections, `--concurrency`
(64) handshakes in flight per process, with a raw WebSocket client on an asyncio Protocol (not
aiohttp's, which cost as much CPU per connect as the gateway): the upgrade to `/ws` (subprotocol
`chatsvc.json`, Sec-WebSocket-Accept checked), then `hello` with a patient token signed with the
gateway's secret (issued and masked before the clock starts), then `welcome` naming that
patient, which must be the first frame; afterwards it answers the server's pings.

- `connects_per_s`: connections / the time from the common start to the last `welcome`.
  `connect_p50_ms`, `connect_p99_ms`: one connection's TCP connect + upgrade + hello→welcome.
- `kib_per_connection`: the gateway's VmRSS (/proc/<pid>/status) after every connection is
  open and 2 s of quiet, less its VmRSS before (after 50 warm-up connections came and went, so
  first-use allocations are not charged to the idle ones), over the connections.
- `client_cpu_pct`: the load processes' own CPU over the connect phase (getrusage), in shares
  of one core like the gateway's and Redis's; `client_cpu_pct_max` the busiest process's.
  `gateway_cpu_ms_per_connect`, `client_cpu_ms_per_connect`: the same per connection.

Progress goes to stderr; the last line on stdout is one JSON object.

    .venv/bin/python bench/idle_bench.py            # 10,000 connections, about a minute
    .venv/bin/python bench/idle_bench.py --quick    # 2,000 connections
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import multiprocessing
import os
import resource
import secrets
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import benchkit
import msgspec
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


# -- the load client: a raw WebSocket on an asyncio Protocol --------------------------------------
#
# aiohttp's client spends about as much CPU on a connect as the gateway does (the session's
# request machinery, its header parsing, a task per reader), so with both on two cores the
# client set the figure. This one does only what a connection needs: it writes an upgrade request
# whose bytes are built once per process, checks the 101 (status, Sec-WebSocket-Accept of its
# own random key, subprotocol), writes the `hello` frame masked before the clock started, parses
# server frames (the length header and the `type` and `user_id` of text frames), answers pings,
# and counts the connection as opened only on a `welcome` naming its own user.

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


class Frame(msgspec.Struct):
    """The fields of a server frame the load checks; the rest are skipped, not decoded."""

    type: str = ""
    user_id: str = ""
    code: str = ""


FRAME = msgspec.json.Decoder(Frame)


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN set), masked with a fresh random key as RFC 6455 asks."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    body = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
    return head + mask + body


@dataclass(frozen=True)
class Hello:
    """What one connection sends, built before the clock starts."""

    user_id: str
    key: bytes  # Sec-WebSocket-Key
    accept: bytes  # the Sec-WebSocket-Accept the server must answer with
    frame: bytes  # the masked `hello` frame


def prepare_hello(secret: str, user_id: str, now: float) -> Hello:
    token = tokens.issue(secret, tokens.Role.PATIENT, user_id, now, TOKEN_TTL_S)
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    hello = msgspec.json.encode({"type": "hello", "token": token})
    return Hello(user_id, key, accept, masked_frame(OP_TEXT, hello))


class Handshake(asyncio.Protocol):
    """One connection: upgrade, hello, wait for welcome; afterwards answer pings, hold on."""

    def __init__(self, request: tuple[bytes, bytes], hello: Hello, welcomed: asyncio.Future[None]):
        self._request = request
        self._hello = hello
        self._welcomed = welcomed
        self._buffer = b""
        self._upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        head, tail = self._request
        transport.write(head + self._hello.key + tail)

    def data_received(self, data: bytes) -> None:
        try:
            self._buffer += data
            if not self._upgraded and not self._read_upgrade():
                return
            self._read_frames()
        except ConnectionError as error:
            self._fail(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("closed before welcome"))

    def _fail(self, error: Exception) -> None:
        if not self._welcomed.done():
            self._welcomed.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def _read_upgrade(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head, self._buffer = self._buffer[:end].lower(), self._buffer[end + 4 :]
        if not head.startswith(b"http/1.1 101 "):
            raise ConnectionError(f"upgrade refused: {head[:40]!r}")
        if b"\r\nsec-websocket-accept: " + self._hello.accept.lower() not in head:
            raise ConnectionError("wrong Sec-WebSocket-Accept")
        if b"\r\nsec-websocket-protocol: chatsvc.json" not in head:
            raise ConnectionError("no chatsvc.json subprotocol")
        self._upgraded = True
        assert self.transport is not None
        self.transport.write(self._hello.frame)
        return True

    def _read_frames(self) -> None:
        buffer = self._buffer
        at = 0
        while len(buffer) - at >= 2:
            first, second = buffer[at], buffer[at + 1]
            if second & 0x80:
                raise ConnectionError("the server masked a frame")
            size, start = second & 0x7F, at + 2
            if size == 126:
                if len(buffer) - at < 4:
                    break
                size, start = struct.unpack_from("!H", buffer, at + 2)[0], at + 4
            elif size == 127:
                if len(buffer) - at < 10:
                    break
                size, start = struct.unpack_from("!Q", buffer, at + 2)[0], at + 10
            if len(buffer) - start < size:
                break
            self._on_frame(first & 0x0F, buffer[start : start + size])
            at = start + size
        self._buffer = buffer[at:]

    def _on_frame(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        if opcode == OP_PING:
            self.transport.write(masked_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else None
            raise ConnectionError(f"closed before welcome: {code}")
        elif opcode == OP_TEXT and not self._welcomed.done():
            frame = FRAME.decode(payload)
            if frame.type == "welcome" and frame.user_id == self._hello.user_id:
                self._welcomed.set_result(None)
            elif frame.type == "error":
                raise ConnectionError(f"error before welcome: {frame.code}")
            else:  # the first frame is always welcome, for the user the token names
                raise ConnectionError(f"first frame {frame.type!r} for {frame.user_id!r}")


# -- the load process ----------------------------------------------------------------------------


def upgrade_request(port: int) -> tuple[bytes, bytes]:
    """The upgrade request's bytes before and after the Sec-WebSocket-Key value."""
    head = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: chatsvc.json\r\nSec-WebSocket-Key: "
    )
    return head.encode(), b"\r\n\r\n"


async def hold(
    port: int, request: tuple[bytes, bytes], hello: Hello, report: Report
) -> asyncio.Transport | None:
    """Open one connection and say hello; its transport once welcomed, else None (counted)."""
    loop = asyncio.get_running_loop()
    welcomed: asyncio.Future[None] = loop.create_future()
    transport: asyncio.Transport | None = None
    started = time.monotonic()
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            transport, _ = await loop.create_connection(
                lambda: Handshake(request, hello, welcomed), "127.0.0.1", port
            )
            await welcomed
    except (ConnectionError, TimeoutError, OSError, msgspec.DecodeError) as error:
        name = type(error).__name__
        report.failed[name] = report.failed.get(name, 0) + 1
        if transport is not None:
            transport.abort()
        return None
    report.latencies_ms.append((time.monotonic() - started) * 1000)
    report.opened += 1
    return transport


async def open_all(spec: dict[str, object], pipe: Connection) -> None:
    port, count = int(spec["port"]), int(spec["count"])  # type: ignore[call-overload]
    secret, index = str(spec["secret"]), int(spec["index"])  # type: ignore[call-overload]
    request = upgrade_request(port)
    now = time.time()
    hellos = [prepare_hello(secret, f"idle{index}x{n}", now) for n in range(count)]
    held: list[asyncio.Transport] = []
    report = Report()
    pipe.send(("ready", None))
    loop = asyncio.get_running_loop()
    _, t0 = await loop.run_in_executor(None, pipe.recv)
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    pending = iter(hellos)

    async def connector() -> None:
        for hello in pending:
            transport = await hold(port, request, hello, report)
            if transport is not None:
                held.append(transport)

    await asyncio.gather(*(connector() for _ in range(int(spec["concurrency"]))))  # type: ignore[call-overload]
    report.finished_at = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    report.cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    pipe.send(("done", report))
    await loop.run_in_executor(None, pipe.recv)  # "close": the parent has read the gateway
    for transport in held:
        transport.abort()  # drops every socket at once; a graceful close of each is slow


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
        request = upgrade_request(port)
        for n in range(WARMUP_CONNECTIONS):
            report = Report()
            hello = prepare_hello(secret, f"warm{n}", time.time())
            transport = await hold(port, request, hello, report)
            if transport is None:
                raise RuntimeError(f"warm-up connection refused: {report.failed}")
            transport.close()

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
    per = opened or float("nan")  # per-connect figures of a run that opened nothing: null
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
        # CPU per connect, so runs on busier or slower days compare: the gateway's (over the
        # watched window) and the load processes' together.
        "gateway_cpu_ms_per_connect": rounded(usage["gateway_cpu_pct"] * elapsed * 10 / per),
        "client_cpu_ms_per_connect": rounded(1000 * sum(r.cpu_s for r in reports) / per),
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
