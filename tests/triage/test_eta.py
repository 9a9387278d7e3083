"""The ETA formula: pure unit tests with known department histories, no Redis, no clock."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.eta import (
    MIN_RATE_SAMPLE,
    Basis,
    Estimate,
    QueueSnapshot,
    estimate_wait,
    is_surge,
)


def snapshot(
    *,
    ahead: int = 0,
    recent_matches: int = 0,
    window_s: int = 900,
    doctors_serving: int = 1,
    free_slots: int = 0,
    mean_consult_s: int = 600,
) -> QueueSnapshot:
    return QueueSnapshot(
        ahead=ahead,
        recent_matches=recent_matches,
        window_s=window_s,
        doctors_serving=doctors_serving,
        free_slots=free_slots,
        mean_consult_s=mean_consult_s,
    )


def eta_order(estimate: Estimate) -> float:
    """No estimate (nobody on duty) waits longer than any number."""
    return math.inf if estimate.eta_s is None else estimate.eta_s


# --- each rule ----------------------------------------------------------------------------------


def test_a_free_slot_left_over_means_no_wait() -> None:
    est = estimate_wait(snapshot(ahead=2, free_slots=3, recent_matches=10))
    assert est == Estimate(position=3, eta_s=0, basis=Basis.FREE_SLOT)


def test_free_slots_all_taken_by_those_ahead_means_a_wait() -> None:
    # Three ahead fill the three free slots; this patient waits for the next one to free up.
    est = estimate_wait(snapshot(ahead=3, free_slots=3, doctors_serving=2, mean_consult_s=600))
    assert est == Estimate(position=4, eta_s=600, basis=Basis.STAFFING)


def test_known_history_gives_the_service_rate_eta() -> None:
    # 12 consultations started in the last 10 minutes: one every 50 s. Four ahead, no free slot:
    # five must start (theirs and this patient's), 250 s.
    est = estimate_wait(snapshot(ahead=4, recent_matches=12, window_s=600, doctors_serving=3))
    assert est == Estimate(position=5, eta_s=250, basis=Basis.SERVICE_RATE)


def test_service_rate_counts_free_slots_as_already_served() -> None:
    # Same history, two of the four ahead go straight to free slots: three starts needed, 150 s.
    est = estimate_wait(
        snapshot(ahead=4, free_slots=2, recent_matches=12, window_s=600, doctors_serving=3)
    )
    assert est == Estimate(position=5, eta_s=150, basis=Basis.SERVICE_RATE)


def test_service_rate_needs_the_minimum_sample() -> None:
    enough = estimate_wait(snapshot(ahead=1, recent_matches=MIN_RATE_SAMPLE, window_s=900))
    too_few = estimate_wait(snapshot(ahead=1, recent_matches=MIN_RATE_SAMPLE - 1, window_s=900))
    assert enough.basis is Basis.SERVICE_RATE
    assert enough.eta_s == 2 * 900 // MIN_RATE_SAMPLE
    assert too_few.basis is Basis.STAFFING


def test_staffing_moves_the_queue_in_rounds_of_doctors() -> None:
    # Three doctors, 7 starts needed: rounds of 3, 3, 1 → three consultations' length.
    est = estimate_wait(snapshot(ahead=6, doctors_serving=3, mean_consult_s=480))
    assert est == Estimate(position=7, eta_s=3 * 480, basis=Basis.STAFFING)


@pytest.mark.parametrize(("ahead", "rounds"), [(0, 1), (1, 1), (2, 1), (3, 2), (5, 2), (6, 3)])
def test_staffing_rounds_up_to_whole_rounds(ahead: int, rounds: int) -> None:
    est = estimate_wait(snapshot(ahead=ahead, doctors_serving=3, mean_consult_s=100))
    assert est.eta_s == rounds * 100


def test_nobody_on_duty_gives_no_estimate() -> None:
    est = estimate_wait(snapshot(ahead=5, doctors_serving=0))
    assert est == Estimate(position=6, eta_s=None, basis=Basis.NO_DOCTORS)


def test_nobody_on_duty_overrides_a_busy_recent_history() -> None:
    # Doctors matched 30 patients in the window, then all went off duty: the rate is stale.
    est = estimate_wait(snapshot(ahead=5, recent_matches=30, doctors_serving=0))
    assert est.basis is Basis.NO_DOCTORS
    assert est.eta_s is None


def test_a_free_slot_wins_even_when_doctors_serving_reads_zero() -> None:
    est = estimate_wait(snapshot(ahead=0, free_slots=1, doctors_serving=0))
    assert est == Estimate(position=1, eta_s=0, basis=Basis.FREE_SLOT)


# --- rounding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ahead", "matches", "window_s", "eta_s"),
    [
        (0, 7, 600, 86),  # 600 / 7 = 85.71… → 86
        (0, 6, 600, 100),  # exact: no rounding
        (2, 7, 600, 258),  # 1800 / 7 = 257.14… → 258, not 3 × 86
        (0, 900, 60, 1),  # 0.0667 s → 1 s: a wait is never quoted as zero
    ],
)
def test_service_rate_eta_rounds_up_to_whole_seconds(
    ahead: int, matches: int, window_s: int, eta_s: int
) -> None:
    est = estimate_wait(snapshot(ahead=ahead, recent_matches=matches, window_s=window_s))
    assert est.basis is Basis.SERVICE_RATE
    assert est.eta_s == eta_s


def test_service_rate_is_exact_for_large_numbers() -> None:
    # Integer arithmetic: ceil(10**17 / 3) in floats gives ...332, two short.
    est = estimate_wait(snapshot(ahead=10**17 - 1, recent_matches=3, window_s=1, doctors_serving=1))
    assert est.eta_s == -(-(10**17) // 3)


# --- position -----------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10_000))
def test_position_is_one_more_than_ahead(ahead: int) -> None:
    for doctors in (0, 2):
        assert estimate_wait(snapshot(ahead=ahead, doctors_serving=doctors)).position == ahead + 1


# --- properties ---------------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=500)
snapshots = st.builds(
    QueueSnapshot,
    ahead=counts,
    recent_matches=counts,
    window_s=st.integers(min_value=1, max_value=7200),
    doctors_serving=st.integers(min_value=0, max_value=50),
    free_slots=counts,
    mean_consult_s=st.integers(min_value=1, max_value=7200),
)


@given(snapshots, st.integers(min_value=1, max_value=500))
def test_eta_never_decreases_when_more_are_ahead(base: QueueSnapshot, more: int) -> None:
    longer = dataclasses.replace(base, ahead=base.ahead + more)
    assert eta_order(estimate_wait(longer)) >= eta_order(estimate_wait(base))


@given(snapshots, st.integers(min_value=1, max_value=500))
def test_eta_never_increases_when_more_slots_are_free(base: QueueSnapshot, more: int) -> None:
    freer = dataclasses.replace(base, free_slots=base.free_slots + more)
    assert eta_order(estimate_wait(freer)) <= eta_order(estimate_wait(base))


@given(snapshots)
def test_eta_is_none_exactly_when_nobody_is_on_duty(snap: QueueSnapshot) -> None:
    est = estimate_wait(snap)
    assert (est.eta_s is None) == (est.basis is Basis.NO_DOCTORS)
    if est.eta_s is not None:
        assert est.eta_s >= 0
        assert (est.eta_s == 0) == (est.basis is Basis.FREE_SLOT)


# --- surge --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eta_s", "surge"), [(0, False), (1799, False), (1800, False), (1801, True), (None, True)]
)
def test_surge_is_an_eta_over_max_wait_or_no_estimate(eta_s: int | None, surge: bool) -> None:
    basis = Basis.NO_DOCTORS if eta_s is None else Basis.STAFFING
    assert is_surge(Estimate(position=1, eta_s=eta_s, basis=basis), max_wait_s=1800) is surge


def test_known_history_tips_into_surge_as_the_queue_grows() -> None:
    # One start every 60 s; max wait 30 min. 29 ahead → 30 min exactly; 30 ahead → over.
    at_limit = estimate_wait(snapshot(ahead=29, recent_matches=15, window_s=900))
    over = estimate_wait(snapshot(ahead=30, recent_matches=15, window_s=900))
    assert at_limit.eta_s == 1800
    assert not is_surge(at_limit, max_wait_s=1800)
    assert is_surge(over, max_wait_s=1800)


# --- validation and shape ----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["ahead", "recent_matches", "doctors_serving", "free_slots"])
def test_negative_counts_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(snapshot(), **{field: -1})


@pytest.mark.parametrize("field", ["window_s", "mean_consult_s"])
def test_non_positive_durations_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(snapshot(), **{field: 0})


def test_basis_values_are_the_wire_strings() -> None:
    assert [b.value for b in Basis] == ["free_slot", "service_rate", "staffing", "no_doctors"]
    assert Basis.SERVICE_RATE == "service_rate"


def test_snapshot_and_estimate_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot().ahead = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Estimate(position=1, eta_s=0, basis=Basis.FREE_SLOT).eta_s = 5  # type: ignore[misc]
