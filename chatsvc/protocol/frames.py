"""Wire types: every frame, one definition for both the JSON and the msgpack encoding.

Client frames may carry an `id`; every reply and error refers to it as `ref`. Frames a server
sends on its own (a queue update, a message from the other side) have no `ref`. Field bounds
live here, so a frame that decodes is already within them; limits that come from the config
(the longest chat message) are checked by the gateway.

Names follow the wire: client frames are commands (`Send`, `TakeNext`), server frames are what
happened (`Ack`, `Assigned`). Where both sides use one type name (`typing`, `read`,
`delivered`), the two classes differ in name only.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from chatsvc.protocol.errors import ErrorCode

PROTOCOL_VERSION = 1
# Ids are echoed back in every reply; a bound keeps a client from making us echo megabytes.
MAX_FRAME_ID_CHARS = 128
FrameId = Annotated[str, msgspec.Meta(max_length=MAX_FRAME_ID_CHARS)] | None
# Consultation, ticket and user ids are minted by the server or by `chatsvc token`: short.
Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
DepartmentRef = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
# A client message id is the sender's dedup key; the same bound as a frame id.
ClientMsgId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_FRAME_ID_CHARS)]
# Intake symptoms: enough for a careful description, small enough to keep a ticket small.
MAX_SYMPTOMS_CHARS = 2000
# A doctor's summary is read by the patient on the end screen and kept in the record.
MAX_SUMMARY_CHARS = 4000
# Languages are BCP 47 tags such as "en" or "zh-CN"; the gateway picks the closest it ships.
Language = Annotated[str, msgspec.Meta(max_length=35)]
Seq = Annotated[int, msgspec.Meta(ge=0)]
# A hello resumes at most this many consultations: more than any doctor holds at once.
MAX_RESUME_POINTS = 64
# One `fetch` returns at most this many messages; a longer catch-up is paged.
MAX_FETCH_LIMIT = 500
MAX_AUDIT_LIMIT = 500

AgeBand = Literal["0-1", "2-12", "13-17", "18-39", "40-64", "65+", ""]
Duration = Literal["hours", "days", "weeks", "months", ""]
DoctorStatusName = Literal["available", "away", "offline"]
UrgencyName = Literal["routine", "priority", "urgent", "emergency"]
RoleName = Literal["patient", "doctor", "supervisor"]


class Frame(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True
):
    pass


class Part(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A value nested in a frame (not a frame itself: no `type`)."""


# -- nested values ------------------------------------------------------------------------------


class IntakeForm(Part):
    """What a patient states before joining. Health data: never logged."""

    symptoms: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SYMPTOMS_CHARS)]
    age_band: AgeBand = ""
    duration: Duration = ""


class DepartmentInfo(Part):
    id: str
    name: str
    routing: Literal["pull", "push"]


class EmergencyNotice(Part):
    """Shown before joining: this desk is not for emergencies, and whom to call instead."""

    number: str
    text: str


class RedFlagHit(Part):
    phrase: str
    urgency: UrgencyName


class ConsultationView(Part):
    """A consultation as its participants and supervisors see it."""

    id: str
    department: str
    state: Literal["offered", "active", "queued", "ended"]
    patient: str
    doctor: str  # "" while queued
    doctor_name: str
    urgency: UrgencyName
    red_flags: list[RedFlagHit]
    intake: IntakeForm | None  # only for those the access matrix lets read it
    started_ms: int | None
    ended_ms: int | None
    outcome: str | None
    summary: str
    epoch: str  # the transcript's epoch and last seq: where a reader stands
    last_seq: int
    # Role -> the highest seq that side has marked read (the receipts shown to the other side).
    read: dict[str, int] = {}
    # Role -> the highest seq that side has marked delivered; never below its `read` mark.
    delivered: dict[str, int] = {}


class MessageEntry(Part):
    seq: int
    sender: str
    role: RoleName | Literal["system"]
    kind: str
    text: str
    client_msg_id: str
    ts: int  # ms since 1970, the desk's clock


class DepartmentLoad(Part):
    id: str
    waiting: int
    longest_wait_s: int
    red_flags_waiting: int


