"""Simulated patients and doctors: each drives one real `ChatClient` through the protocol.

A patient connects, joins with their planned intake, waits for a doctor (leaving after their
patience, unless the run has stopped), then exchanges the planned messages, one turn each, and
waits for `ended`. A doctor goes available, and whenever a slot is free pauses for their response
time and takes the next patient (`take_next` for pull departments, `accept` of an `offer` for
push ones), answers each patient message after a pause, and ends the consultation with a summary.

Everything they see goes into the `Journal`. The run's phases come from `Stage`: once `stopped`,
nobody gives up and no doctor takes a new patient; once `drained`, open consultations are cut
short and waiting patients stop waiting. Never logs a message or an intake.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import websockets

from chatsvc import tokens
from chatsvc.client import ChatClient
from chatsvc.client.client import ChatError
from chatsvc.protocol import frames as f
from chatsvc.protocol.errors import ErrorCode
from chatsvc.simulate.arrivals import PatientPlan
from chatsvc.simulate.journal import Journal, Outcome, PatientRecord

T = TypeVar("T")

# Longest wait for the other side's next message (or an `ended`) before giving up on it.
TURN_TIMEOUT_S = 60.0
# A doctor with a free slot and an empty queue looks again this often even when no
# `queue_summary` woke them (one may be coalesced away).
IDLE_RECHECK_S = 1.0
# An upper bound for waits that only the run's end interrupts (an hour's run, its drain, slack).
RUN_LIMIT_S = 3600.0 + 600.0 + 120.0
SUMMARY = "Simulated consultation: advice given."
CUT_SUMMARY = "Simulated consultation: ended when the rehearsal stopped."
PATIENT_LINES = ("Hello doctor.", "It started a few days ago.", "No, nothing else.", "Thank you.")
DOCTOR_LINES = ("Hello, how can I help?", "I see. Any fever?", "Rest and drink plenty.")
# Frames no actor waits for: dropped from an inbox so that it stays small.
UNWATCHED = (
    f.Message,
    f.TypingNotice,
    f.ReadReceipt,
    f.DeliveryReceipt,
    f.PeerPresence,
    f.StatusChanged,
    f.Queued,
    f.Guidance,
    f.TokenExpiring,
)
# The leave that came too late: a doctor already has the patient.
TOO_LATE_TO_LEAVE = frozenset({ErrorCode.IN_CONSULTATION.value, ErrorCode.NOT_WAITING.value})


@dataclass
class Stage:
    """The run's phases, as events every actor watches."""

    stopped: asyncio.Event = field(default_factory=asyncio.Event)  # arrivals are over
    drained: asyncio.Event = field(default_factory=asyncio.Event)  # the drain time is over


@dataclass
class Setting:
    """What every actor of one run shares."""

    ws_url: str
    secret: str
    run_id: str
    token_ttl_s: int
    journal: Journal
    stage: Stage
    origin: float  # the event loop's time when the run began

    def now(self) -> float:
        """Seconds since the run began."""
        return asyncio.get_running_loop().time() - self.origin

    def token(
        self,
        role: tokens.Role,
        user_id: str,
        name: str = "",
        departments: tuple[str, ...] = (),
        capacity: int = 0,
    ) -> str:
        return tokens.issue(
            self.secret,
            role,
            user_id,
            time.time(),
            self.token_ttl_s,
            name,
            departments=departments,
            capacity=capacity,
        )


