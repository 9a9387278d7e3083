"""One simulated run against a live service, from the setup checks to the last closed socket.

Owns the order of a run: check that the service is on a loopback address (unless allowed) and
ready, that the secret signs tokens it accepts and that it knows the departments; connect the
doctors; start each planned patient on time; stop the arrivals after the duration; let open
consultations finish for at most the drain time; then cut the rest short, close every client and
hand back the `Journal`. A failure before the first patient is a `SetupError`; a failure during
the run is counted in the journal, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

import aiohttp
import websockets

from chatsvc import tokens
from chatsvc.client import ChatClient
from chatsvc.client.client import ChatError
from chatsvc.simulate.actors import TURN_TIMEOUT_S, Doctor, DoctorPlan, Setting, Stage, run_patient
from chatsvc.simulate.arrivals import plan_patients
from chatsvc.simulate.journal import Journal
from chatsvc.simulate.scenario import Scenario

# How long the service gets to answer /readyz and the probe's hello.
READY_TIMEOUT_S = 5.0
# How often the drain looks whether every consultation has ended, and the progress line redrawn.
DRAIN_CHECK_S = 0.1
PROGRESS_EVERY_S = 0.5
# After the drain: how long the actors get to end, leave and close before they are cancelled.
SETTLE_TIMEOUT_S = TURN_TIMEOUT_S + 10.0
# Tokens outlive the run; an hour at least, like the desk's own default.
MIN_TOKEN_TTL_S = 3600

Progress = Callable[[Journal, float, str], None]  # (journal, seconds into the run, phase)


class SetupError(Exception):
    """The run could not start: the service is remote, unreachable, not ready, refuses the
    secret's tokens, or lacks a department of the mix. Nothing was simulated."""