class PastConsultation(Part):
    id: str
    department: str
    doctor_name: str
    started_ms: int | None
    ended_ms: int | None
    outcome: str | None
    summary: str


class AuditEntry(Part):
    id: str
    ts: int
    user: str
    role: RoleName
    action: str
    consultation: str


# -- client → server: connection ----------------------------------------------------------------


class ResumePoint(Part):
    """Where a reconnecting client stands in one consultation: it holds every message up to
    `seq` of `epoch` (seq 0: none yet)."""

    consultation: Ref
    epoch: Annotated[str, msgspec.Meta(max_length=32)]
    seq: Seq


class Hello(Frame, tag="hello"):
    """First frame of every connection: the token and the protocol version the client speaks.
    A reconnecting client lists where it stands (`resume`) and gets everything after."""

    token: str
    protocol: int = PROTOCOL_VERSION
    lang: Language = ""
    resume: Annotated[list[ResumePoint], msgspec.Meta(max_length=MAX_RESUME_POINTS)] = []
    id: FrameId = None


class Renew(Frame, tag="renew"):
    """A fresh token for the same user and role, sent before the current one expires."""

    token: str
    id: FrameId = None


class Ping(Frame, tag="ping"):
    id: FrameId = None


# -- client → server: patients ------------------------------------------------------------------


class QuoteRequest(Frame, tag="quote"):
    """Where the patient would stand in a department, before joining."""

    department: DepartmentRef
    id: FrameId = None


class Join(Frame, tag="join"):
    """Join a department's queue. Both flags must be true: the patient has read the
    not-for-emergencies notice and consents to the handling of their health data."""

    department: DepartmentRef
    intake: IntakeForm
    consent: bool
    notice_acknowledged: bool
    id: FrameId = None


class Leave(Frame, tag="leave"):
    """Leave the queue (a patient still waiting)."""

    id: FrameId = None


# -- client → server: doctors -------------------------------------------------------------------


class SetStatus(Frame, tag="set_status"):
    status: DoctorStatusName
    id: FrameId = None


class TakeNext(Frame, tag="take_next"):
    """Pull routing: take the best waiting patient of the doctor's departments."""

    id: FrameId = None


class Accept(Frame, tag="accept"):
    """Push routing: accept a consultation offered to this doctor."""

    consultation: Ref
    id: FrameId = None


class End(Frame, tag="end"):
    consultation: Ref
    summary: Annotated[str, msgspec.Meta(max_length=MAX_SUMMARY_CHARS)] = ""
    id: FrameId = None


class Transfer(Frame, tag="transfer"):
    """Hand the consultation to another department's queue, or to a named doctor."""

    consultation: Ref
    department: DepartmentRef | None = None
    doctor: Ref | None = None
    id: FrameId = None


class PatientHistory(Frame, tag="patient_history"):
    """The earlier consultations of this consultation's patient."""

    consultation: Ref
    id: FrameId = None


# -- client → server: in a consultation ---------------------------------------------------------


class Send(Frame, tag="send"):
    """A chat message. A retry carries the same `client_msg_id` and is stored once."""

    consultation: Ref
    client_msg_id: ClientMsgId
    text: Annotated[str, msgspec.Meta(min_length=1)]
    id: FrameId = None


class TypingSignal(Frame, tag="typing"):
    consultation: Ref
    id: FrameId = None


class MarkRead(Frame, tag="read"):
    """The sender has read every message up to `seq`."""

    consultation: Ref
    seq: Seq
    id: FrameId = None


class MarkDelivered(Frame, tag="delivered"):
    """The sender's side has received every message up to `seq` (not necessarily read it)."""

    consultation: Ref
    seq: Seq
    id: FrameId = None


class Fetch(Frame, tag="fetch"):
    """Messages after `after_seq` (of `epoch`, when given), oldest first, at most `limit`."""

    consultation: Ref
    after_seq: Seq = 0
    epoch: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_FETCH_LIMIT)] = 100
    id: FrameId = None


class Open(Frame, tag="open"):
    """A consultation's details (intake, red flags, state), for those allowed to read them."""

    consultation: Ref
    id: FrameId = None


