"""Carrying out a user's commands: one handler per client frame, on the triage engine.

The session has already checked authentication, the role and the rate; this module checks
the access matrix for consultation-scoped commands (`authorize`, the one place), calls the
engine or the transcripts, and replies to the connection. Everything other users must learn
(a match, an end) reaches them through the desk feed and the fanout, never from here, so it
works the same when they are connected to another gateway.

A desk refusal becomes an `error` frame with the refusal's code; the connection keeps serving.
A command's `id` doubles as its request id (scoped to the user), so a client that retries a
frame whose reply it lost, with the same id, gets the first result, never a second match.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis.exceptions import RedisError

from chatsvc.gateway.context import GatewayContext
from chatsvc.gateway.fanout import entry_view
from chatsvc.gateway.hub import Conn
from chatsvc.protocol import frames as f
from chatsvc.protocol.access import (
    Action,
    ConsultationFacts,
    Relation,
    decide,
    is_audited,
    relation_of,
)
from chatsvc.protocol.errors import ErrorCode, ProtocolError
from chatsvc.tokens import Claims, Role
from triage import audit, views
from triage.errors import Refused, TriageError, UnknownConsultation
from triage.models import DoctorStatus
from triage.records import Consultation, Intake
from triage.transcripts import (
    InvalidMessage,
    MessageTooLong,
    ResetRequired,
    TranscriptError,
    TranscriptNotFound,
    TranscriptNotOpen,
)

log = structlog.get_logger(__name__)

_KNOWN_CODES = {code.value for code in ErrorCode}
# Messages are taken while a doctor holds the consultation, or while it waits for the next
# one after a transfer or requeue (the patient may write); never once it ended.
WRITABLE_STATES = frozenset({"active", "queued"})
# One `list_audit` looks at most at this many desk-wide entries before answering.
AUDIT_SCAN_LIMIT = 5000


def refusal_error(error: Refused | TranscriptError, ref: str | None) -> ProtocolError:
    code = error.code if error.code in _KNOWN_CODES else ErrorCode.REFUSED.value
    if isinstance(error, MessageTooLong):
        code = ErrorCode.MESSAGE_TOO_LONG.value
    elif isinstance(error, InvalidMessage):
        code = ErrorCode.BAD_FRAME.value
    return ProtocolError(ErrorCode(code), str(error) or code, ref)


def request_id(conn: Conn, frame_id: str | None) -> str:
    """A frame id scoped to its user: two users' clients may choose the same ids."""
    return f"{conn.user_id}:{frame_id}" if frame_id else ""


