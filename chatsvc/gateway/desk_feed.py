"""The desk feed: every gateway follows the triage event stream and tells its own users.

The triage scripts append an event for every state change in the same step as the change, so
the stream is exact and ordered. Each gateway reads it from where it last stopped (XREAD, no
consumer group: every gateway needs every event) and turns the events about users it holds into
frames: `assigned` to a patient, `offer` and `consultation` to a doctor, `released`, `ended`.
Changes to a department's queue mark it dirty for the queue watch, which coalesces them.

After a Redis outage it goes on from its last event id, so nothing that happened meanwhile is
missed (the stream keeps an hour of events).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from redis.exceptions import RedisError

from chatsvc.gateway.cancellation import stop_if_cancelled
from chatsvc.gateway.context import GatewayContext
from chatsvc.protocol import frames as f
from chatsvc.tokens import Role
from triage import events, views
from triage.errors import TriageError
from triage.events import Event
from triage.records import red_flags_from
from triage.transcripts import TranscriptNotOpen

log = structlog.get_logger(__name__)

# Events read per call; XREAD blocks this long when there are none.
BATCH = 200
BLOCK_MS = 1000
RETRY_S = 0.5

# Events that change who waits in a department (the queue watch re-reads it).
QUEUE_EVENTS = frozenset(
    {
        "enqueued",
        "abandoned",
        "assigned",
        "offered",
        "requeued",
        "transferred",
        "offer_expired",
        "reprioritised",
        "doctor_status",
        "ended",
    }
)


class DeskFeed:
    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx
        self._handlers: dict[str, Callable[[Event], Awaitable[None]]] = {
            "assigned": self._assigned,
            "offered": self._offered,
            "requeued": self._returned,
            "transferred": self._returned,
            "offer_expired": self._returned,
            "ended": self._ended,
            "abandoned": self._abandoned,
            "doctor_status": self._doctor_status,
            "doctor_away": self._doctor_presence,
            "doctor_back": self._doctor_presence,
            "patient_away": self._patient_presence,
            "patient_back": self._patient_presence,
        }

    async def run(self) -> None:
        link = self._ctx.link
        after: str | None = None
        while True:
            stop_if_cancelled()
            await link.wait_ready()
            try:
                if after is None:
                    after = await events.last_id(link.client)
                batch = await events.read(link.client, after, count=BATCH, block_ms=BLOCK_MS)
            except (RedisError, OSError) as error:
                stop_if_cancelled()
                log.warning("desk_feed_lost", error=str(error)[:200])
                await asyncio.sleep(RETRY_S)
                continue
            for event in batch:
                after = event.id
                await self.handle(event)

    async def handle(self, event: Event) -> None:
        department = event.data.get("dept")
        if event.type in QUEUE_EVENTS:
            if department:
                self._ctx.queue_watch.mark(department)
            else:
                self._ctx.queue_watch.mark_all()
        handler = self._handlers.get(event.type)
        if handler is None:
            return
        try:
            await handler(event)
        except (RedisError, OSError, TriageError) as error:
            # The user's next reconnect or fetch repairs what this notification would have said.
            log.warning("desk_event_failed", event_type=event.type, error=str(error)[:200])
        except Exception:  # a bug: skip this event, never stop following the desk
            log.exception("desk_event_crashed", event_type=event.type)

    async def _assigned(self, event: Event) -> None:
        consultation = event.data["consultation"]
        patient, doctor = event.data["patient"], event.data["doctor"]
        ctx = self._ctx
        patients = ctx.hub.conns_of(patient)
        doctors = ctx.hub.conns_of(doctor)
        if not patients and not doctors:
            return
        position = await ctx.ensure_transcript(consultation, patient, doctor)
        if patients:
            names = await ctx.doctor_names([doctor])
            for conn in patients:
                conn.ticket = ""
                conn.last_queued = None
                conn.send(
                    f.Assigned(
                        consultation=consultation,
                        department=event.data["dept"],
                        doctor_name=names.get(doctor, ""),
                        epoch=position.epoch,
                        last_seq=position.seq,
                    )
                )
                await ctx.fanout.follow(conn, consultation, position.epoch, position.seq)
        fresh = [conn for conn in doctors if consultation not in conn.follows]
        if fresh:
            view = await ctx.view_for_doctor(consultation, doctor)
            for conn in fresh:
                conn.send(f.Opened(consultation=view))
                await ctx.fanout.follow(conn, consultation, view.epoch, view.last_seq)

    async def _offered(self, event: Event) -> None:
        doctor = event.data["doctor"]
        conns = self._ctx.hub.conns_of(doctor)
        if not conns:
            return
        view = await self._ctx.view_for_doctor(event.data["consultation"], doctor)
        deadline = int(event.data.get("accept_deadline", "0"))
        for conn in conns:
            conn.send(f.Offered(consultation=view, deadline_ms=deadline))

    async def _returned(self, event: Event) -> None:
        """A consultation went back to the queue (requeue, transfer, offer expired)."""
        consultation = event.data["consultation"]
        for conn in self._ctx.hub.conns_of(event.data.get("doctor", "")):
            conn.send(f.Released(consultation=consultation, reason=event.type))
            await self._ctx.fanout.unfollow(conn, consultation)
        if event.type == "transferred" and event.data.get("to_doctor"):
            return  # offered to a named doctor: the patient is not back in a queue
        for conn in self._ctx.hub.conns_of(event.data["patient"]):
            conn.ticket = event.data["ticket"]
            conn.ticket_department = event.data["dept"]
            conn.last_queued = None
        self._ctx.queue_watch.mark(event.data["dept"])

    async def _ended(self, event: Event) -> None:
        consultation = event.data["consultation"]
        ctx = self._ctx
        # However it ended (a command, a grace or presence timer), its transcript takes no
        # more messages. Every gateway closes it; closing is idempotent.
        with contextlib.suppress(TranscriptNotOpen):
            await ctx.link.transcripts.close(consultation, ctx.link.engine.rules.retention_s)
        followers = ctx.hub.followers(consultation)
        users = {event.data["patient"], event.data.get("doctor", "")}
        conns = {conn for user in users if user for conn in ctx.hub.conns_of(user)} | followers
        if not conns:
            return
        await ctx.fanout.flush(consultation)  # every message first, then `ended`
        record = await ctx.link.engine.consultation(consultation)
        frame = f.Ended(
            consultation=consultation,
            outcome=record.outcome or event.data.get("outcome", ""),
            summary=record.summary,
        )
        for conn in conns:
            conn.send(frame)
            await ctx.fanout.unfollow(conn, consultation)

    async def _abandoned(self, event: Event) -> None:
        """A waiting patient left (or stayed away past the grace). One whose intake raised an
        emergency flag is given the emergency guidance again: they leave without being seen."""
        ticket = event.data["ticket"]
        flags = red_flags_from(event.data.get("red_flags", ""))
        for conn in self._ctx.hub.conns_of(event.data["patient"]):
            if conn.ticket == ticket:
                conn.ticket = ""
                conn.send(f.Left(ticket=ticket))
            guidance = self._ctx.guidance(event.data["dept"], flags, conn.lang)
            if guidance is not None:
                conn.send(guidance)

    async def _doctor_presence(self, event: Event) -> None:
        """The doctor lost their last connection (or is back): tell their patients."""
        status = "reconnecting" if event.type == "doctor_away" else "back"
        ctx = self._ctx
        for consultation in await views.doctor_consultations(ctx.link.client, event.data["doctor"]):
            for conn in ctx.hub.followers(consultation):
                if conn.role is Role.PATIENT:
                    conn.send(
                        f.PeerPresence(consultation=consultation, role="doctor", status=status)
                    )

    async def _patient_presence(self, event: Event) -> None:
        status = "reconnecting" if event.type == "patient_away" else "back"
        consultation = event.data["consultation"]
        for conn in self._ctx.hub.conns_of(event.data.get("doctor", "")):
            if consultation in conn.follows:
                conn.send(f.PeerPresence(consultation=consultation, role="patient", status=status))

    async def _doctor_status(self, event: Event) -> None:
        doctor = event.data["doctor"]
        conns = self._ctx.hub.conns_of(doctor)
        if not conns:
            return
        record = await self._ctx.link.engine.doctor(doctor)
        if record is None:
            return
        frame = f.StatusChanged(
            status=record.status.value,  # type: ignore[arg-type]
            active=record.active,
            capacity=record.capacity,
        )
        for conn in conns:
            conn.send(frame)