# -- client → server: supervisors ---------------------------------------------------------------


class ListConsultations(Frame, tag="list_consultations"):
    """Live consultations of the supervisor's departments (or one of them)."""

    department: DepartmentRef | None = None
    id: FrameId = None


class ListAudit(Frame, tag="list_audit"):
    """The newest audit entries (reads of transcripts and intakes by anyone but the patient)."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_AUDIT_LIMIT)] = 100
    before: str | None = None  # an audit entry id: page further back
    id: FrameId = None


Inbound = (
    Hello
    | Renew
    | Ping
    | QuoteRequest
    | Join
    | Leave
    | SetStatus
    | TakeNext
    | Accept
    | End
    | Transfer
    | PatientHistory
    | Send
    | TypingSignal
    | MarkRead
    | MarkDelivered
    | Fetch
    | Open
    | ListConsultations
    | ListAudit
)

# -- server → client: connection ----------------------------------------------------------------


class Welcome(Frame, tag="welcome"):
    protocol: int
    role: RoleName
    user_id: str
    name: str
    expires_at: int
    departments: list[DepartmentInfo]  # the desk's, for patients; the user's own, for staff
    emergency: EmergencyNotice | None = None  # patients only
    ref: FrameId = None


class Renewed(Frame, tag="renewed"):
    expires_at: int
    ref: FrameId = None


class TokenExpiring(Frame, tag="token_expiring"):
    """The token expires at `expires_at`; renew before then or the socket is closed (4003)."""

    expires_at: int


class Pong(Frame, tag="pong"):
    ref: FrameId = None


class Error(Frame, tag="error"):
    code: ErrorCode
    message: str
    ref: FrameId = None


# -- server → client: queue ---------------------------------------------------------------------


class Quoted(Frame, tag="quoted"):
    department: str
    position: int  # where the patient would stand: 1 = next
    eta_s: int | None  # None when nobody serves the department now
    surge: bool
    ref: FrameId = None


class Joined(Frame, tag="joined"):
    ticket: str
    department: str
    position: int
    eta_s: int | None
    urgency: UrgencyName
    red_flags: list[RedFlagHit]
    ref: FrameId = None


class Queued(Frame, tag="queued"):
    """Where a waiting patient stands now (sent on change, at most about once a second)."""

    ticket: str
    department: str
    position: int
    eta_s: int | None
    surge: bool


class Guidance(Frame, tag="guidance"):
    """Emergency guidance: a red flag fired on the intake. Shown at once, before any doctor."""

    department: str
    phrase: str
    text: str
    number: str


class Left(Frame, tag="left"):
    ticket: str
    ref: FrameId = None


class Assigned(Frame, tag="assigned"):
    """To the patient: a doctor has taken their case."""

    consultation: str
    department: str
    doctor_name: str
    epoch: str
    last_seq: int


class QueueSummary(Frame, tag="queue_summary"):
    """To doctors and supervisors: the load of their departments."""

    departments: list[DepartmentLoad]


# -- server → client: doctors -------------------------------------------------------------------


class StatusChanged(Frame, tag="status"):
    status: DoctorStatusName
    active: int
    capacity: int
    ref: FrameId = None


class Offered(Frame, tag="offer"):
    """Push routing: a patient reserved for this doctor until `deadline_ms`; send `accept`."""

    consultation: ConsultationView
    deadline_ms: int


class Opened(Frame, tag="consultation"):
    """A consultation this user takes part in (or asked to see), with its details."""

    consultation: ConsultationView
    ref: FrameId = None


class PeerPresence(Frame, tag="presence"):
    """The other side of a consultation lost its last connection ("reconnecting") or is back
    ("back"). A doctor still away after the grace period means the consultation is requeued
    (the patient then gets `queued`); a patient still away after theirs ends it (`ended`)."""

    consultation: str
    role: RoleName
    status: Literal["reconnecting", "back"]


class Released(Frame, tag="released"):
    """To a doctor: a consultation left them (transferred, requeued, offer expired)."""

    consultation: str
    reason: str
    ref: FrameId = None


class History(Frame, tag="patient_history"):
    consultation: str
    items: list[PastConsultation]
    ref: FrameId = None


# -- server → client: in a consultation ---------------------------------------------------------


class Message(Frame, tag="message"):
    consultation: str
    epoch: str
    entry: MessageEntry


class Ack(Frame, tag="ack"):
    """A `send` is stored at this position; `duplicate` when it was a retry of a stored one."""

    consultation: str
    client_msg_id: str
    epoch: str
    seq: int
    ts: int
    duplicate: bool
    ref: FrameId = None


class TypingNotice(Frame, tag="typing"):
    consultation: str
    role: RoleName


class ReadReceipt(Frame, tag="read"):
    consultation: str
    role: RoleName
    seq: int


class DeliveryReceipt(Frame, tag="delivered"):
    """The other side has received up to `seq`. A `read` receipt implies delivery up to its seq
    too (no `delivered` is sent for a delivery mark that a read mark raised)."""

    consultation: str
    role: RoleName
    seq: int


class Messages(Frame, tag="messages"):
    """A `fetch` reply: `entries` after the asked position; `last_seq` is the newest there is."""

    consultation: str
    epoch: str
    last_seq: int
    entries: list[MessageEntry]
    ref: FrameId = None


class Reset(Frame, tag="reset"):
    """The asked position cannot be served (another epoch, expired): fetch from `epoch`, 0."""

    consultation: str
    epoch: str
    last_seq: int
    reason: str
    ref: FrameId = None


class Ended(Frame, tag="ended"):
    consultation: str
    outcome: str
    summary: str
    ref: FrameId = None


# -- server → client: supervisors ---------------------------------------------------------------


class ConsultationList(Frame, tag="consultations"):
    items: list[ConsultationView]
    ref: FrameId = None


class AuditList(Frame, tag="audit"):
    entries: list[AuditEntry]
    # Where to page back from (send it as `before`); None when nothing older is left.
    before: str | None = None
    ref: FrameId = None


class OverdueAlert(Part):
    """A red-flagged patient still waiting past the desk's alert time."""

    ticket: str
    waited_ms: int


