"""Every Redis key name chatsvc uses, built in one place.

Two families, chosen for Redis Cluster:
- Desk state (queues, tickets, doctors, consultation records, timers, events, counters) shares
  the hash tag `{desk}`, so every matching script touches one slot. A desk matches a few hundred
  patients a second at surge, orders of magnitude below one shard's capacity.
- A consultation's transcript (stream, meta with epoch/seq/participants, dedup map) is tagged
  `{c:<id>}`, so transcripts, the bulk of the data and traffic, spread across slots.

Keys are built only here. Each function says when its key expires, or why it never does.
"""

from __future__ import annotations

PREFIX = "chatsvc"
DESK_TAG = "{desk}"
_DESK = f"{PREFIX}:{DESK_TAG}"


def desk_meta() -> str:
    """Hash: schema_version, created_ms, arrivals (the desk-wide arrival counter). Never
    expires: it identifies the desk's data for its life."""
    return f"{_DESK}:meta"


def queue(department: str) -> str:
    """Sorted set of waiting ticket ids, scored by place. Never expires: it lives as long as
    the department; empty sets vanish by themselves."""
    return f"{_DESK}:queue:{department}"


def ticket(ticket_id: str) -> str:
    """Hash: one patient's wait. Expires `retention` after it leaves the queue."""
    return f"{_DESK}:ticket:{ticket_id}"


def patient(patient_id: str) -> str:
    """Hash: the patient's open ticket and consultation. Deleted when both are closed."""
    return f"{_DESK}:patient:{patient_id}"


def doctor(doctor_id: str) -> str:
    """Hash: profile, status, active count, idle-since, alive-until. Never expires: a doctor's
    profile outlives their shifts (status says whether they are on duty)."""
    return f"{_DESK}:doctor:{doctor_id}"


def doctor_consultations(doctor_id: str) -> str:
    """Set of the doctor's open consultation ids. Empty sets vanish by themselves."""
    return f"{_DESK}:doctor:{doctor_id}:consultations"


def available(department: str) -> str:
    """Sorted set of available doctors with a free slot, scored by load then idle time (push
    routing picks the lowest). Empty sets vanish by themselves."""
    return f"{_DESK}:available:{department}"


def serving(department: str) -> str:
    """Set of doctors on duty (available or away) in a department, for ETA. Kept in step with
    status; empty sets vanish by themselves."""
    return f"{_DESK}:serving:{department}"


def consultation(consultation_id: str) -> str:
    """Hash: the consultation record. Expires `retention` after it ends."""
    return f"{_DESK}:consultation:{consultation_id}"


def departments() -> str:
    """Hash: department id -> routing, written at every gateway start. Never expires."""
    return f"{_DESK}:departments"


def surge(department: str) -> str:
    """String: when the department was flagged in surge (a quote over its max wait). Expires
    when no quote renews it for a while; a quote within the max wait deletes it."""
    return f"{_DESK}:surge:{department}"


def timers() -> str:
    """Sorted set of pending deadlines ('kind|id|token' scored by ms). Never expires: fired
    and cancelled members are removed one by one."""
    return f"{_DESK}:timers"


def events() -> str:
    """Stream of state changes for gateways; capped by MAXLEN and trimmed behind groups."""
    return f"{_DESK}:events"


def idempotency(request_id: str) -> str:
    """String: the first result of a mutating call, replayed on a retry. Expires after a day."""
    return f"{_DESK}:idem:{request_id}"


def stats(department: str) -> str:
    """Hash of exact desk counters per department (joins, matches, abandons, waits). Never
    expires: totals since the desk began."""
    return f"{_DESK}:stats:{department}"


def matches(department: str) -> str:
    """Sorted set of recent matches (ticket id scored by ms) for the service rate behind ETAs.
    Entries older than the longest ETA window are trimmed by the sweeper
    (`Engine.trim_matches`)."""
    return f"{_DESK}:matches:{department}"


def transcript_tag(consultation_id: str) -> str:
    return f"{{c:{consultation_id}}}"


def transcript_stream(consultation_id: str) -> str:
    """Stream of messages, entry id `<seq>-0`. Expires `hot retention` after the end."""
    return f"{PREFIX}:{transcript_tag(consultation_id)}:stream"


def transcript_meta(consultation_id: str) -> str:
    """Hash: epoch, seq, closed, and `p:<user>` = role for each participant. Expires with the
    stream."""
    return f"{PREFIX}:{transcript_tag(consultation_id)}:meta"