class Commands:
    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx
        self._handlers: dict[type, Callable[[Conn, Any], Awaitable[None]]] = {
            f.QuoteRequest: self._quote,
            f.Join: self._join,
            f.Leave: self._leave,
            f.SetStatus: self._set_status,
            f.TakeNext: self._take_next,
            f.Accept: self._accept,
            f.End: self._end,
            f.Transfer: self._transfer,
            f.PatientHistory: self._patient_history,
            f.Send: self._send,
            f.TypingSignal: self._typing,
            f.MarkRead: self._mark_read,
            f.MarkDelivered: self._mark_delivered,
            f.Fetch: self._fetch,
            f.Open: self._open,
            f.ListConsultations: self._list_consultations,
            f.ListAudit: self._list_audit,
        }

    async def handle(self, conn: Conn, frame: f.Inbound) -> None:
        """Run one command; every failure becomes an error frame on this connection only."""
        handler = self._handlers[type(frame)]
        try:
            await handler(conn, frame)
        except ProtocolError as error:
            conn.send(f.Error(code=error.code, message=error.message, ref=error.ref))
        except (Refused, TranscriptError) as error:
            failure = refusal_error(error, frame.id)
            conn.send(f.Error(code=failure.code, message=failure.message, ref=frame.id))
        except (RedisError, OSError) as error:
            log.warning("command_unavailable", conn_id=conn.id, error=str(error)[:200])
            conn.send(
                f.Error(
                    code=ErrorCode.UNAVAILABLE,
                    message="the desk is unreachable; retry with the same id",
                    ref=frame.id,
                )
            )
        except Exception:  # a bug: this command fails, the connection and the others go on
            log.exception("command_failed", conn_id=conn.id, frame=type(frame).__name__)
            conn.send(
                f.Error(code=ErrorCode.INTERNAL, message="internal error; logged", ref=frame.id)
            )

    # -- access -------------------------------------------------------------------------------

    async def authorize(
        self,
        claims: Claims,
        consultation: str,
        action: Action,
        ref: str | None = None,
        audit_as: str = "",
    ) -> tuple[Consultation, Relation]:
        """The one access check for consultation-scoped commands (see chatsvc.protocol.access).
        Audits a permitted read by anyone but the patient before the data is sent."""
        try:
            record = await self._ctx.link.engine.consultation(consultation)
        except UnknownConsultation:
            raise ProtocolError(ErrorCode.FORBIDDEN, "not a consultation of yours", ref) from None
        last = record.history[-1] if record.history else None
        facts = ConsultationFacts(
            patient_id=record.patient_id,
            # An ended consultation's doctor who was only offered it never held it.
            doctor_id=""
            if record.state.value == "ended" and last is not None and last.offered_only
            else record.doctor_id,
            state=record.state.value,
            department=record.department,
            # A doctor who was only offered it (and never accepted) never held the
            # consultation: not a former doctor.
            former_doctors=tuple(
                segment.doctor_id
                for segment in record.history
                if segment.outcome is not None and not segment.offered_only
            ),
        )
        relation = relation_of(claims.role, claims.user_id, claims.departments, facts)
        if relation is Relation.UNRELATED and claims.role is Role.DOCTOR:
            # Only then is the lookup worth its round trips; relation_of still decides.
            if await self._treats_patient(claims.user_id, record.patient_id, record.id):
                facts = dataclasses.replace(facts, asker_treats_patient=True)
                relation = relation_of(claims.role, claims.user_id, claims.departments, facts)
        if not decide(claims.role, relation, action):
            raise ProtocolError(ErrorCode.FORBIDDEN, "not a consultation of yours", ref)
        if action is Action.WRITE and record.state.value not in WRITABLE_STATES:
            raise ProtocolError(ErrorCode.CLOSED, "this consultation takes no more messages", ref)
        if is_audited(relation, action):
            await audit.record(
                self._ctx.link.client,
                claims.user_id,
                claims.role.value,
                audit_as or action.value,
                record.id,
            )
        return record, relation

    async def _treats_patient(self, doctor: str, patient: str, other_than: str) -> bool:
        client = self._ctx.link.client
        for consultation in await views.doctor_consultations(client, doctor):
            if consultation == other_than:
                continue
            try:
                record = await self._ctx.link.engine.consultation(consultation)
            except UnknownConsultation:
                continue
            if (
                record.patient_id == patient
                and record.doctor_id == doctor
                and record.state.value == "active"  # an offer is not treating anyone yet
            ):
                return True
        return False

    def _department(self, department: str, ref: str | None) -> None:
        if department not in {d.id for d in self._ctx.config.departments}:
            raise ProtocolError(ErrorCode.UNKNOWN_DEPARTMENT, f"no department {department!r}", ref)

    # -- patients -----------------------------------------------------------------------------

    async def _quote(self, conn: Conn, frame: f.QuoteRequest) -> None:
        self._department(frame.department, frame.id)
        quote = await self._ctx.link.engine.quote(frame.department)
        conn.send(
            f.Quoted(
                department=frame.department,
                position=quote.estimate.position,
                eta_s=quote.estimate.eta_s,
                surge=quote.surge,
                ref=frame.id,
            )
        )

    async def _join(self, conn: Conn, frame: f.Join) -> None:
        self._department(frame.department, frame.id)
        if not frame.notice_acknowledged:
            raise ProtocolError(
                ErrorCode.NOTICE_REQUIRED,
                "acknowledge that this service is not for emergencies first",
                frame.id,
            )
        if not frame.consent:
            raise ProtocolError(
                ErrorCode.CONSENT_REQUIRED,
                "consent to the handling of your health data is needed to join",
                frame.id,
            )
        now_ms = int(time.time() * 1000)
        intake = Intake(
            symptoms=frame.intake.symptoms,
            age_band=frame.intake.age_band,
            duration=frame.intake.duration,
            language=conn.lang,
            notice_acknowledged_ms=now_ms,
        )
        engine = self._ctx.link.engine
        joined = await engine.enqueue(
            conn.user_id,
            frame.department,
            intake,
            consent_ms=now_ms,
            request_id=request_id(conn, frame.id),
        )
        guidance = self._ctx.guidance(frame.department, joined.red_flags, conn.lang)
        if guidance is not None:
            conn.send(guidance)  # at once, before anything else: it may be an emergency
        quote = await engine.position(joined.ticket_id)
        if quote.state == "waiting":  # what they are told now is what ETA accuracy checks
            # A figure for supervisors: never the reason a patient is not told they joined.
            with contextlib.suppress(RedisError, OSError, TriageError):
                await engine.note_quote(joined.ticket_id, quote.estimate.eta_s)
        for other in self._ctx.hub.conns_of(conn.user_id):
            if quote.state == "waiting":
                other.ticket = joined.ticket_id
                other.ticket_department = frame.department
        conn.last_queued = (quote.estimate.position, quote.estimate.eta_s, quote.surge)
        conn.send(
            f.Joined(
                ticket=joined.ticket_id,
                department=frame.department,
                position=quote.estimate.position if quote.state == "waiting" else 0,
                eta_s=quote.estimate.eta_s if quote.state == "waiting" else 0,
                urgency=joined.urgency.label,  # type: ignore[arg-type]
                red_flags=[
                    f.RedFlagHit(phrase=flag.phrase, urgency=flag.urgency.label)  # type: ignore[arg-type]
                    for flag in joined.red_flags
                ],
                ref=frame.id,
            )
        )

    async def _leave(self, conn: Conn, frame: f.Leave) -> None:
        """Leave the queue. A patient back in the queue after a transfer or requeue has an open
        consultation: leaving ends it as patient_left."""
        engine = self._ctx.link.engine
        rid = request_id(conn, frame.id)
        case = await views.open_case(self._ctx.link.client, conn.user_id)
        if case.consultation_id:
            record = await engine.consultation(case.consultation_id)
            if record.state.value != "queued":
                raise ProtocolError(
                    ErrorCode.IN_CONSULTATION, "end the consultation instead", frame.id
                )
            await engine.patient_left(record.id, request_id=rid)
            await self._close_transcript(record.id)
            ticket = record.ticket_id
        else:
            ticket = (await engine.cancel(conn.user_id, request_id=rid)).ticket_id
        conn.ticket = ""
        conn.send(f.Left(ticket=ticket, ref=frame.id))

    # -- doctors ------------------------------------------------------------------------------

    async def _set_status(self, conn: Conn, frame: f.SetStatus) -> None:
        claims = conn.claims
        change = await self._ctx.link.engine.set_status(
            claims.user_id,
            DoctorStatus(frame.status),
            claims.name or claims.user_id,
            claims.departments,
            self._ctx.capacity_of(claims),
            request_id=request_id(conn, frame.id),
        )
        conn.send(
            f.StatusChanged(
                status=change.status.value,  # type: ignore[arg-type]
                active=change.active,
                capacity=change.capacity,
                ref=frame.id,
            )
        )
        if claims.departments:
            conn.send(await self._ctx.queue_watch.summary(list(claims.departments)))

    async def _take_next(self, conn: Conn, frame: f.TakeNext) -> None:
        match = await self._ctx.link.engine.take_next(
            conn.user_id, request_id=request_id(conn, frame.id)
        )
        await self._opened(conn, match.consultation_id, match.patient_id, frame.id)

    async def _accept(self, conn: Conn, frame: f.Accept) -> None:
        match = await self._ctx.link.engine.accept(
            conn.user_id, frame.consultation, request_id=request_id(conn, frame.id)
        )
        await self._opened(conn, match.consultation_id, match.patient_id, frame.id)

    async def _opened(self, conn: Conn, consultation: str, patient: str, ref: str | None) -> None:
        """A match is made: open the transcript, show the doctor the case, follow it."""
        await self._ctx.ensure_transcript(consultation, patient, conn.user_id)
        view = await self._ctx.view_for_doctor(consultation, conn.user_id)
        conn.send(f.Opened(consultation=view, ref=ref))
        await self._ctx.fanout.follow(conn, consultation, view.epoch, view.last_seq)

    async def _end(self, conn: Conn, frame: f.End) -> None:
        record, _ = await self.authorize(conn.claims, frame.consultation, Action.END, frame.id)
        engine = self._ctx.link.engine
        rid = request_id(conn, frame.id)
        if conn.role is Role.PATIENT:
            ended = await engine.patient_left(record.id, request_id=rid)
        else:
            ended = await engine.end(conn.user_id, record.id, frame.summary, request_id=rid)
        await self._close_transcript(record.id)
        await self._ctx.fanout.flush(record.id)
        summary = "" if conn.role is Role.PATIENT else frame.summary
        conn.send(
            f.Ended(consultation=record.id, outcome=ended.outcome, summary=summary, ref=frame.id)
        )

    async def _close_transcript(self, consultation: str) -> None:
        try:
            await self._ctx.link.transcripts.close(
                consultation, self._ctx.link.engine.rules.retention_s
            )
        except TranscriptNotOpen:
            pass  # nothing was ever said: no transcript to close

    async def _transfer(self, conn: Conn, frame: f.Transfer) -> None:
        if (frame.department is None) == (frame.doctor is None):
            raise ProtocolError(
                ErrorCode.BAD_FRAME, "transfer to exactly one of department or doctor", frame.id
            )
        if frame.department is not None:
            self._department(frame.department, frame.id)
        record, _ = await self.authorize(conn.claims, frame.consultation, Action.TRANSFER, frame.id)
        await self._ctx.link.engine.transfer(
            conn.user_id,
            record.id,
            to_department=frame.department or "",
            to_doctor=frame.doctor or "",
            request_id=request_id(conn, frame.id),
        )
        conn.send(f.Released(consultation=record.id, reason="transferred", ref=frame.id))
        await self._ctx.fanout.unfollow(conn, record.id)

    async def _patient_history(self, conn: Conn, frame: f.PatientHistory) -> None:
        record, relation = await self.authorize(
            conn.claims, frame.consultation, Action.READ_DETAILS, frame.id
        )
        if relation is not Relation.CURRENT_DOCTOR:
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                "only the patient's current doctor sees their history",
                frame.id,
            )
        client = self._ctx.link.client
        earlier = [
            c
            for c in await views.patient_consultations(client, record.patient_id)
            if c != record.id
        ]
        items: list[f.PastConsultation] = []
        engine = self._ctx.link.engine
        for consultation in earlier:
            try:
                past = await engine.consultation(consultation)
            except UnknownConsultation:
                continue  # expired from Redis (the archive serves it: a later issue)
            await audit.record(
                client, conn.user_id, conn.role.value, "patient_history", consultation
            )
            names = await self._ctx.doctor_names([past.doctor_id] if past.doctor_id else [])
            items.append(
                f.PastConsultation(
                    id=past.id,
                    department=past.department,
                    doctor_name=names.get(past.doctor_id, ""),
                    started_ms=past.started_ms,
                    ended_ms=past.ended_ms,
                    outcome=past.outcome,
                    summary=past.summary,
                )
            )
        conn.send(f.History(consultation=record.id, items=items, ref=frame.id))

    # -- in a consultation --------------------------------------------------------------------

    async def _send(self, conn: Conn, frame: f.Send) -> None:
        limit = self._ctx.config.limits.max_message_chars
        if len(frame.text) > limit:
            raise ProtocolError(
                ErrorCode.MESSAGE_TOO_LONG, f"messages are limited to {limit} characters", frame.id
            )
        cid = await self.authorize_write(conn, frame.consultation, frame.id)
        transcripts = self._ctx.link.transcripts
        try:
            stored = await transcripts.append(
                cid, conn.user_id, frame.client_msg_id, "text", frame.text
            )
        except TranscriptNotOpen:
            # The gateway that made the match died before opening it: open it now.
            record = await self._ctx.link.engine.consultation(cid)
            await self._ctx.ensure_transcript(record.id, record.patient_id, record.doctor_id)
            stored = await transcripts.append(
                cid, conn.user_id, frame.client_msg_id, "text", frame.text
            )
        if not stored.duplicate:
            self._ctx.supervision.message_stored()
        conn.send(
            f.Ack(
                consultation=cid,
                client_msg_id=frame.client_msg_id,
                epoch=stored.epoch,
                seq=stored.seq,
                ts=stored.ts_ms,
                duplicate=stored.duplicate,
                ref=frame.id,
            )
        )

    async def _typing(self, conn: Conn, frame: f.TypingSignal) -> None:
        cid = await self.authorize_write(conn, frame.consultation, frame.id)
        await self._ctx.link.transcripts.signal_typing(cid, conn.role.value)

    async def _mark_read(self, conn: Conn, frame: f.MarkRead) -> None:
        cid = await self.authorize_write(conn, frame.consultation, frame.id)
        await self._ctx.link.transcripts.mark_read(cid, conn.user_id, frame.seq)

    async def _mark_delivered(self, conn: Conn, frame: f.MarkDelivered) -> None:
        cid = await self.authorize_write(conn, frame.consultation, frame.id)
        await self._ctx.link.transcripts.mark_delivered(cid, conn.user_id, frame.seq)

    async def authorize_write(self, conn: Conn, consultation: str, ref: str | None) -> str:
        """WRITE, checked once per followed consultation: while the connection follows it,
        nothing that would revoke the right (transfer, requeue, end) has reached it, and the
        transcript itself refuses writes once closed and from anyone not a participant."""
        if consultation in conn.writable and consultation in conn.follows:
            return consultation
        record, _ = await self.authorize(conn.claims, consultation, Action.WRITE, ref)
        if consultation in conn.follows:
            conn.writable.add(consultation)
        return record.id

    async def _fetch(self, conn: Conn, frame: f.Fetch) -> None:
        record, _ = await self.authorize(
            conn.claims, frame.consultation, Action.READ_TRANSCRIPT, frame.id
        )
        transcripts = self._ctx.link.transcripts
        try:
            page = await transcripts.read(record.id, frame.after_seq, frame.limit, frame.epoch)
        except TranscriptNotFound:
            conn.send(
                f.Messages(consultation=record.id, epoch="", last_seq=0, entries=[], ref=frame.id)
            )
            return
        except ResetRequired as error:
            position = await transcripts.position(record.id)
            conn.send(
                f.Reset(
                    consultation=record.id,
                    epoch=position.epoch if position else "",
                    last_seq=position.seq if position else 0,
                    reason=error.code,
                    ref=frame.id,
                )
            )
            return
        conn.send(
            f.Messages(
                consultation=record.id,
                epoch=page.epoch,
                last_seq=page.last_seq,
                entries=[entry_view(entry) for entry in page.entries],
                ref=frame.id,
            )
        )

    async def _open(self, conn: Conn, frame: f.Open) -> None:
        record, _ = await self.authorize(
            conn.claims, frame.consultation, Action.READ_DETAILS, frame.id
        )
        view = await self._ctx.render(record.id, with_intake=True)
        conn.send(f.Opened(consultation=view, ref=frame.id))

    # -- supervisors --------------------------------------------------------------------------

    async def _list_consultations(self, conn: Conn, frame: f.ListConsultations) -> None:
        mine = conn.claims.departments
        if frame.department is not None and frame.department not in mine:
            raise ProtocolError(ErrorCode.FORBIDDEN, "not a department you supervise", frame.id)
        departments = [frame.department] if frame.department else list(mine)
        items: list[f.ConsultationView] = []
        for department in departments:
            for consultation in await views.live_consultations(self._ctx.link.client, department):
                try:
                    items.append(await self._ctx.render(consultation, with_intake=False))
                except UnknownConsultation:
                    continue
        conn.send(f.ConsultationList(items=items, ref=frame.id))

    async def _list_audit(self, conn: Conn, frame: f.ListAudit) -> None:
        """Audit entries of the supervisor's departments' consultations, newest first. The
        desk-wide stream is scanned in pages until `limit` entries of theirs are found or
        AUDIT_SCAN_LIMIT entries were looked at; `before` says where to go on."""
        client = self._ctx.link.client
        mine = set(conn.claims.departments)
        departments: dict[str, str] = {}
        entries: list[f.AuditEntry] = []
        before, scanned = frame.before, 0
        while len(entries) < frame.limit and scanned < AUDIT_SCAN_LIMIT:
            page = await audit.newest(client, frame.limit, before)
            if not page:
                before = None
                break
            for entry in page:
                scanned += 1
                before = entry.id
                if await self._department_of(entry.consultation, departments) in mine:
                    entries.append(
                        f.AuditEntry(
                            id=entry.id,
                            ts=entry.ts_ms,
                            user=entry.user,
                            role=entry.role,  # type: ignore[arg-type]
                            action=entry.action,
                            consultation=entry.consultation,
                        )
                    )
                    if len(entries) == frame.limit:
                        break
        conn.send(f.AuditList(entries=entries, before=before, ref=frame.id))

    async def _department_of(self, consultation: str, known: dict[str, str]) -> str:
        if consultation not in known:
            try:
                known[consultation] = (
                    await self._ctx.link.engine.consultation(consultation)
                ).department
            except UnknownConsultation:
                known[consultation] = ""
        return known[consultation]
