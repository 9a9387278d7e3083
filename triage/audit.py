"""The audit stream: an append-only record of who read a consultation other than its patient.

Every read or export of a transcript or of a consultation's details (intake, red flags) by a
doctor or supervisor is appended here by the gateway before the data is sent, so a read that
was not recorded was not served. Supervisors list it newest first. Entries carry ids and
names of actions only, never what was read.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from triage import keys


@dataclass(frozen=True)
class AuditRecord:
    id: str  # stream entry id; its first part is the time in ms (Redis's clock)
    user: str
    role: str
    action: str  # read_transcript, read_details, export_transcript, patient_history
    consultation: str

    @property
    def ts_ms(self) -> int:
        return int(self.id.partition("-")[0])


async def record(client: Redis, user: str, role: str, action: str, consultation: str) -> str:
    """Append one entry; the stream id (Redis's time) is when it happened."""
    entry_id = await client.xadd(
        keys.audit(), {"user": user, "role": role, "action": action, "consultation": consultation}
    )
    return str(entry_id)


async def newest(client: Redis, limit: int = 100, before: str | None = None) -> list[AuditRecord]:
    """Up to `limit` entries, newest first; `before` (an entry id) pages further back."""
    high = f"({before}" if before else "+"
    rows = await client.xrevrange(keys.audit(), max=high, min="-", count=limit)
    return [
        AuditRecord(
            id=str(entry_id),
            user=fields["user"],
            role=fields["role"],
            action=fields["action"],
            consultation=fields["consultation"],
        )
        for entry_id, fields in rows
    ]