def transcript_dedup(consultation_id: str) -> str:
    """Hash: (sender, client_msg_id) -> seq, so a retried send is stored once. Expires with the
    stream."""
    return f"{PREFIX}:{transcript_tag(consultation_id)}:dedup"


def transcript_channel(consultation_id: str) -> str:
    """Pub/sub channel announcing `epoch:seq` of each new message (a hint, not the truth)."""
    return f"{PREFIX}:{transcript_tag(consultation_id)}:notify"


def audit() -> str:
    """Stream of audited reads (who read which consultation's transcript or details, when).
    Append-only: chatsvc never trims it (see docs/operations.md, "Audit")."""
    return f"{_DESK}:audit"


def patient_consultations(patient_id: str) -> str:
    """Sorted set of a patient's consultation ids scored by creation ms, for the doctor's view
    of earlier consultations. Expires `retention` after the patient's latest consultation."""
    return f"{_DESK}:patient:{patient_id}:consultations"


def waiting_since(department: str) -> str:
    """Sorted set of the department's waiting ticket ids scored by join ms: the same members as
    `queue`, ordered by how long they have waited (the longest wait is its head). Kept in step
    with `queue` by the scripts; empty sets vanish by themselves."""
    return f"{_DESK}:since:{department}"


def flagged_waiting(department: str) -> str:
    """Set of the department's waiting ticket ids whose intake raised a red flag. Kept in step
    with `queue` by the scripts; empty sets vanish by themselves."""
    return f"{_DESK}:flagged:{department}"


def guest_sessions(address: str, window: int) -> str:
    """Counter of guest tokens issued to one client address in one rate-limit window. Expires
    two windows after it starts."""
    return f"{_DESK}:guests:{address}:{window}"


def gateways() -> str:
    """Sorted set: gateway id -> its liveness lease expiry (ms). Never expires: lapsed members
    are removed by `presence_reap`."""
    return f"{_DESK}:gateways"


def presence(user_id: str) -> str:
    """Hash: gateway id -> the user's open connections there. Fields go when they reach 0 or
    their gateway is reaped; an empty hash vanishes by itself."""
    return f"{_DESK}:presence:{user_id}"


def gateway_users(gateway_id: str) -> str:
    """Set of "<role>|<user>" connected to a gateway, so a dead gateway's users can be found.
    Deleted when the gateway is reaped."""
    return f"{_DESK}:gateway:{gateway_id}:users"


def presence_hold() -> str:
    """String: no timer fires and no gateway is reaped before this ms. Expires by itself."""
    return f"{_DESK}:presence_hold"


# -- supervisors' metrics: windowed indexes kept by the desk scripts, trimmed by desk_metrics --


def waits(department: str) -> str:
    """Sorted set: ticket → its wait (ms), for the patients first matched in the metrics window
    (wait percentiles)."""
    return f"{_DESK}:waits:{department}"


def waits_at(department: str) -> str:
    """Sorted set: ticket → when it was first matched (ms); trims `waits` to the window."""
    return f"{_DESK}:waits_at:{department}"


def abandons(department: str) -> str:
    """Sorted set: ticket → when its patient left the queue unserved (ms), within the window."""
    return f"{_DESK}:abandons:{department}"


def abandons_flagged(department: str) -> str:
    """Sorted set: like `abandons`, for urgent, emergency or red-flagged tickets only (a
    safety alert for supervisors)."""
    return f"{_DESK}:abandons_flagged:{department}"


def ends(department: str) -> str:
    """Sorted set: consultation → when it ended (ms), within the window."""
    return f"{_DESK}:ends:{department}"


def eta_checks(department: str) -> str:
    """List of `<matched_ms>:<quoted_eta_ms>:<waited_ms>`, newest first, the last 1,000
    matches of patients whose first quote was recorded (ETA accuracy)."""
    return f"{_DESK}:eta_checks:{department}"


def messages() -> str:
    """Hash: unix second → messages stored in it (gateways add their counts once a second);
    fields older than a minute are dropped by desk_metrics."""
    return f"{_DESK}:messages"


def metrics_cache() -> str:
    """Hash {at, json}: the last desk_metrics result, reused for up to a second so the desk is
    computed once a second however many gateways ask."""
    return f"{_DESK}:metrics_cache"
