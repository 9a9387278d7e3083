"""The triage engine's API: every operation on the desk's shared state, one Lua script each.

Each mutating call runs one script atomically in Redis and takes a `request_id`: a retry with
the same id (after a lost reply, say) returns the first result and changes nothing, so it can
never create a second consultation or a second match. Refusals come back as typed exceptions
(`triage.errors.Refused` leaves) and change nothing.

Time is Redis `TIME` inside the scripts, so gateways with skewed clocks cannot reorder the
queue or fire timers early. Tests pass a `ManualClock`, a test-only override that no
configuration can enable.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from triage import keys
from triage.desk import DeskInfo, init_desk
from triage.errors import refusal
from triage.eta import QueueSnapshot, estimate_wait, is_surge
from triage.metrics import CACHE_MS, DeskMetrics, desk_metrics
from triage.models import (
    ConsultationState,
    DepartmentRules,
    DoctorStatus,
    HeadStarts,
    Urgency,
)
from triage.records import (
    Abandoned,
    Consultation,
    Doctor,
    Ended,
    Enqueued,
    Intake,
    Match,
    Moved,
    Offer,
    Quote,
    RedFlag,
    StatusChange,
    Ticket,
    consultation_from,
    doctor_from,
    offers_from,
    red_flags_from,
    red_flags_to,
    ticket_from,
)
from triage.redflags import RedFlagMatcher
from triage.scripts import Scripts


@dataclass(frozen=True)
class DeskRules:
    """Everything the engine needs to know about the desk, built by the gateway from config."""

    departments: Sequence[DepartmentRules]
    head_starts: HeadStarts = HeadStarts()
    accept_timeout_s: int = 60  # push routing: an offer returns to the queue after this
    presence_ttl_s: int = 30  # a doctor without a heartbeat for this long goes offline
    patient_grace_s: int = 60  # a waiting patient disconnected this long is abandoned
    eta_window_s: int = 900  # the service rate behind ETAs is measured over this window
    mean_consult_s: int = 600  # ETA fallback before the window holds enough matches
    retention_s: int = 90 * 86400  # ended tickets and consultation records stay this long
    idempotency_ttl_s: int = 86400  # a retried request id replays its first result this long
    department_index: dict[str, DepartmentRules] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "department_index", {d.id: d for d in self.departments})


class ManualClock:
    """A test clock: scripts use `now_ms` instead of Redis TIME. Never built from config."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)


# A surge flag nobody renews (no routine quotes for this long) is dropped.
SURGE_FLAG_TTL_S = 300
# Every desk script's one key (its slot and prefix), built once.
_DESK_KEYS = (keys.desk_meta(),)
# `matches:<dept>` keeps this much history: the longest `eta_window_s` the config allows.
MATCH_HISTORY_S = 3600


def _new_id() -> str:
    return secrets.token_hex(8)