async def first(
    main: Awaitable[T], *stops: asyncio.Event | asyncio.Future[Any], timeout: float | None = None
) -> T | None:
    """`main`'s result; None when one of `stops` (an event set, a future done) or the timeout
    comes first, and `main` is cancelled then. Stop futures are left running."""
    task = asyncio.ensure_future(main)
    watchers = [asyncio.ensure_future(s.wait()) for s in stops if isinstance(s, asyncio.Event)]
    futures = [s for s in stops if not isinstance(s, asyncio.Event)]
    try:
        await asyncio.wait(
            [task, *watchers, *futures], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for watcher in watchers:
            watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


async def pause(seconds: float, *stops: asyncio.Event | asyncio.Future[Any]) -> bool:
    """Sleep; False when a stop came first."""
    return await first(asyncio.sleep(seconds, True), *stops) is True


def prune(client: ChatClient, *also: type[f.Frame]) -> None:
    """Drop the inbox frames nobody waits for (and those of the kinds `also` names)."""
    dropped = (*UNWATCHED, *also)
    kept = [frame for frame in client.inbox if not isinstance(frame, dropped)]
    client.inbox.clear()
    client.inbox.extend(kept)


def count_arrivals(client: ChatClient, sender_role: str, setting: Setting) -> None:
    """Record each message of `sender_role` when its frame reaches this client (not when the
    actor next looks), so delivery latency is the wire's, not the actor's pauses."""

    def arrived(consultation: str, entry: f.MessageEntry) -> None:
        if entry.role == sender_role:
            setting.journal.delivered(consultation, entry.client_msg_id, setting.now())

    client.on_message = arrived


def mark_delivered(
    client: ChatClient, consultation: str, sender_role: str, setting: Setting
) -> None:
    """Every message of `sender_role` this client holds has been delivered (by now)."""
    thread = client.threads.get(consultation)
    if thread is None:
        return
    now = setting.now()
    for entry in thread.messages.values():
        if entry.role == sender_role:
            setting.journal.delivered(consultation, entry.client_msg_id, now)


async def send(
    client: ChatClient, consultation: str, client_msg_id: str, text: str, role: str, s: Setting
) -> bool:
    """Send one message and record it; False (and the error counted) when it was refused."""
    # Recorded before it goes: the other side may hold it before this side has its ack.
    s.journal.sent(consultation, client_msg_id, role, s.now())
    try:
        await client.send(consultation, text, client_msg_id=client_msg_id)
    except ChatError as error:
        s.journal.unsent(consultation, client_msg_id)
        s.journal.error(error.code)
        return False
    except BaseException:
        s.journal.unsent(consultation, client_msg_id)
        raise
    return True


async def guarded(journal: Journal, work: Callable[[], Awaitable[None]]) -> None:
    """Run an actor's work; a failure is counted by kind, never raised (a task boundary)."""
    try:
        await work()
    except ChatError as error:
        journal.error(error.code)
    except TimeoutError:
        journal.error("timeout")
    except (OSError, websockets.WebSocketException):
        journal.error("connection")


# -- patients ------------------------------------------------------------------------------------


async def run_patient(plan: PatientPlan, setting: Setting) -> None:
    user_id = f"sim-{setting.run_id}-p{plan.index}"
    record = setting.journal.add_patient(plan, user_id)
    client = ChatClient(setting.ws_url, setting.token(tokens.Role.PATIENT, user_id))
    count_arrivals(client, "doctor", setting)

    async def work() -> None:
        await client.connect()
        joined = await client.join(plan.department, plan.symptoms, plan.age_band, plan.duration)
        record.joined_s = setting.now()
        record.first_eta_s, record.first_position = joined.eta_s, joined.position
        record.flagged = bool(joined.red_flags)
        consultation = await _wait_for_doctor(client, record, setting)
        if consultation:
            await _talk_as_patient(client, consultation, record, setting)

    try:
        await guarded(setting.journal, work)
    finally:
        await client.close()


async def _wait_for_doctor(client: ChatClient, record: PatientRecord, s: Setting) -> str | None:
    """The consultation once a doctor has the patient; None after leaving, or when the run
    drained first (then the patient is still waiting)."""
    assert record.joined_s is not None
    give_up_at = record.joined_s + record.plan.patience_s
    assigned = asyncio.ensure_future(client.next(f.Assigned, timeout=RUN_LIMIT_S))
    try:
        while True:
            if s.stage.drained.is_set():
                record.still_waiting = True
                return None
            patient = not s.stage.stopped.is_set() and math.isfinite(give_up_at)
            timeout = max(0.0, give_up_at - s.now()) if patient else None
            stop = s.stage.stopped if patient else s.stage.drained
            frame = await first(asyncio.shield(assigned), stop, timeout=timeout)
            if frame is not None:
                record.assigned_s, record.consultation = s.now(), frame.consultation
                return frame.consultation
            if stop.is_set():
                continue
            try:  # out of patience
                await client.leave()
            except ChatError as error:
                if error.code not in TOO_LATE_TO_LEAVE:
                    raise
                s.journal.error(error.code)  # a doctor took them meanwhile: they stay
                give_up_at = math.inf
                continue
            record.left_s = s.now()
            return None
    finally:
        if not assigned.done():
            assigned.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await assigned


async def _talk_as_patient(
    client: ChatClient, consultation: str, record: PatientRecord, s: Setting
) -> None:
    plan = record.plan
    ended = asyncio.ensure_future(
        client.next(f.Ended, lambda e: e.consultation == consultation, timeout=RUN_LIMIT_S)
    )
    try:
        for turn in range(1, plan.messages + 1):
            if not await pause(plan.think_s[turn - 1], ended):
                break
            text = PATIENT_LINES[(turn - 1) % len(PATIENT_LINES)]
            if not await send(client, consultation, f"p{plan.index}-{turn}", text, "patient", s):
                break
            # Turns alternate, so the doctor's reply to this message is the 2×turn-th message.
            held = await first(
                client.wait_for_messages(consultation, 2 * turn, TURN_TIMEOUT_S), ended
            )
            mark_delivered(client, consultation, "doctor", s)
            prune(client)
            if held is None:
                break
        await asyncio.wait_for(asyncio.shield(ended), TURN_TIMEOUT_S)
        mark_delivered(client, consultation, "doctor", s)
        record.ended_s = s.now()
    finally:
        if not ended.done():
            ended.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ended


# -- doctors -------------------------------------------------------------------------------------


@dataclass
class DoctorPlan:
    index: int
    user_id: str
    pull: tuple[str, ...]  # departments where the doctor takes the next patient
    push: tuple[str, ...]  # departments whose patients are offered to the doctor
    capacity: int
    response_s: float  # mean pause before taking the next patient (exponential)
    seed: int


class Doctor:
    """One simulated doctor: `start` (a failure there is a setup failure), then `run`."""

    def __init__(self, plan: DoctorPlan, setting: Setting) -> None:
        self.plan = plan
        self.setting = setting
        self.rng = random.Random(f"{plan.seed}:doctor:{plan.index}")
        token = setting.token(
            tokens.Role.DOCTOR,
            plan.user_id,
            f"Dr Sim {plan.index}",
            plan.pull + plan.push,
            plan.capacity,
        )
        self.client = ChatClient(setting.ws_url, token)
        count_arrivals(self.client, "patient", setting)
        self.cases: dict[str, asyncio.Task[None]] = {}  # the open ones
        self.offers_seen: set[str] = set()
        self.freed = asyncio.Event()
        self.done_taking = asyncio.Event()  # takes no more patients; its cases may go on

    async def start(self) -> None:
        await self.client.connect()
        await self.client.set_status("available")

    async def run(self) -> None:
        stage, journal = self.setting.stage, self.setting.journal
        offers = (
            asyncio.ensure_future(guarded(journal, self._take_offers)) if self.plan.push else None
        )
        try:
            await guarded(journal, self._take_patients)
            with contextlib.suppress(ChatError, OSError, websockets.WebSocketException):
                await self.client.set_status("away")  # push departments: no more offers
            self.done_taking.set()
            await stage.drained.wait()
            if offers is not None:
                offers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await offers
            await asyncio.gather(*self.cases.values())
            with contextlib.suppress(ChatError, OSError, websockets.WebSocketException):
                await self.client.set_status("offline")
        finally:
            self.done_taking.set()
            await self.client.close()

    async def _take_patients(self) -> None:
        stopped = self.setting.stage.stopped
        while not stopped.is_set():
            while len(self.cases) >= self.plan.capacity:
                self.freed.clear()
                if await first(self.freed.wait(), stopped) is None:
                    return
            response = self.rng.expovariate(1 / self.plan.response_s) if self.plan.response_s else 0
            if not self.plan.pull or not await pause(response, stopped):
                await stopped.wait()
                return
            view = await self._take_next()
            if view is not None:
                self._open(view)

    async def _take_next(self) -> f.ConsultationView | None:
        """The next patient of a pull department, trying again as the queue changes; None when
        the run stopped first."""
        stopped = self.setting.stage.stopped
        while not stopped.is_set():
            prune(self.client, f.QueueSummary)  # what comes after this reply is news
            try:
                return await self.client.take_next()
            except ChatError as error:
                if error.code == ErrorCode.AT_CAPACITY.value:
                    return None  # an offer holds the slot: it is accepted in a moment
                if error.code != ErrorCode.QUEUE_EMPTY.value:
                    self.setting.journal.error(error.code)
            with contextlib.suppress(TimeoutError):
                await first(
                    self.client.next(f.QueueSummary, self._has_work, timeout=IDLE_RECHECK_S),
                    stopped,
                )
        return None

    def _has_work(self, summary: f.QueueSummary) -> bool:
        return any(d.id in self.plan.pull and d.waiting > 0 for d in summary.departments)

    async def _take_offers(self) -> None:
        """Push departments: accept each offer after the response pause, until the drain."""
        drained = self.setting.stage.drained
        while True:
            offer = await self.client.next(f.Offered, timeout=RUN_LIMIT_S)
            cid = offer.consultation.id
            if cid in self.offers_seen:
                continue  # state frames may repeat
            self.offers_seen.add(cid)
            response = self.rng.expovariate(1 / self.plan.response_s) if self.plan.response_s else 0
            if not await pause(response, drained):
                return
            try:
                view = await self.client.accept(cid)
            except ChatError as error:
                self.setting.journal.error(error.code)
                continue
            self._open(view)

    def _open(self, view: f.ConsultationView) -> None:
        s = self.setting
        s.journal.started(view.id, view.department, self.plan.user_id, s.now())
        task = asyncio.ensure_future(guarded(s.journal, lambda: self._treat(view)))
        self.cases[view.id] = task
        task.add_done_callback(lambda _task: self._close_case(view.id))

    def _close_case(self, consultation: str) -> None:
        self.cases.pop(consultation, None)
        self.freed.set()

    async def _treat(self, view: f.ConsultationView) -> None:
        s, cid = self.setting, view.id
        patient = s.journal.by_user.get(view.patient)
        if patient is None:
            await self._end(cid, Outcome.FOREIGN)
            return
        turns, replies = patient.plan.messages, patient.plan.reply_s
        done = 0
        try:
            for turn in range(1, turns + 1):
                held = await first(
                    self.client.wait_for_messages(cid, 2 * turn - 1, TURN_TIMEOUT_S),
                    s.stage.drained,
                )
                mark_delivered(self.client, cid, "patient", s)
                if held is None or not await pause(replies[turn - 1], s.stage.drained):
                    break
                text = DOCTOR_LINES[(turn - 1) % len(DOCTOR_LINES)]
                if not await send(self.client, cid, f"d{turn}", text, "doctor", s):
                    break
                done = turn
        finally:
            await self._end(cid, Outcome.COMPLETED if done == turns else Outcome.CUT_SHORT)

    async def _end(self, cid: str, outcome: Outcome) -> None:
        s = self.setting
        try:
            await self.client.end(cid, SUMMARY if outcome is Outcome.COMPLETED else CUT_SUMMARY)
        except ChatError as error:
            s.journal.error(error.code)
            s.journal.ended(cid, Outcome.FAILED, s.now())
            return
        except (OSError, websockets.WebSocketException):
            s.journal.error("connection")
            s.journal.ended(cid, Outcome.FAILED, s.now())
            return
        s.journal.ended(cid, outcome, s.now())
        self.client.threads.pop(cid, None)  # its resume point is of no more use
