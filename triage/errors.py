"""The triage engine's exceptions.

    TriageError                  root: anything the engine refuses or cannot do
    ├── SchemaMismatch           Redis holds data written by a newer chatsvc
    ├── ScriptError              a Lua script failed in a way no caller can correct
    └── Refused                  a wrong call: the state did not allow it; nothing changed
        ├── UnknownDepartment    unknown_department
        ├── UnknownTicket        unknown_ticket
        ├── UnknownConsultation  unknown_consultation
        ├── ConsentRequired      consent_required
        ├── AlreadyWaiting       already_waiting: the patient has an open ticket
        ├── InConsultation       in_consultation: the patient has an open consultation
        ├── NotWaiting           not_waiting: no waiting ticket (left, or already assigned)
        ├── DoctorOffline        offline: signed off, or presence lapsed
        ├── NotAvailable         not_available: away
        ├── AtCapacity           at_capacity
        ├── QueueEmpty           queue_empty
        ├── NotOffered           not_offered: nothing to accept (or the offer expired)
        ├── NotParticipant       not_participant
        ├── AlreadyEnded         already_ended
        ├── NotActive            not_active
        ├── NotRaised            not_raised: reprioritise may only raise urgency
        ├── TargetUnavailable    target_unavailable: transfer to a doctor who cannot take it
        ├── OpenConsultations    open_consultations: going offline while holding patients
        └── TooManyConnections   too_many_connections: the user's connection limit is reached

Codes are public (they reach clients in error frames): never rename or reuse one.
"""

from __future__ import annotations


class TriageError(Exception):
    """Root of the engine's errors."""


class SchemaMismatch(TriageError):
    """Raised at start when the desk's data was written by a newer schema than this code knows."""

    def __init__(self, stored: int, supported: int) -> None:
        super().__init__(
            f"the desk's data has schema version {stored}, newer than the {supported} this "
            "chatsvc understands: upgrade chatsvc, or point it at another Redis"
        )
        self.stored = stored
        self.supported = supported


class ScriptError(TriageError):
    """A script raised an error that is a bug or a broken server, not a wrong call."""


class Refused(TriageError):
    """A call the current state does not allow. The script changed nothing."""

    code = "refused"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.code}: {detail}" if detail else self.code)
        self.detail = detail


class UnknownDepartment(Refused):
    code = "unknown_department"


class UnknownTicket(Refused):
    code = "unknown_ticket"


class UnknownConsultation(Refused):
    code = "unknown_consultation"


class ConsentRequired(Refused):
    code = "consent_required"


class AlreadyWaiting(Refused):
    code = "already_waiting"


class InConsultation(Refused):
    code = "in_consultation"


class NotWaiting(Refused):
    code = "not_waiting"


class DoctorOffline(Refused):
    code = "offline"


class NotAvailable(Refused):
    code = "not_available"


class AtCapacity(Refused):
    code = "at_capacity"


class QueueEmpty(Refused):
    code = "queue_empty"


class NotOffered(Refused):
    code = "not_offered"


class NotParticipant(Refused):
    code = "not_participant"


class AlreadyEnded(Refused):
    code = "already_ended"


class NotActive(Refused):
    code = "not_active"


class NotRaised(Refused):
    code = "not_raised"


class TargetUnavailable(Refused):
    code = "target_unavailable"


class OpenConsultations(Refused):
    code = "open_consultations"


class TooManyConnections(Refused):
    code = "too_many_connections"


REFUSALS: dict[str, type[Refused]] = {cls.code: cls for cls in Refused.__subclasses__()}


def refusal(code: str, detail: str) -> Refused:
    """The exception for a script's {'err', code, detail} reply."""
    kind = REFUSALS.get(code)
    if kind is None:
        raise ScriptError(f"script returned an unknown error code {code!r} ({detail})")
    return kind(detail)