class AbandonAlert(Part):
    """An urgent, emergency or red-flagged patient who left the queue unserved."""

    ticket: str
    at_ms: int


class DepartmentFigures(Part):
    """One department's live figures (definitions in docs/operations.md, "Desk metrics")."""

    department: str
    waiting: int
    longest_wait_ms: int
    wait_p50_ms: int | None  # None: nobody was matched in the window
    wait_p90_ms: int | None
    matched_in_window: int
    abandoned_in_window: int
    abandonment_rate: float | None
    started_last_minute: int
    ended_last_minute: int
    abandoned_last_minute: int
    doctors_available: int
    doctors_busy: int
    doctors_away: int
    slots_held: int
    slots_total: int
    utilisation: float | None  # None: no doctor on duty and not away
    active_consultations: int
    eta_checks: int
    eta_mean_abs_error_s: float | None
    eta_within_share: float | None
    surge: bool
    red_flags_waiting: int
    red_flags_overdue: int
    overdue_alerts: list[OverdueAlert]
    flagged_abandoned_in_window: int
    abandon_alerts: list[AbandonAlert]


class DeskMetricsFrame(Frame, tag="metrics"):
    """To supervisors, every second: the desk's live figures, the same on every gateway."""

    computed_ms: int
    window_s: int
    red_flag_alert_s: int
    messages_per_s: float
    departments: list[DepartmentFigures]


Outbound = (
    Welcome
    | Renewed
    | TokenExpiring
    | Pong
    | Error
    | Quoted
    | Joined
    | Queued
    | Guidance
    | Left
    | Assigned
    | QueueSummary
    | StatusChanged
    | Offered
    | Opened
    | PeerPresence
    | Released
    | History
    | Message
    | Ack
    | TypingNotice
    | ReadReceipt
    | DeliveryReceipt
    | Messages
    | Reset
    | Ended
    | ConsultationList
    | AuditList
    | DeskMetricsFrame
)
