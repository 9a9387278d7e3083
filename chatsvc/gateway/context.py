"""What every part of the real-time path shares in one gateway process, and the small lookups
they all need (names, views, guidance, the audit, opening a transcript).

Built once per application in `app.py`; the parts (desk feed, fanout, queue watch, command
handlers) hold it rather than each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatsvc.config import Config
from chatsvc.gateway.hub import Hub
from chatsvc.gateway.redis_link import RedisLink
from chatsvc.gateway.telemetry import Telemetry
from chatsvc.gateway.views import consultation_view
from chatsvc.protocol import frames as f
from chatsvc.tokens import Claims, Role
from triage import audit, keys, views
from triage.models import Urgency
from triage.records import RedFlag
from triage.transcripts import Position

if TYPE_CHECKING:
    from chatsvc.gateway.fanout import Fanout
    from chatsvc.gateway.presence import GatewayPresence
    from chatsvc.gateway.queue_watch import QueueWatch
    from chatsvc.gateway.supervision import Supervision


def pick_language(available: Sequence[str], wanted: str) -> str:
    """The configured language closest to a BCP 47 tag ("zh-CN" → "zh-cn", else "zh"), case
    insensitively, else English. Returns the key as configured."""
    by_lower = {key.lower(): key for key in available}
    wanted = wanted.lower()
    for candidate in (wanted, wanted.split("-", 1)[0]):
        if candidate in by_lower:
            return by_lower[candidate]
    return by_lower.get("en", "en")


@dataclass
class GatewayContext:
    config: Config
    link: RedisLink
    hub: Hub = field(default_factory=Hub)
    telemetry: Telemetry = field(default_factory=Telemetry)
    fanout: Fanout = field(init=False)
    queue_watch: QueueWatch = field(init=False)
    presence: GatewayPresence = field(init=False)
    supervision: Supervision = field(init=False)

    # -- lookups --------------------------------------------------------------------------

    async def doctor_names(self, doctor_ids: list[str]) -> dict[str, str]:
        return await views.doctor_names(self.link.client, doctor_ids)

    async def ensure_transcript(self, consultation: str, patient: str, doctor: str) -> Position:
        """Open the transcript with its participants (idempotent: after a transfer it adds the
        new doctor). Called by whoever learns of a match first."""
        participants = {patient: Role.PATIENT.value}
        if doctor:
            participants[doctor] = Role.DOCTOR.value
        return await self.link.transcripts.open(consultation, participants)

    async def view_for_doctor(self, consultation: str, doctor: str) -> f.ConsultationView:
        """The consultation with its intake, as shown to the doctor it is offered to or held
        by; the read is audited like any other read of an intake."""
        record = await self.link.engine.consultation(consultation)
        await audit.record(
            self.link.client, doctor, Role.DOCTOR.value, "read_details", consultation
        )
        return await self.render(record.id, with_intake=True)

    async def render(self, consultation: str, with_intake: bool) -> f.ConsultationView:
        record = await self.link.engine.consultation(consultation)
        return await consultation_view(
            self.link.client, self.link.engine, self.link.transcripts, record, with_intake
        )

    def guidance(self, department: str, flags: Sequence[RedFlag], lang: str) -> f.Guidance | None:
        """Emergency guidance for an intake with an emergency red flag, else None."""
        emergency = [flag for flag in flags if flag.urgency is Urgency.EMERGENCY]
        if not emergency:
            return None
        rules = next((d for d in self.config.departments if d.id == department), None)
        if rules is None:
            return None
        number = self.config.desk.emergency_number
        text = rules.guidance[pick_language(list(rules.guidance), lang)]
        return f.Guidance(
            department=department,
            phrase=emergency[0].phrase,
            text=text.replace("{number}", number),
            number=number,
        )

    def welcome(self, claims: Claims, lang: str, ref: str | None) -> f.Welcome:
        desk = self.config.departments
        if claims.role is Role.PATIENT:
            shown = list(desk)
            notice = self.config.desk.notice
            emergency: f.EmergencyNotice | None = f.EmergencyNotice(
                number=self.config.desk.emergency_number,
                text=notice[pick_language(list(notice), lang)].replace(
                    "{number}", self.config.desk.emergency_number
                ),
            )
        else:
            shown = [d for d in desk if d.id in claims.departments]
            emergency = None
        return f.Welcome(
            protocol=f.PROTOCOL_VERSION,
            role=claims.role.value,  # type: ignore[arg-type]
            user_id=claims.user_id,
            name=claims.name,
            expires_at=claims.expires_at,
            departments=[f.DepartmentInfo(id=d.id, name=d.name, routing=d.routing) for d in shown],
            emergency=emergency,
            ref=ref,
        )

    async def accept_deadline(self, consultation: str) -> int:
        """When an offered consultation's offer expires (ms), 0 when it is not offered."""
        value = await self.link.client.hget(keys.consultation(consultation), "accept_deadline")
        return int(value) if value else 0

    def capacity_of(self, claims: Claims) -> int:
        return claims.capacity or self.config.limits.doctor_capacity