def ws_url_of(url: str) -> str:
    """`http://host:port` (or `ws://`, with or without `/ws`) → `ws://host:port/ws`."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise SetupError(f"--url {url!r}: expected http://host:port")
    path = parts.path.rstrip("/")
    return f"{scheme}://{parts.netloc}{path if path.endswith('/ws') else path + '/ws'}"


def http_url_of(url: str) -> str:
    parts = urlsplit(ws_url_of(url))
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}{parts.path.removesuffix('/ws')}"


def is_loopback(url: str) -> bool:
    host = urlsplit(ws_url_of(url)).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def check_ready(url: str) -> None:
    readyz = http_url_of(url) + "/readyz"
    timeout = aiohttp.ClientTimeout(total=READY_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(readyz) as response:
                if response.status != 200:
                    raise SetupError(f"{readyz} answered {response.status}: the desk is not ready")
    except (aiohttp.ClientError, TimeoutError) as error:
        raise SetupError(f"cannot reach {readyz}: {error or type(error).__name__}") from None


async def desk_departments(setting: Setting) -> dict[str, str]:
    """The desk's departments (id → routing), from a probe patient's welcome."""
    probe = ChatClient(setting.ws_url, setting.token(tokens.Role.PATIENT, f"sim-{setting.run_id}"))
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            welcome = await probe.connect()
    except ChatError as error:
        raise SetupError(
            f"the service refused a signed token ({error.code}): {_SECRET_HINT}"
        ) from None
    except (OSError, TimeoutError, websockets.WebSocketException) as error:
        raise SetupError(f"cannot open {setting.ws_url}: {error}") from None
    finally:
        await probe.close()
    return {department.id: department.routing for department in welcome.departments}


_SECRET_HINT = "pass the running service's --config, or its secret with --secret"


async def refuse_a_busy_desk(url: str, setting: Setting, departments: Sequence[str]) -> None:
    """Simulated doctors take the head of the real queues and end whatever they are given:
    refuse a desk where anyone waits or is being seen (a rehearsal wants its own desk)."""
    token = setting.token(tokens.Role.SUPERVISOR, f"sim-{setting.run_id}-supervisor")
    timeout = aiohttp.ClientTimeout(total=READY_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(f"{url.rstrip('/')}/api/metrics", headers=headers) as answer:
                if answer.status != 200:
                    raise SetupError(f"/api/metrics answered {answer.status}: {_SECRET_HINT}")
                figures = await answer.json()
    except (aiohttp.ClientError, TimeoutError) as error:
        raise SetupError(f"cannot read {url}/api/metrics: {error}") from None
    busy = {
        row["department"]: (row["waiting"], row["active_consultations"])
        for row in figures["departments"]
        if row["department"] in departments and (row["waiting"] or row["active_consultations"])
    }
    if busy:
        listed = ", ".join(f"{d} ({w} waiting, {a} in consultation)" for d, (w, a) in busy.items())
        raise SetupError(
            f"the desk is busy: {listed}. Its simulated doctors would take those patients. "
            "Rehearse on a desk of its own (a patient left by an earlier run leaves the queue "
            "after [triage] patient_grace_s), or pass --allow-busy-desk"
        )


async def simulate(
    scenario: Scenario,
    secret: str,
    red_flags: Mapping[str, tuple[str, ...]],
    progress: Progress | None = None,
    allow_remote: bool = False,
    allow_busy_desk: bool = False,
) -> Journal:
    """Play `scenario` against the service at `scenario.url`; the journal of what happened."""
    if not allow_remote and not is_loopback(scenario.url):
        raise SetupError(f"--url {scenario.url} is not a loopback address: add --allow-remote")
    await check_ready(scenario.url)
    journal = Journal()
    ttl = max(MIN_TOKEN_TTL_S, int(scenario.duration_s + scenario.drain_s) + 600)
    loop = asyncio.get_running_loop()
    setting = Setting(
        ws_url_of(scenario.url), secret, secrets.token_hex(4), ttl, journal, Stage(), loop.time()
    )
    routing = await desk_departments(setting)
    unknown = sorted(set(scenario.department_ids) - set(routing))
    if unknown:
        raise SetupError(f"the desk has no department {', '.join(unknown)}")
    if not allow_busy_desk:
        await refuse_a_busy_desk(scenario.url, setting, scenario.department_ids)
    plans = plan_patients(scenario, red_flags, random.Random(scenario.seed))
    doctors = [
        Doctor(
            DoctorPlan(
                index=index,
                user_id=f"sim-{setting.run_id}-d{index}",
                pull=tuple(d for d in scenario.department_ids if routing[d] == "pull"),
                push=tuple(d for d in scenario.department_ids if routing[d] == "push"),
                capacity=scenario.capacity,
                response_s=scenario.response_s,
                seed=scenario.seed,
            ),
            setting,
        )
        for index in range(1, scenario.doctors + 1)
    ]
    try:
        async with asyncio.timeout(READY_TIMEOUT_S * 2):
            await asyncio.gather(*(doctor.start() for doctor in doctors))
    except (ChatError, OSError, TimeoutError, websockets.WebSocketException) as error:
        for doctor in doctors:
            await doctor.client.close()
        raise SetupError(f"a simulated doctor could not go on duty: {error}") from None

    setting.origin = loop.time()
    doctor_tasks = [asyncio.ensure_future(doctor.run()) for doctor in doctors]
    patient_tasks: list[asyncio.Task[None]] = []
    phase = ["arrivals"]
    reporter = asyncio.ensure_future(_report_progress(progress, journal, setting, phase))
    try:
        for plan in plans:
            await asyncio.sleep(max(0.0, plan.at_s - setting.now()))
            patient_tasks.append(asyncio.ensure_future(run_patient(plan, setting)))
        await asyncio.sleep(max(0.0, scenario.duration_s - setting.now()))
        journal.duration_s = setting.now()
        setting.stage.stopped.set()
        phase[0] = "drain"
        await _drain(doctors, journal, setting, scenario.drain_s)
        setting.stage.drained.set()
        phase[0] = "closing"
        await _settle([*doctor_tasks, *patient_tasks])
    finally:
        setting.stage.stopped.set()
        setting.stage.drained.set()
        await _settle([*doctor_tasks, *patient_tasks], timeout=0)
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    journal.ended_s = setting.now()
    if progress is not None:
        progress(journal, journal.ended_s, "done")
    return journal


async def _drain(doctors: list[Doctor], journal: Journal, setting: Setting, drain_s: float) -> None:
    """Wait until no doctor is taking a patient and every consultation has ended, or the
    drain time is out."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(drain_s):
            await asyncio.gather(*(doctor.done_taking.wait() for doctor in doctors))
            while journal.open_consultations:
                await asyncio.sleep(DRAIN_CHECK_S)


async def _settle(tasks: list[asyncio.Task[None]], timeout: float = SETTLE_TIMEOUT_S) -> None:
    """Let the actors finish for `timeout`, then cancel the rest and wait for them."""
    pending = [task for task in tasks if not task.done()]
    if pending and timeout > 0:
        _done, still = await asyncio.wait(pending, timeout=timeout)
        pending = list(still)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _report_progress(
    progress: Progress | None, journal: Journal, setting: Setting, phase: list[str]
) -> None:
    if progress is None:
        return
    while True:
        progress(journal, setting.now(), phase[0])
        await asyncio.sleep(PROGRESS_EVERY_S)
