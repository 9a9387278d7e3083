"""The relay bench's load generator: one process driving its share of the pairs.

`relay_bench.py` starts one or more of these (multiprocessing) and talks to each over a pipe:
set up the pairs, run a phase, report, close. Every pair lives in one process, its patient's
socket on gateway A and its doctor's on gateway B, so a message's due time and its delivery
are read off the same clock without crossing processes.

Two dialects, one load: `chatsvc` speaks the real protocol (hello with a token, join, take_next,
send with a `client_msg_id`); `baseline` speaks `baseline_relay.py`'s (a placement frame, then
raw frames). Both send the same text; each message's `client_msg_id` is `<phase><n>`, n counting
0, 1, 2, … per direction and phase, so the receiving side checks that each arrives once and in
order (a repeat is a duplicate, a skip a gap) and, at the fixed rate, finds its due time.

It measures, never judges: figures go back to the parent, which decides what they mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Lock

import aiohttp
import msgspec

from chatsvc import tokens

# A typical chat line (62 characters), the same for both relays.
TEXT = "Thank you, doctor. The cough is worse at night and my throat hurts."
# A setup step that takes longer than this is a broken gateway, not a slow one.
SETUP_TIMEOUT_S = 20.0
# The loop's timers tick in whole ms: messages due within this horizon leave together.
TIMER_TICK_S = 0.001
SEND_HORIZON_S = 2 * TIMER_TICK_S
TOKEN_TTL_S = 7200
# Each doctor holds one pair's consultation; one spare place keeps at_capacity out of reach.
DOCTOR_CAPACITY = 2


class Entry(msgspec.Struct):
    role: str = ""
    client_msg_id: str = ""


class Inbound(msgspec.Struct):
    """The few fields of a server frame the load needs; the rest are skipped, not decoded."""

    type: str = ""
    entry: Entry | None = None
    client_msg_id: str = ""
    code: str = ""
    ref: str | None = None


DECODE = msgspec.json.Decoder(Inbound).decode


@dataclass
class Tally:
    """One worker's figures for one phase."""

    sent: int = 0
    acked: int = 0
    delivered: int = 0  # first arrivals on the other side, whole phase
    in_window: int = 0  # of those, arrived inside the measured window
    duplicates: int = 0
    gaps: int = 0  # acknowledged messages skipped over (arrived out of order, or never)
    refused: int = 0  # sends answered with an error frame (not stored: never delivered)
    stray: int = 0  # arrivals of another phase's messages
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    lost: int = 0  # sent but never delivered by the end of the drain
    cpu_s: float = 0.0  # this process's CPU over the measured window
    closed: dict[str, int] = field(default_factory=dict)  # sockets closed so far, by close code