class Engine:
    def __init__(
        self, client: Redis, scripts: Scripts, rules: DeskRules, clock: ManualClock | None = None
    ) -> None:
        self._client = client
        self._scripts = scripts
        self.rules = rules
        self._clock = clock
        self._matchers = {d.id: RedFlagMatcher(d.red_flags) for d in rules.departments}

    # -- plumbing ---------------------------------------------------------------------------

    def _now(self) -> str:
        return "" if self._clock is None else str(self._clock.now_ms)

    async def _run(self, script: str, *args: object) -> list[object]:
        reply = await self._scripts.run(script, _DESK_KEYS, (self._now(), *args), self._client)
        if isinstance(reply, list) and reply and reply[0] == "err":
            raise refusal(str(reply[1]), str(reply[2]))
        return list(reply)

    def _mutation_header(self, request_id: str) -> list[object]:
        return [request_id, self.rules.idempotency_ttl_s]

    @property
    def _accept_ms(self) -> int:
        return self.rules.accept_timeout_s * 1000

    def _head_start_ms(self, urgency: Urgency) -> int:
        return self.rules.head_starts.for_level(urgency) * 1000

    async def init(self) -> DeskInfo:
        return await init_desk(self._client, self._scripts, self.rules.departments)

    # -- doctors ----------------------------------------------------------------------------

    async def set_status(
        self,
        doctor_id: str,
        status: DoctorStatus,
        name: str,
        departments: Sequence[str],
        capacity: int,
        request_id: str = "",
    ) -> StatusChange:
        reply = await self._run(
            "doctor_set_status",
            *self._mutation_header(request_id),
            self._accept_ms,
            doctor_id,
            status.value,
            name,
            ",".join(departments),
            capacity,
            self.rules.presence_ttl_s * 1000,
            _new_id(),
        )
        return StatusChange(
            DoctorStatus(str(reply[1])), int(reply[2]), int(reply[3]), offers_from(reply[4])
        )

    async def heartbeat(self, doctor_id: str) -> int:
        """Renew presence; returns the new deadline (ms)."""
        reply = await self._run(
            "doctor_heartbeat",
            doctor_id,
            self.rules.presence_ttl_s * 1000,
            self._accept_ms,
            _new_id(),
        )
        return int(reply[1])

    # -- patients ---------------------------------------------------------------------------

    def triage(self, department: str, intake: Intake) -> tuple[Urgency, tuple[RedFlag, ...]]:
        """The urgency an intake earns from its department's red-flag phrases."""
        hits = (
            self._matchers[department].match(intake.symptoms)
            if department in self._matchers
            else ()
        )
        flags = tuple(RedFlag(hit.phrase, hit.urgency) for hit in hits)
        urgency = max((flag.urgency for flag in flags), default=Urgency.ROUTINE)
        return urgency, flags

    async def quote(self, department: str, urgency: Urgency = Urgency.ROUTINE) -> Quote:
        """Position and ETA a new patient would get. A routine quote over the department's
        `max_wait_s` flags it as in surge (for supervisors); one within it clears the flag."""
        reply = await self._run(
            "queue_quote",
            department,
            urgency.label,
            self._head_start_ms(urgency),
            self.rules.eta_window_s * 1000,
            "",
        )
        quote = self._quote_from(reply)
        if urgency is Urgency.ROUTINE:
            if quote.surge:
                now_ms = int(str(reply[8]))  # Redis time, as everywhere in the engine
                await self._client.set(keys.surge(department), now_ms, ex=SURGE_FLAG_TTL_S, nx=True)
            else:
                await self._client.delete(keys.surge(department))
        return quote

    async def surging(self) -> dict[str, int]:
        """Departments flagged as in surge, with the time (ms) the flag was raised."""
        names = [d.id for d in self.rules.departments]
        values = await self._client.mget([keys.surge(name) for name in names])
        return {name: int(value) for name, value in zip(names, values, strict=True) if value}

    async def position(self, ticket_id: str) -> Quote:
        reply = await self._run(
            "queue_quote", "", "routine", 0, self.rules.eta_window_s * 1000, ticket_id
        )
        return self._quote_from(reply)

    def _quote_from(self, reply: list[object]) -> Quote:
        state, ahead, waiting, serving, free_slots, recent, department = reply[1:8]
        snapshot = QueueSnapshot(
            ahead=int(str(ahead)),
            recent_matches=int(str(recent)),
            window_s=self.rules.eta_window_s,
            doctors_serving=int(str(serving)),
            free_slots=int(str(free_slots)),
            mean_consult_s=self.rules.mean_consult_s,
        )
        estimate = estimate_wait(snapshot)
        rules = self.rules.department_index.get(str(department))
        surge = rules is not None and is_surge(estimate, rules.max_wait_s)
        return Quote(str(department), str(state), int(str(waiting)), estimate, surge)

    async def enqueue(
        self,
        patient_id: str,
        department: str,
        intake: Intake,
        consent_ms: int | None,
        request_id: str = "",
        urgency: Urgency = Urgency.ROUTINE,
    ) -> Enqueued:
        """Join the queue; red flags in the intake raise the urgency (never lower it)."""
        flagged, flags = self.triage(department, intake)
        level = max(urgency, flagged)
        reply = await self._run(
            "queue_enqueue",
            *self._mutation_header(request_id),
            self._accept_ms,
            patient_id,
            department,
            level.label,
            self._head_start_ms(level),
            json.dumps(intake.__dict__),
            "" if consent_ms is None else consent_ms,
            red_flags_to(flags),
            _new_id(),
        )
        return Enqueued(
            ticket_id=str(reply[1]),
            arrival=int(str(reply[2])),
            position=int(str(reply[3])),
            urgency=level,
            red_flags=flags,
            offers=offers_from(reply[4]),
        )

    async def cancel(
        self, patient_id: str, request_id: str = "", reason: str = "left"
    ) -> Abandoned:
        reply = await self._run(
            "queue_cancel",
            *self._mutation_header(request_id),
            self.rules.retention_s,
            patient_id,
            reason,
        )
        return Abandoned(
            str(reply[1]),
            int(str(reply[2])),
            Urgency.parse(str(reply[3])),
            red_flags_from(str(reply[4])),
        )

    async def reprioritise(
        self, ticket_id: str, urgency: Urgency, reason: str, request_id: str = ""
    ) -> int:
        """Raise a waiting ticket's urgency; returns its new position."""
        reply = await self._run(
            "queue_reprioritise",
            *self._mutation_header(request_id),
            ticket_id,
            urgency.label,
            self._head_start_ms(urgency),
            reason,
        )
        return int(str(reply[3]))

    async def ticket_presence(self, ticket_id: str, connected: bool) -> None:
        await self._run(
            "ticket_presence",
            ticket_id,
            "1" if connected else "0",
            self.rules.patient_grace_s * 1000,
        )

    # -- matching ---------------------------------------------------------------------------

    async def take_next(self, doctor_id: str, request_id: str = "") -> Match:
        reply = await self._run(
            "queue_take_next",
            *self._mutation_header(request_id),
            doctor_id,
            _new_id(),
            self._accept_ms,
        )
        return _match(reply)

    async def accept(self, doctor_id: str, consultation_id: str, request_id: str = "") -> Match:
        reply = await self._run(
            "consultation_accept",
            *self._mutation_header(request_id),
            doctor_id,
            consultation_id,
            self._accept_ms,
            _new_id(),
        )
        return _match(reply)

    async def assign(self, department: str) -> tuple[Offer, ...]:
        reply = await self._run("queue_assign", self._accept_ms, department, _new_id())
        return offers_from(reply[1])

    # -- consultations ----------------------------------------------------------------------

    async def end(
        self, user_id: str, consultation_id: str, summary: str, request_id: str = ""
    ) -> Ended:
        reply = await self._run(
            "consultation_end",
            *self._mutation_header(request_id),
            self.rules.retention_s,
            self._accept_ms,
            user_id,
            consultation_id,
            summary,
            _new_id(),
        )
        return Ended(str(reply[1]), str(reply[2]), offers_from(reply[3]))

    async def patient_left(self, consultation_id: str, request_id: str = "") -> Ended:
        reply = await self._run(
            "consultation_patient_left",
            *self._mutation_header(request_id),
            self.rules.retention_s,
            self._accept_ms,
            consultation_id,
            _new_id(),
        )
        return Ended(str(reply[1]), "patient_left", offers_from(reply[3]))

    async def transfer(
        self,
        doctor_id: str,
        consultation_id: str,
        to_department: str = "",
        to_doctor: str = "",
        request_id: str = "",
    ) -> Moved:
        if bool(to_department) == bool(to_doctor):
            raise ValueError("transfer to exactly one of a department or a doctor")
        reply = await self._run(
            "consultation_transfer",
            *self._mutation_header(request_id),
            self._accept_ms,
            doctor_id,
            consultation_id,
            to_department,
            to_doctor,
            _new_id(),
        )
        return _moved(reply)

    async def requeue(self, consultation_id: str, request_id: str = "") -> Moved:
        reply = await self._run(
            "consultation_requeue",
            *self._mutation_header(request_id),
            self._accept_ms,
            consultation_id,
            _new_id(),
        )
        return Moved(str(reply[1]), ConsultationState(str(reply[3])), offers_from(reply[4]))

    # -- timers -----------------------------------------------------------------------------

    async def fire_timers(self, limit: int = 100) -> tuple[str, ...]:
        """Fire due deadlines; returns the timers whose transition happened."""
        reply = await self._run(
            "timers_fire",
            self.rules.retention_s,
            self._accept_ms,
            limit,
            _new_id(),
        )
        return tuple(str(member) for member in reply[1:])

    async def trim_matches(self) -> int:
        """Drop matches older than `MATCH_HISTORY_S` from each department's `matches` set;
        returns how many went. The sweeper calls this now and then.

        The scripts only add to these sets: trimming at every match cost the busiest script a
        command (and an AOF record) per call, and quotes count matches by time, so an entry past
        the window only takes memory until the next trim. Each ZREMRANGEBYSCORE stands alone
        (no read-modify-write), so no script is needed.
        """
        if self._clock is not None:
            now_ms = self._clock.now_ms
        else:
            seconds, micros = await self._client.time()
            now_ms = seconds * 1000 + micros // 1000
        cutoff = now_ms - MATCH_HISTORY_S * 1000
        async with self._client.pipeline(transaction=False) as pipe:
            for department in self.rules.departments:
                pipe.zremrangebyscore(keys.matches(department.id), "-inf", cutoff)
            removed = await pipe.execute()
        return sum(int(n) for n in removed)

    # -- reads ------------------------------------------------------------------------------

    async def ticket(self, ticket_id: str) -> Ticket:
        fields = await self._client.hgetall(keys.ticket(ticket_id))
        if not fields:
            raise refusal("unknown_ticket", ticket_id)
        return ticket_from(fields)

    async def consultation(self, consultation_id: str) -> Consultation:
        fields = await self._client.hgetall(keys.consultation(consultation_id))
        if not fields:
            raise refusal("unknown_consultation", consultation_id)
        return consultation_from(fields)

    async def doctor(self, doctor_id: str) -> Doctor | None:
        fields = await self._client.hgetall(keys.doctor(doctor_id))
        return doctor_from(fields) if fields else None

    async def waiting(self, department: str) -> tuple[str, ...]:
        """Ticket ids in queue order."""
        return tuple(await self._client.zrange(keys.queue(department), 0, -1))

    async def stats(self, department: str) -> dict[str, int]:
        raw = await self._client.hgetall(keys.stats(department))
        return {name: int(value) for name, value in raw.items()}

    # -- supervision ----------------------------------------------------------------------------

    async def note_quote(self, ticket_id: str, eta_s: int | None) -> bool:
        """Remember the first wait a waiting patient was quoted, for ETA accuracy (a quote
        with no estimate, nobody on duty, is not one). True if it was the first."""
        if eta_s is None:
            return False
        reply = await self._run("ticket_note_quote", ticket_id, eta_s * 1000)
        return bool(int(str(reply[1])))

    async def metrics(
        self, window_s: int, alert_after_s: int, cache_ms: int = CACHE_MS
    ) -> DeskMetrics:
        """The desk's live figures (triage.metrics), at the engine's clock."""
        return await desk_metrics(
            self._client,
            self._scripts,
            window_s=window_s,
            alert_after_s=alert_after_s,
            now_ms=None if self._clock is None else self._clock.now_ms,
            cache_ms=cache_ms,
        )


def _match(reply: list[object]) -> Match:
    return Match(str(reply[1]), str(reply[2]), str(reply[3]), str(reply[4]), int(str(reply[5])))


def _moved(reply: list[object]) -> Moved:
    return Moved(str(reply[1]), ConsultationState(str(reply[2])), offers_from(reply[3]))
