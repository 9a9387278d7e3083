"""Frames built from the desk's records: what a consultation looks like to the people in it.

Reads triage records and turns them into the wire's nested values. Whether the asker may see a
consultation is decided before (the access matrix); this module only renders.
"""

from __future__ import annotations

from redis.asyncio import Redis

from chatsvc.protocol import frames as f
from triage import views
from triage.engine import Engine
from triage.records import Consultation, Ticket
from triage.transcripts import Transcripts


def intake_form(ticket: Ticket) -> f.IntakeForm:
    return f.IntakeForm(
        symptoms=ticket.intake.symptoms or "-",
        age_band=ticket.intake.age_band,  # type: ignore[arg-type]  # validated on join
        duration=ticket.intake.duration,  # type: ignore[arg-type]
    )


def red_flag_hits(ticket: Ticket) -> list[f.RedFlagHit]:
    return [
        f.RedFlagHit(phrase=flag.phrase, urgency=flag.urgency.label)  # type: ignore[arg-type]
        for flag in ticket.red_flags
    ]


async def consultation_view(
    client: Redis,
    engine: Engine,
    transcripts: Transcripts,
    consultation: Consultation,
    with_intake: bool,
) -> f.ConsultationView:
    ticket = await engine.ticket(consultation.ticket_id)
    position = await transcripts.position(consultation.id)
    marks = await transcripts.marks(consultation.id) if position else None
    names = await views.doctor_names(
        client, [consultation.doctor_id] if consultation.doctor_id else []
    )
    return f.ConsultationView(
        id=consultation.id,
        department=consultation.department,
        state=consultation.state.value,  # type: ignore[arg-type]
        patient=consultation.patient_id,
        doctor=consultation.doctor_id,
        doctor_name=names.get(consultation.doctor_id, ""),
        urgency=ticket.urgency.label,  # type: ignore[arg-type]
        red_flags=red_flag_hits(ticket),
        intake=intake_form(ticket) if with_intake else None,
        started_ms=consultation.started_ms,
        ended_ms=consultation.ended_ms,
        outcome=consultation.outcome,
        summary=consultation.summary,
        epoch=position.epoch if position else "",
        last_seq=position.seq if position else 0,
        read=marks.read if marks else {},
        delivered=marks.delivered if marks else {},
    )