class Side:
    """One socket of a pair: what it has sent this phase and what it has had from its peer."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, role: str, user: str) -> None:
        self.ws = ws
        self.role = role  # "patient" | "doctor"
        self.user = user
        self.tag = role[0]
        self.peer: Side | None = None
        self.consultation = ""
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.handler: Callable[[str], None] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.dead = False  # the server closed this socket: nothing more is sent on it
        # This phase:
        self.next_n = 0
        self.expected = 0  # the next n due from the peer
        self.due: list[float] = []  # this side's sends: due time of each n (fixed rate)
        self.refused: set[int] = set()  # this side's sends answered with an error
        self.window: asyncio.Semaphore = asyncio.Semaphore(1)

    def start_reading(self) -> None:
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                if self.handler is not None:
                    self.handler(message.data)
                else:
                    self.queue.put_nowait(message.data)
            elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                break
        self.dead = True

    async def expect(self, wanted: Callable[[dict[str, object]], bool]) -> dict[str, object]:
        """The next frame `wanted` accepts (others are skipped); an error frame raises."""
        async with asyncio.timeout(SETUP_TIMEOUT_S):
            while True:
                raw = await self.queue.get()
                frame = json.loads(raw) if raw != "a" else {"type": "ack"}
                if frame.get("type") == "error":
                    raise RuntimeError(f"{self.user}: error frame in setup: {frame}")
                if wanted(frame):
                    return frame


class Worker:
    def __init__(self, spec: dict[str, object], setup_lock: Lock) -> None:
        self.spec = spec
        self.system = str(spec["system"])
        self.lock = setup_lock
        self.pairs: list[tuple[Side, Side]] = []
        self.session: aiohttp.ClientSession | None = None
        self.tally = Tally()
        self.phase = "s"
        self.fixed = False
        self.window_start = 0.0
        self.window_end = 0.0

    # -- connecting -----------------------------------------------------------------------

    async def connect(self, port: int, role: str, user: str) -> Side:
        assert self.session is not None
        url = f"http://127.0.0.1:{port}/ws"
        protocols = ("chatsvc.json",) if self.system == "chatsvc" else ()
        ws = await self.session.ws_connect(url, protocols=protocols, max_msg_size=0)
        side = Side(ws, role, user)
        side.start_reading()
        return side

    async def setup(self) -> int:
        connector = aiohttp.TCPConnector(limit=0)
        self.session = aiohttp.ClientSession(connector=connector)
        port_a, port_b = int(self.spec["port_a"]), int(self.spec["port_b"])  # type: ignore[call-overload]
        for index in self.spec["pairs"]:  # type: ignore[attr-defined]
            patient = await self.connect(port_a, "patient", f"p{index}")
            doctor = await self.connect(port_b, "doctor", f"d{index}")
            if self.system == "chatsvc":
                await self.place_chatsvc(patient, doctor)
            else:
                for side in (patient, doctor):
                    await side.ws.send_str(json.dumps({"pair": str(index), "side": side.tag}))
                    await side.expect(lambda frame: frame["type"] == "ack")
            patient.peer, doctor.peer = doctor, patient
            for side in (patient, doctor):
                side.handler = self.make_handler(side)
            self.pairs.append((patient, doctor))
        return len(self.pairs)

    async def place_chatsvc(self, patient: Side, doctor: Side) -> None:
        """Patient joins on A, doctor takes next on B: a consultation, through the protocol."""
        secret = str(self.spec["secret"])
        now = time.time()
        hello_p = tokens.issue(secret, tokens.Role.PATIENT, patient.user, now, TOKEN_TTL_S)
        hello_d = tokens.issue(
            secret,
            tokens.Role.DOCTOR,
            doctor.user,
            now,
            TOKEN_TTL_S,
            name=f"Dr {doctor.user}",
            departments=("general",),
            capacity=DOCTOR_CAPACITY,
        )
        for side, token in ((patient, hello_p), (doctor, hello_d)):
            await side.ws.send_str(json.dumps({"type": "hello", "token": token, "id": "h"}))
            await side.expect(lambda frame: frame["type"] == "welcome")
        on_duty = {"type": "set_status", "status": "available", "id": "s"}
        await doctor.ws.send_str(json.dumps(on_duty))
        await doctor.expect(lambda frame: frame.get("ref") == "s")
        # One pair at a time over all workers: the doctor's take_next must find this patient.
        await asyncio.get_running_loop().run_in_executor(None, self.lock.acquire)
        try:
            intake = {"symptoms": "dry cough", "age_band": "18-39", "duration": "days"}
            join = {
                "type": "join",
                "department": "general",
                "intake": intake,
                "consent": True,
                "notice_acknowledged": True,
                "id": "j",
            }
            await patient.ws.send_str(json.dumps(join))
            await patient.expect(lambda frame: frame.get("ref") == "j")
            await doctor.ws.send_str(json.dumps({"type": "take_next", "id": "t"}))
            opened = await doctor.expect(lambda frame: frame.get("ref") == "t")
        finally:
            self.lock.release()
        view = opened["consultation"]
        assert isinstance(view, dict)
        if view.get("patient") != patient.user:
            raise RuntimeError(f"{doctor.user} took {view.get('patient')}, not {patient.user}")
        consultation = str(view["id"])
        await patient.expect(
            lambda frame: frame["type"] == "assigned" and frame["consultation"] == consultation
        )
        patient.consultation = doctor.consultation = consultation

    # -- frames in --------------------------------------------------------------------------

    def make_handler(self, side: Side) -> Callable[[str], None]:
        if self.system == "baseline":

            def on_baseline(data: str) -> None:
                if data == "a":
                    self.on_ack(side)
                else:
                    self.on_delivered(side, DECODE(data).client_msg_id)

            return on_baseline

        def on_chatsvc(data: str) -> None:
            frame = DECODE(data)
            kind = frame.type
            if kind == "message":
                entry = frame.entry
                if entry is not None and entry.role != side.role:  # not our own echo
                    self.on_delivered(side, entry.client_msg_id)
            elif kind == "ack":
                self.on_ack(side)
            elif kind == "error":
                self.tally.errors[frame.code] = self.tally.errors.get(frame.code, 0) + 1
                self.tally.refused += 1
                # The frame id is the client_msg_id: the receiver must not count it as a gap.
                if frame.ref and frame.ref[:1] == self.phase:
                    side.refused.add(int(frame.ref[1:]))
                self.on_ack(side)  # a refused send frees its place in the window

        return on_chatsvc

    def on_ack(self, side: Side) -> None:
        self.tally.acked += 1
        if not self.fixed:
            side.window.release()

    def on_delivered(self, side: Side, client_msg_id: str) -> None:
        tally = self.tally
        if client_msg_id[:1] != self.phase:
            tally.stray += 1
            return
        n = int(client_msg_id[1:])
        if n < side.expected:
            tally.duplicates += 1
            return
        if n > side.expected:
            refused = side.peer.refused if side.peer is not None else set()
            tally.gaps += sum(1 for skipped in range(side.expected, n) if skipped not in refused)
        side.expected = n + 1
        tally.delivered += 1
        now = time.monotonic()
        if self.fixed:
            assert side.peer is not None
            due = side.peer.due[n]
            if due >= self.window_start:
                tally.latencies_ms.append((now - due) * 1000)
        elif self.window_start <= now < self.window_end:
            tally.in_window += 1

    # -- frames out -------------------------------------------------------------------------

    def frame(self, side: Side, n: int) -> str:
        if self.system == "chatsvc":
            return (
                f'{{"type":"send","consultation":"{side.consultation}",'
                f'"client_msg_id":"{self.phase}{n}","text":"{TEXT}","id":"{self.phase}{n}"}}'
            )
        return f'{{"type":"send","client_msg_id":"{self.phase}{n}","text":"{TEXT}"}}'

    def begin(self, phase: str, fixed: bool, t0: float, warmup: float, duration: float) -> None:
        self.tally = Tally()
        self.phase, self.fixed = phase, fixed
        self.window_start, self.window_end = t0 + warmup, t0 + warmup + duration
        for pair in self.pairs:
            for side in pair:
                side.next_n, side.expected, side.due, side.refused = 0, 0, [], set()
                side.window = asyncio.Semaphore(int(self.spec["window"]))  # type: ignore[call-overload]

    async def measure_cpu(self) -> None:
        await asyncio.sleep(max(0.0, self.window_start - time.monotonic()))
        before = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(max(0.0, self.window_end - time.monotonic()))
        after = resource.getrusage(resource.RUSAGE_SELF)
        self.tally.cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)

    async def saturated(self, t0: float, warmup: float, duration: float, drain: float) -> Tally:
        """Each side keeps `window` messages unacknowledged, back to back, until the end."""
        self.begin("s", False, t0, warmup, duration)
        stop = asyncio.Event()

        async def pump(side: Side) -> None:
            while True:
                await side.window.acquire()
                if stop.is_set() or not await self.send(side, side.next_n):
                    return
                side.next_n += 1
                self.tally.sent += 1

        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        cpu = asyncio.create_task(self.measure_cpu())
        pumps = [asyncio.create_task(pump(side)) for pair in self.pairs for side in pair]
        await asyncio.sleep(max(0.0, self.window_end - time.monotonic()))
        stop.set()
        for pair in self.pairs:
            for side in pair:
                side.window.release()  # wake every pump so it sees the stop
        await asyncio.gather(*pumps, cpu)
        await self.drain(drain)
        return self.tally

    async def fixed_rate(
        self, t0: float, rate: float, warmup: float, duration: float, drain: float
    ) -> Tally:
        """Open loop: message k is due at t0 + k/rate whatever happened to earlier ones."""
        self.begin("f", True, t0, warmup, duration)
        total = int(rate * (warmup + duration))
        count = len(self.pairs)
        cpu = asyncio.create_task(self.measure_cpu())
        k = 0
        while k < total:
            now = time.monotonic()
            while k < total and t0 + k / rate <= now + SEND_HORIZON_S:
                patient, doctor = self.pairs[k % count]
                side = patient if (k // count) % 2 == 0 else doctor
                # A message sent early (inside the horizon) is timed from its sending.
                k += 1
                if side.dead:
                    continue
                side.due.append(min(t0 + (k - 1) / rate, now))
                if not await self.send(side, side.next_n):
                    side.due.pop()
                    continue
                side.next_n += 1
                self.tally.sent += 1
            if k < total:
                wake = t0 + k / rate - SEND_HORIZON_S
                await asyncio.sleep(max(wake - time.monotonic(), TIMER_TICK_S))
        await cpu
        await self.drain(drain)
        return self.tally

    async def send(self, side: Side, n: int) -> bool:
        """Send message n; False (and counted once) if the server has closed the socket."""
        if not side.dead:
            try:
                await side.ws.send_str(self.frame(side, n))
                return True
            except (ConnectionError, aiohttp.ClientError):
                side.dead = True
        return False

    async def drain(self, timeout: float) -> None:
        """Wait until every message sent has reached the other side (or the time is up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.missing():
            await asyncio.sleep(0.02)
        self.tally.lost = self.missing()
        for pair in self.pairs:
            for side in pair:
                if side.dead:
                    code = str(side.ws.close_code)
                    self.tally.closed[code] = self.tally.closed.get(code, 0) + 1

    def missing(self) -> int:
        return sum(
            max(0, side.next_n - side.peer.expected)
            - sum(1 for n in side.refused if n >= side.peer.expected)
            for pair in self.pairs
            for side in pair
            if side.peer is not None
        )

    async def close(self) -> None:
        sides = [side for pair in self.pairs for side in pair]
        for side in sides:
            if side.reader is not None:
                side.reader.cancel()  # ws.close() reads the peer's close frame itself
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await asyncio.gather(*(side.ws.close() for side in sides), return_exceptions=True)
        if self.session is not None:
            await self.session.close()


def run(pipe: Connection, spec: dict[str, object], setup_lock: Lock) -> None:
    """The worker process: obey the parent's commands until `close` (or the pipe closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it stops us
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        worker = Worker(spec, setup_lock)
        try:
            pipe.send(("ready", runner.run(worker.setup())))
            while True:
                command, *args = pipe.recv()
                if command == "close":
                    break
                phase = worker.saturated if command == "saturated" else worker.fixed_rate
                tally = runner.run(phase(*args))
                pipe.send(("done", tally))
        except EOFError:
            pass
        except BaseException as error:  # reported to the parent, which fails the run
            with contextlib.suppress(OSError):
                pipe.send(("failed", f"{type(error).__name__}: {error}"))
            raise
        finally:
            runner.run(worker.close())
