"""Position and ETA: how long a patient can expect to wait, from a snapshot of their department.

This module owns the formula and nothing else. It is pure: it never reads Redis or a clock; the
caller gathers a `QueueSnapshot` (best from one script's reply, so its numbers agree with each
other) and passes it in. Admission control is `is_surge`: a quote above the department's
`max_wait_s`, or with nobody to serve, tells the patient before they join and flags the
department.

The formula, exactly as `estimate_wait` computes it (A = ahead, F = free_slots, D =
doctors_serving, M = recent_matches, W = window_s, C = mean_consult_s; all integers):

    position = A + 1
    need     = A - F + 1      (consultations that must start before this patient's turn comes:
                               the A - F patients left waiting once the free slots are filled,
                               then this patient's own)

    1. F > A                    → eta = 0                       basis "free_slot"
       (a free slot is left over for this patient right now)
    2. D = 0                    → eta = None                    basis "no_doctors"
       (nobody on duty: no estimate can be honest, whatever the recent history says)
    3. M ≥ MIN_RATE_SAMPLE      → eta = ⌈need · W / M⌉          basis "service_rate"
       (the department started M consultations in the last W seconds: one every W/M seconds)
    4. otherwise                → eta = ⌈need / D⌉ · C          basis "staffing"
       (too little history: D doctors each finish a consultation every C seconds, so the queue
        moves in rounds of D)

Every division rounds up, in integer arithmetic, so a quote never promises a patient less than
the formula gives. For a fixed department, the ETA never decreases as `ahead` grows and never
increases as `free_slots` grows (None counting as longer than any number).

Known limits: the service rate counts matches, and a department with no queue matches patients
as fast as they arrive, not as fast as its doctors could see them; so after a quiet spell the
rate understates capacity and the first quotes of a sudden rush are pessimistic until the
window fills with busy minutes. The staffing rule assumes every busy doctor has just started.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Fewer matches than this in the window and the measured rate is mostly noise (a Poisson count
# of n has a relative error of about 1/√n: 58% at 3, 100% at 1), so the configured mean
# consultation length is the better guess.
MIN_RATE_SAMPLE = 3


class Basis(StrEnum):
    """Which rule produced an estimate. Sent to clients and dashboards: never rename one."""

    FREE_SLOT = "free_slot"  # a doctor can take the patient now
    SERVICE_RATE = "service_rate"  # from the department's recent matches
    STAFFING = "staffing"  # from doctors on duty and the configured mean consultation length
    NO_DOCTORS = "no_doctors"  # nobody on duty: no estimate


@dataclass(frozen=True)
class QueueSnapshot:
    """What the ETA formula needs to know about one department, at one instant.

    Raises ValueError on a negative count, or a window or consultation length that is not
    positive.
    """

    ahead: int  # tickets that would be served before this one
    recent_matches: int  # consultations started in the department in the last `window_s`
    window_s: int  # length of the window `recent_matches` was counted over
    doctors_serving: int  # doctors on duty in the department
    free_slots: int  # capacity free right now across the department's available doctors
    mean_consult_s: int  # configured average consultation length, the fallback

    def __post_init__(self) -> None:
        for name in ("ahead", "recent_matches", "doctors_serving", "free_slots"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("window_s", "mean_consult_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class Estimate:
    """A patient's place and expected wait. `eta_s` is None when nobody is on duty."""

    position: int  # 1 is next
    eta_s: int | None
    basis: Basis


def estimate_wait(snapshot: QueueSnapshot) -> Estimate:
    """Apply the formula in the module docstring to `snapshot`."""
    position = snapshot.ahead + 1
    if snapshot.free_slots > snapshot.ahead:
        return Estimate(position=position, eta_s=0, basis=Basis.FREE_SLOT)
    if snapshot.doctors_serving == 0:
        return Estimate(position=position, eta_s=None, basis=Basis.NO_DOCTORS)
    need = snapshot.ahead - snapshot.free_slots + 1
    if snapshot.recent_matches >= MIN_RATE_SAMPLE:
        eta_s = _ceil_div(need * snapshot.window_s, snapshot.recent_matches)
        return Estimate(position=position, eta_s=eta_s, basis=Basis.SERVICE_RATE)
    rounds = _ceil_div(need, snapshot.doctors_serving)
    return Estimate(position=position, eta_s=rounds * snapshot.mean_consult_s, basis=Basis.STAFFING)


def is_surge(estimate: Estimate, max_wait_s: int) -> bool:
    """Whether a quote must warn the patient and flag the department: no estimate, or too long."""
    return estimate.eta_s is None or estimate.eta_s > max_wait_s


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)
